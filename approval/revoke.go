package approval

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
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

// RevokeOrder is what a caller asks to revoke: exactly one of Serial (a
// decimal serial, as written), RequestID or User, and why.
type RevokeOrder struct {
	Serial, RequestID, User string
	Reason                  string
}

// Revoke revokes what o names for login, who must be allowed to (CanRevoke:
// the owner, an approver of the group, or an admin; a whole user's access
// only the user and admins): the certificates are revoked and the grants
// they were issued under end, in one ledger transaction stamped now. A
// request login may not read does not exist for it (RequestToRevoke). It
// needs WithLedger.
func (a *Authority) Revoke(ctx context.Context, login string, o RevokeOrder) (*ca.Revocation, error) {
	spec, err := a.authorizeRevocation(ctx, login, o)
	if err != nil {
		return nil, err
	}
	res, err := a.revoker.Revoke(ctx, spec, login, o.Reason, a.now().UTC())
	if err != nil {
		return nil, err
	}
	serials := make([]string, 0, len(res.Serials))
	for _, serial := range res.Serials {
		serials = append(serials, strconv.FormatUint(serial, 10))
	}
	a.svc.log.LogAttrs(ctx, slog.LevelInfo, "revoked", slog.String("actor", login), slog.Any("serials", serials),
		slog.Any("ended_grants", nonNil(res.EndedGrants)), slog.String("reason", o.Reason))
	return res, nil
}

// authorizeRevocation checks o and whether login may revoke it, and returns
// what the ledger is to revoke.
func (a *Authority) authorizeRevocation(ctx context.Context, login string, o RevokeOrder) (ca.RevokeSpec, error) {
	n := 0
	for _, v := range []string{o.Serial, o.RequestID, o.User} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return ca.RevokeSpec{}, invalidInput("give exactly one of serial, request_id or user")
	}
	if o.Reason == "" || len(o.Reason) > MaxReasonLen {
		return ca.RevokeSpec{}, invalidInput("a reason (at most %d characters) is required", MaxReasonLen)
	}
	if err := CheckFreeText("reason", o.Reason, MaxReasonLen); err != nil {
		return ca.RevokeSpec{}, err
	}
	switch {
	case o.Serial != "":
		serial, err := strconv.ParseUint(o.Serial, 10, 64)
		if err != nil || serial == 0 {
			return ca.RevokeSpec{}, invalidInput("serial must be a positive decimal number")
		}
		c, err := a.certs.GetCertificate(ctx, serial)
		if errors.Is(err, ca.ErrNotFound) {
			return ca.RevokeSpec{}, newErr(ErrNotFound, CodeUnknownCertificate, "no certificate has serial %d; find serials with 'jit-ssh audit certs'", serial)
		}
		if err != nil {
			return ca.RevokeSpec{}, err
		}
		return ca.RevokeSpec{Serial: serial}, a.svc.CanRevoke(ctx, login, c.Requester, c.HostGroup)
	case o.RequestID != "":
		req, err := a.svc.RequestToRevoke(ctx, login, o.RequestID)
		if err != nil {
			return ca.RevokeSpec{}, err
		}
		return ca.RevokeSpec{RequestID: req.ID}, a.svc.CanRevoke(ctx, login, req.Requester, req.HostGroup)
	default:
		if ca.CheckRequester(o.User) != nil {
			return ca.RevokeSpec{}, invalidInput("user %q is not a valid login or workload (gha:<owner>/<repo>:run=<id>)", o.User)
		}
		return ca.RevokeSpec{User: o.User}, a.svc.CanRevoke(ctx, login, o.User, "")
	}
}

// KRL returns the binary OpenSSH KRL of the ledger's revocations and its
// version: every revoked serial that has not expired (within ca.DefaultSkew)
// listed under every CA key hosts trust (CAKeys). Serials are unique in the
// ledger, so this revokes nothing else, and a certificate row whose
// ca_fingerprint was edited outside the server cannot drop its revocation
// out of the KRL that way. It needs WithLedger and WithSigner.
func (a *Authority) KRL(ctx context.Context) (krl []byte, version uint64, err error) {
	now := a.now()
	bySerial, version, err := a.revoker.RevokedSerials(ctx, now.Add(-ca.DefaultSkew))
	if err != nil {
		return nil, 0, err
	}
	keys, err := a.CAKeys(ctx)
	if err != nil {
		return nil, 0, err
	}
	var all []uint64
	for _, serials := range bySerial {
		all = append(all, serials...)
	}
	var sets []ca.RevokedSerials
	if len(all) > 0 {
		for _, k := range keys {
			sets = append(sets, ca.RevokedSerials{CA: k, Serials: all})
		}
	}
	return ca.MarshalKRL(version, now, "jit-ssh", sets), version, nil
}
