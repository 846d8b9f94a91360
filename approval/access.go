package approval

import (
	"context"
	"errors"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Authenticate resolves a bearer token to a login.
func (s *Service) Authenticate(ctx context.Context, token string) (string, error) {
	if token == "" {
		return "", newErr(ErrUnauthenticated, CodeUnauthenticated, "no bearer token; sign in with 'jit-ssh auth login' or set JIT_SSH_TOKEN%s", s.signInHint)
	}
	login, err := s.dir.Authenticate(ctx, token)
	switch {
	case err == nil:
		if ca.CheckLogin(login) != nil {
			return "", newErr(ErrUnauthenticated, CodeUnauthenticated, "the identity provider returned an unusable login")
		}
		if ca.IsReservedLogin(login) {
			return "", newErr(ErrForbidden, CodeReservedLogin, "the login %q is reserved for jit-ssh's own events, so this account cannot use jit-ssh; sign in with another account", login)
		}
		return login, nil
	case errors.Is(err, ErrUnauthenticated):
		return "", newErr(ErrUnauthenticated, CodeUnauthenticated, "the token was not accepted; sign in again with 'jit-ssh auth login' or set JIT_SSH_TOKEN%s", s.signInHint)
	default:
		return "", s.unavailable(err)
	}
}

func (s *Service) unavailable(err error) *Error {
	return newErr(ErrUnavailable, CodeIdentityUnavailable, "identity provider unavailable, no decision possible: %v", err)
}

// memberOfAny reports whether login is in any of teams; provider failures
// fail closed.
func (s *Service) memberOfAny(ctx context.Context, login string, teams []string) (bool, error) {
	if ca.IsWorkloadRequester(login) {
		// A workload is in no team: it never approves or audits, and its
		// name is not the directory's to look up.
		return false, nil
	}
	for _, t := range teams {
		ok, err := s.dir.IsMember(ctx, login, t)
		if err != nil {
			return false, s.unavailable(err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// isApprover is the one rule for "login is an approver of p": a member of
// one of its approver teams, asked of the directory now (so someone who
// left a team stops counting at once); provider failures fail closed.
func (s *Service) isApprover(ctx context.Context, login string, p *Policy) (bool, error) {
	return s.memberOfAny(ctx, login, p.Approvers)
}

// isRequester is the rule for "login may request p": a member of one of
// its requester teams, asked now (Create and again Authorize at issuance);
// for a workload, one its workloads name, judged by the claims of this
// call's token.
func (s *Service) isRequester(ctx context.Context, login string, p *Policy) (bool, error) {
	if ca.IsWorkloadRequester(login) {
		return workloadMayRequest(ctx, login, p), nil
	}
	return s.memberOfAny(ctx, login, p.Requesters)
}

// IsAuditor reports whether login may read the whole ledger.
func (s *Service) IsAuditor(ctx context.Context, login string) (bool, error) {
	return s.memberOfAny(ctx, login, s.auditors)
}

// canSee reports whether login may read r: the requester, an approver of
// its group, or an auditor.
func (s *Service) canSee(ctx context.Context, login string, r *ca.Request) (bool, error) {
	if r.Requester == login {
		return true, nil
	}
	if p := s.policies[r.HostGroup]; p != nil {
		if ok, err := s.isApprover(ctx, login, p); err != nil || ok {
			return ok, err
		}
	}
	return s.IsAuditor(ctx, login)
}
