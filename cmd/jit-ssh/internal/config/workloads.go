package config

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/oidc"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

// WorkloadIdentity configures the identities of CI jobs, which request
// host groups as people do (SPEC section 4c).
type WorkloadIdentity struct {
	GitHubActions *GitHubActions `yaml:"github_actions"`
}

// GitHubActions is the OIDC issuer of GitHub Actions' ID tokens and the
// audience jobs ask their tokens for.
type GitHubActions struct {
	Issuer   string `yaml:"issuer"`   // default oidc.GitHubIssuer
	Audience string `yaml:"audience"` // default DefaultWorkloadAudience
}

// Workload is one entry of a host group's workloads: the jobs that may
// request it. repository is required, and a ref, an environment or both.
type Workload struct {
	Repository  string `yaml:"repository"`
	Ref         string `yaml:"ref"`
	Environment string `yaml:"environment"`
}

// DefaultWorkloadAudience is the audience a job asks its ID token for
// unless workload_identity.github_actions.audience says otherwise.
const DefaultWorkloadAudience = "jit-ssh"

// maxWorkloadText bounds the audience, refs and environments.
const maxWorkloadText = 255

func (w *WorkloadIdentity) applyDefaults() {
	if g := w.GitHubActions; g != nil {
		if g.Issuer == "" {
			g.Issuer = oidc.GitHubIssuer
		}
		if g.Audience == "" {
			g.Audience = DefaultWorkloadAudience
		}
	}
}

// printable reports whether s is printable ASCII of at most
// maxWorkloadText bytes (what a token's claims may hold, ca.CheckWorkload).
func printable(s string) bool {
	if len(s) > maxWorkloadText {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (w *WorkloadIdentity) validate() []string {
	var p []string
	g := w.GitHubActions
	if g == nil {
		return nil
	}
	u, err := url.Parse(g.Issuer)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		p = append(p, fmt.Sprintf("workload_identity.github_actions.issuer: %q is not an http(s) URL", g.Issuer))
	case !api.SecureTransport(u):
		p = append(p, fmt.Sprintf("workload_identity.github_actions.issuer: %q must be https (plain http is allowed only to loopback)", g.Issuer))
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		p = append(p, fmt.Sprintf("workload_identity.github_actions.issuer: %q must be a plain URL, without user, query or fragment", g.Issuer))
	}
	if strings.TrimSpace(g.Audience) == "" || !printable(g.Audience) {
		p = append(p, "workload_identity.github_actions.audience: must be printable text of at most 255 characters")
	}
	return p
}

// compileWorkloads checks a host group's workloads (at path) and returns
// their rules. configured tells whether workload_identity is set.
func compileWorkloads(path string, ws []Workload, configured bool) ([]approval.WorkloadRule, []string) {
	var p []string
	var rules []approval.WorkloadRule
	if len(ws) > 0 && !configured {
		p = append(p, path+": workload_identity.github_actions is not configured, so no workload could sign in")
	}
	for i, w := range ws {
		at := fmt.Sprintf("%s[%d]", path, i)
		if ca.CheckRepository(w.Repository) != nil {
			p = append(p, fmt.Sprintf("%s.repository: %q is not owner/name", at, w.Repository))
		}
		if w.Ref == "" && w.Environment == "" {
			p = append(p, at+": name a ref, an environment or both: a repository alone would let any branch's jobs in")
		}
		if w.Ref != "" && (!strings.HasPrefix(w.Ref, "refs/") || !printable(w.Ref)) {
			p = append(p, fmt.Sprintf("%s.ref: %q is not a full ref like refs/heads/main", at, w.Ref))
		}
		if !printable(w.Environment) {
			p = append(p, at+".environment: must be printable text of at most 255 characters")
		}
		rules = append(rules, approval.WorkloadRule{Repository: w.Repository, Ref: w.Ref, Environment: w.Environment})
	}
	return rules, p
}
