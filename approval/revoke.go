package approval

import (
	"context"
	"slices"
	"strings"

	"github.com/jit-ssh/jit-ssh/ca"
)

// WithAdmins sets the teams whose members may revoke anything, including
// every certificate of a user.
func WithAdmins(teams []string) ServiceOption {
	return func(s *Service) { s.admins = slices.Clone(teams) }
}

// IsAdmin reports whether login is a member of an admin team.
func (s *Service) IsAdmin(ctx context.Context, login string) (bool, error) {
	return s.memberOfAny(ctx, login, s.admins)
}

// CanRevoke decides whether login may revoke certificates (and end grants)
// of owner in group: anyone their own, an approver of the group, or an
// admin. An empty group means "all of owner's groups", which only the owner
// and admins may do.
func (s *Service) CanRevoke(ctx context.Context, login, owner, group string) error {
	if login == owner {
		return nil
	}
	if ok, err := s.IsAdmin(ctx, login); err != nil {
		return err
	} else if ok {
		return nil
	}
	if group != "" {
		if p := s.policies[group]; p != nil {
			if ok, err := s.memberOfAny(ctx, login, p.Approvers); err != nil {
				return err
			} else if ok {
				return nil
			}
			return newErr(ErrForbidden, "not_allowed_to_revoke", "%s may not revoke %s's access to %s: only the owner, approvers of %s (%s) and admins may", login, owner, group, group, strings.Join(p.Approvers, ", "))
		}
	}
	return newErr(ErrForbidden, "not_allowed_to_revoke", "%s may not revoke %s's access: only %s and admins may", login, owner, owner)
}

// RequestToRevoke returns request id for login to revoke: a request login
// may read (see Get), or any request when login is an admin, since admins
// may revoke anything. Others get the "not found" Get gives them. Whether
// login may revoke it is CanRevoke's decision.
func (s *Service) RequestToRevoke(ctx context.Context, login, id string) (*ca.Request, error) {
	return s.getIf(ctx, login, id, func(ctx context.Context, login string, r *ca.Request) (bool, error) {
		if ok, err := s.canSee(ctx, login, r); err != nil || ok {
			return ok, err
		}
		return s.IsAdmin(ctx, login)
	})
}
