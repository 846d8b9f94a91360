package approval

import (
	"context"
	"strings"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// grantStarted is the event of r's grant starting, with the approvers it
// was granted on and why.
func grantStarted(r *ca.Request, approvers []string, why string) ca.Event {
	return ca.Event{Time: r.ApprovedAt, Actor: r.Requester, Type: ca.EventGrantStarted, RequestID: r.ID,
		Data: map[string]any{"approvers": nonNil(approvers), "grant_ends_at": r.GrantEnds(), "why": why}}
}

// endedGrantRevocation revokes, with a grant that ends early at now, every
// certificate of it that a host could still accept: the same margin the KRL
// keeps a revoked serial listed for (ca.DefaultSkew past its expiry).
func endedGrantRevocation(actor, why string, now time.Time) *ca.CertRevocation {
	return &ca.CertRevocation{Actor: actor, Reason: "grant ended early: " + why, At: now, NotExpiredAt: now.Add(-ca.DefaultSkew)}
}

// Authorize decides whether login may be issued a certificate under request
// id now, re-checking the requester's and each approver's membership. It
// returns the grant to issue under. A due expiry or grant end is recorded
// first, as for any action on a request.
func (s *Service) Authorize(ctx context.Context, login, id string) (ca.Grant, error) {
	r, err := s.load(ctx, login, id)
	if err != nil {
		return ca.Grant{}, err
	}
	if r.Requester != login {
		return ca.Grant{}, newErr(ErrForbidden, CodeNotRequester, "request %s belongs to %s; certificates are issued only to the requester", r.ID, r.Requester)
	}
	now := s.now()
	if r.State != ca.StateApproved {
		return ca.Grant{}, newErr(ErrConflict, CodeRequestNotApproved, "request %s is %s, not approved", r.ID, r.State)
	}
	if !r.OpenAt(now) {
		return ca.Grant{}, newErr(ErrConflict, CodeGrantEnded, "the grant of request %s ended at %s; run 'jit-ssh login %s' for a new one", r.ID, r.GrantEnds().Format(time.RFC3339), r.HostGroup)
	}
	p, err := s.policy(r.HostGroup)
	if err != nil {
		return ca.Grant{}, err
	}
	if ok, err := s.isRequester(ctx, login, p); err != nil {
		return ca.Grant{}, err
	} else if !ok {
		if ca.IsWorkloadRequester(login) {
			return ca.Grant{}, notRequester(ctx, login, p, "be issued certificates for")
		}
		return ca.Grant{}, newErr(ErrForbidden, CodeNotARequester, "%s is no longer a member of %s", login, strings.Join(p.Requesters, ", "))
	}
	if r.BreakGlass {
		return s.authorizeBreakGlass(ctx, login, r, p)
	}
	if p.AllowedHours != nil && !p.AllowedHours.Contains(now) {
		return ca.Grant{}, newErr(ErrForbidden, CodeOutsideAllowedHours, "%s may only be accessed %s", r.HostGroup, p.AllowedHours)
	}
	valid, err := s.validApprovals(ctx, p, TallyReviews(r))
	if err != nil {
		return ca.Grant{}, err
	}
	if len(valid) < p.ApprovalsRequired {
		return ca.Grant{}, newErr(ErrForbidden, CodeApprovalNoLongerValid,
			"request %s has %d valid approvals of %d required: an approver has left %s", r.ID, len(valid), p.ApprovalsRequired, strings.Join(p.Approvers, ", "))
	}
	return ca.Grant{RequestID: r.ID, User: login, Group: r.HostGroup, Approvers: valid, Ends: r.GrantEnds(), Profile: p.Profile()}, nil
}

// authorizeBreakGlass is Authorize's rule for a break-glass grant (open,
// login its requester and still a requester): login must still be in a
// break_glass team of a group that still allows break glass; no approval
// is asked for and allowed_hours does not apply (see BreakGlass). Its
// certificates say by=break-glass.
func (s *Service) authorizeBreakGlass(ctx context.Context, login string, r *ca.Request, p *Policy) (ca.Grant, error) {
	if p.BreakGlass == nil {
		return ca.Grant{}, newErr(ErrForbidden, CodeBreakGlassNotAllowed, "%s no longer allows break glass; request access with 'jit-ssh login %s'", r.HostGroup, r.HostGroup)
	}
	if ok, err := s.memberOfAny(ctx, login, p.BreakGlass.Teams); err != nil {
		return ca.Grant{}, err
	} else if !ok {
		return ca.Grant{}, newErr(ErrForbidden, CodeNotABreakGlassTeam, "%s is no longer a member of %s", login, strings.Join(p.BreakGlass.Teams, ", "))
	}
	return ca.Grant{RequestID: r.ID, User: login, Group: r.HostGroup, Ends: r.GrantEnds(), Profile: p.Profile(), BreakGlass: true}, nil
}
