package approval

import (
	"context"
	"errors"

	"strings"

	"github.com/jit-ssh/jit-ssh/ca"
)

// WorkloadVerifier verifies a CI job's OIDC ID token and returns the
// workload it names (approval/oidc.Verifier). Refused tokens give an error
// wrapping ErrUnauthenticated (ca.ErrUnauthenticated) with the reason; an
// issuer that cannot be asked one wrapping ErrUnavailable. A token is
// accepted once: the verifier refuses a replayed one.
type WorkloadVerifier interface {
	VerifyWorkload(ctx context.Context, token string) (ca.Workload, error)
}

// WorkloadScheme is the Authorization scheme a workload presents its ID
// token under ("Authorization: GitHubActions <token>"); people's GitHub
// tokens come as "Bearer".
const WorkloadScheme = "GitHubActions"

// WithWorkloadVerifier lets GitHub Actions jobs authenticate with their ID
// tokens, verified by v (workload_identity.github_actions). Without it
// workload tokens are refused.
func WithWorkloadVerifier(v WorkloadVerifier) ServiceOption {
	return func(s *Service) { s.workloads = v }
}

// WorkloadRule is one entry of a host group's workloads: the jobs that may
// request the group. Repository is required; an empty Ref or Environment
// matches any (configuration requires at least one of them).
type WorkloadRule struct {
	Repository  string
	Ref         string
	Environment string
}

// Matches reports whether w is a job the rule names: the same repository
// (GitHub's names are case-insensitive), and the same ref and environment
// where the rule names them.
func (r WorkloadRule) Matches(w ca.Workload) bool {
	return strings.EqualFold(r.Repository, w.Repository) &&
		(r.Ref == "" || r.Ref == w.Ref) && (r.Environment == "" || r.Environment == w.Environment)
}

func (r WorkloadRule) String() string {
	s := "repository " + r.Repository
	if r.Ref != "" {
		s += " ref " + r.Ref
	}
	if r.Environment != "" {
		s += " environment " + r.Environment
	}
	return s
}

// AcceptsWorkload reports whether one of the group's workload rules
// matches w.
func (p *Policy) AcceptsWorkload(w ca.Workload) bool {
	for _, r := range p.Workloads {
		if r.Matches(w) {
			return true
		}
	}
	return false
}

type workloadKey struct{}

// workloadFrom returns the verified workload of the call ctx belongs to.
func workloadFrom(ctx context.Context) (ca.Workload, bool) {
	w, ok := ctx.Value(workloadKey{}).(ca.Workload)
	return w, ok
}

// AuthenticateWorkload verifies a workload's ID token and returns the
// login it acts as (ca.Workload.Requester: gha:<owner>/<repo>:run=<id>)
// and the context to call the service with: it carries the verified
// claims, which decide whether the workload may request a group (each call
// brings a fresh token, so the claims are always this call's).
func (s *Service) AuthenticateWorkload(ctx context.Context, token string) (context.Context, string, error) {
	if s.workloads == nil {
		return ctx, "", newErr(ErrUnauthenticated, CodeUnauthenticated,
			"this server does not accept GitHub Actions tokens: workload_identity.github_actions is not configured")
	}
	if token == "" {
		return ctx, "", newErr(ErrUnauthenticated, CodeUnauthenticated, "no GitHub Actions ID token after %q", WorkloadScheme)
	}
	w, err := s.workloads.VerifyWorkload(ctx, token)
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return ctx, "", newErr(ErrUnauthenticated, CodeUnauthenticated, "the GitHub Actions ID token was refused: %s",
			strings.TrimPrefix(err.Error(), ErrUnauthenticated.Error()+": "))
	case err != nil:
		return ctx, "", newErr(ErrUnavailable, CodeIdentityUnavailable, "the GitHub Actions token issuer is unavailable, no decision possible: %s",
			strings.TrimPrefix(err.Error(), ErrUnavailable.Error()+": "))
	}
	// The verifier checked the claims already; the requester name must
	// pass the KeyId's rules whatever the verifier.
	if ca.CheckWorkload(w) != nil || ca.CheckRequester(w.Requester()) != nil {
		return ctx, "", newErr(ErrUnauthenticated, CodeUnauthenticated, "the GitHub Actions ID token names an unusable workload")
	}
	return context.WithValue(ctx, workloadKey{}, w), w.Requester(), nil
}

// workloadMayRequest is isRequester for a workload login: the call's
// verified workload is login and one of p's workload rules matches it.
func workloadMayRequest(ctx context.Context, login string, p *Policy) bool {
	w, ok := workloadFrom(ctx)
	return ok && w.Requester() == login && p.AcceptsWorkload(w)
}

// notRequester is the refusal of login, who may not request p.
func notRequester(ctx context.Context, login string, p *Policy, what string) *Error {
	if !ca.IsWorkloadRequester(login) {
		if len(p.Requesters) == 0 {
			return newErr(ErrForbidden, CodeNotARequester, "%s may not %s %s: only CI workloads may (it has no requester teams)", login, what, p.Group)
		}
		return newErr(ErrForbidden, CodeNotARequester, "%s may not %s %s: not a member of %s", login, what, p.Group, strings.Join(p.Requesters, ", "))
	}
	w, _ := workloadFrom(ctx)
	allowed := make([]string, 0, len(p.Workloads))
	for _, r := range p.Workloads {
		allowed = append(allowed, r.String())
	}
	if len(allowed) == 0 {
		allowed = append(allowed, "none")
	}
	return newErr(ErrForbidden, CodeNotARequester, "workload %s (ref %s) may not %s %s: its workloads are %s; run the job from one of those, or add it to host_groups.%s.workloads in the server's config",
		w.Identity(), w.Ref, what, p.Group, strings.Join(allowed, "; "), p.Group)
}

// workloadEventData is what a workload's request records of the run.
func workloadEventData(w ca.Workload) map[string]any {
	return map[string]any{"identity": w.Identity(), "repository": w.Repository, "ref": w.Ref, "environment": w.Environment,
		"run_id": w.RunID, "run_attempt": w.RunAttempt, "workflow": w.Workflow, "sha": w.SHA, "actor": w.Actor, "subject": w.Subject}
}
