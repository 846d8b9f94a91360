package approval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Tally is the standing of a request's reviews under pull-request rules.
type Tally struct {
	// Approvers are the distinct reviewers, never the requester, whose
	// latest approving-or-blocking review is an APPROVE, in approval order.
	Approvers []string
	// Blockers are the reviewers whose latest such review is REQUEST_CHANGES.
	Blockers []string
}

// TallyReviews applies the rules of SPEC section 2 to r's reviews: a
// COMMENT changes nobody's standing, a reviewer's later APPROVE clears their
// own REQUEST_CHANGES and vice versa, dismissed reviews (earlier than an
// edit) do not count, and the requester never counts.
func TallyReviews(r *ca.Request) Tally {
	latest := map[string]string{}
	var order []string
	for _, rv := range r.Reviews {
		if rv.Dismissed || rv.Reviewer == r.Requester {
			continue
		}
		if rv.Event != ca.ReviewApprove && rv.Event != ca.ReviewRequestChanges {
			continue
		}
		if _, seen := latest[rv.Reviewer]; !seen {
			order = append(order, rv.Reviewer)
		}
		latest[rv.Reviewer] = rv.Event
	}
	var t Tally
	for _, who := range order {
		switch latest[who] {
		case ca.ReviewApprove:
			t.Approvers = append(t.Approvers, who)
		case ca.ReviewRequestChanges:
			t.Blockers = append(t.Blockers, who)
		}
	}
	return t
}

// Satisfied reports whether the tally approves a request that needs n
// approvals.
func (t Tally) Satisfied(n int) bool { return len(t.Blockers) == 0 && len(t.Approvers) >= n }

// validApprovals is the one rule for the approvals that still count: the
// tally's approvers who are approvers of p now (isApprover), in approval
// order. Review applies it when deciding whether a request is approved,
// Authorize again at every issuance, so an approver who left the approver
// teams stops counting at once. Provider failures fail closed.
func (s *Service) validApprovals(ctx context.Context, p *Policy, t Tally) ([]string, error) {
	valid := slices.Clone(t.Approvers)[:0] // nil stays nil
	for _, a := range t.Approvers {
		ok, err := s.isApprover(ctx, a, p)
		if err != nil {
			return nil, err
		}
		if ok {
			valid = append(valid, a)
		}
	}
	return valid, nil
}

// Review records a review by login. APPROVE, REQUEST_CHANGES and DENY need
// membership of an approver team of the group and a pending request, and are
// never accepted from the requester. The request is approved as soon as the
// tally is satisfied; DENY is final. On a break-glass grant the same verbs
// record its follow-up (whatever the grant's state, until it is recorded):
// APPROVE as justified; REQUEST_CHANGES or DENY as not justified, which
// ends the grant and revokes its unexpired certificates in the same
// transaction and notifies again; the requester may never record it.
func (s *Service) Review(ctx context.Context, login, id, event, body string) (_ *ca.Request, err error) {
	defer func() { s.recordRefusal(ctx, ca.EventReviewRefused, login, id, map[string]any{"event": event}, err) }()
	switch event {
	case ca.ReviewApprove, ca.ReviewRequestChanges, ca.ReviewComment, ca.ReviewDeny:
	default:
		return nil, newErr(ErrInvalid, CodeInvalidReviewEvent, "review event %q must be APPROVE, REQUEST_CHANGES, COMMENT or DENY", event)
	}
	if err := CheckFreeText("body", body, MaxBodyLen); err != nil {
		return nil, err
	}
	if (event == ca.ReviewComment || event == ca.ReviewRequestChanges || event == ca.ReviewDeny) && strings.TrimSpace(body) == "" {
		return nil, newErr(ErrInvalid, CodeBodyRequired, "a %s review needs a body (-m) saying why", event)
	}
	if err := s.checkReviewer(ctx, login, id); err != nil {
		return nil, err
	}
	var followedUp bool
	var revoked *ca.CertRevocation
	r, err := s.change(ctx, login, id, func(cur, next *ca.Request, ch *ca.RequestChange) error {
		followedUp, revoked = false, nil
		p, err := s.policy(cur.HostGroup)
		if err != nil {
			return err
		}
		isApprover, err := s.isApprover(ctx, login, p)
		if err != nil {
			return err
		}
		if event != ca.ReviewComment {
			if !isApprover {
				return newErr(ErrForbidden, CodeNotAnApprover, "%s may not review %s: not a member of %s", login, cur.HostGroup, strings.Join(p.Approvers, ", "))
			}
			if login == cur.Requester && cur.BreakGlass {
				return newErr(ErrForbidden, CodeSelfReview, "you cannot review the follow-up of your own break-glass grant; ask a member of %s", strings.Join(p.Approvers, ", "))
			}
			if login == cur.Requester {
				return newErr(ErrForbidden, CodeSelfReview, "you cannot review your own request; ask a member of %s", strings.Join(p.Approvers, ", "))
			}
			if cur.BreakGlass {
				// The follow-up review of a break-glass grant: the
				// grant was never pending, and may be over already.
				followedUp = true
			} else if cur.State != ca.StatePending {
				return newErr(ErrConflict, CodeRequestNotPending, "request %s is %s; only pending requests can be reviewed", cur.ID, cur.State)
			}
		} else if !isApprover && login != cur.Requester {
			return newErr(ErrForbidden, CodeNotAnApprover, "only the requester and approvers of %s may comment", cur.HostGroup)
		}
		now := next.UpdatedAt
		rv := ca.Review{RequestID: cur.ID, Reviewer: login, Event: event, Body: body, CreatedAt: now}
		ch.Review = &rv
		ch.Events = append(ch.Events, ca.Event{Time: now, Actor: login, Type: ca.EventReview, RequestID: cur.ID,
			Data: map[string]any{"event": event, "body": body}})
		if followedUp {
			revoked, err = followUp(login, event, body, cur, next, ch)
			return err
		}
		if cur.BreakGlass {
			return nil // a comment on a break-glass grant decides nothing
		}
		tally := TallyReviews(&ca.Request{Requester: cur.Requester, Reviews: append(slices.Clone(cur.Reviews), rv)})
		// An approval counts only while its author is still an approver,
		// the same rule Authorize applies at issuance.
		if tally.Approvers, err = s.validApprovals(ctx, p, tally); err != nil {
			return err
		}
		switch {
		case event == ca.ReviewDeny:
			next.State = ca.StateDenied
			ch.Events = append(ch.Events, ca.Event{Time: now, Actor: login, Type: ca.EventRequestDenied, RequestID: cur.ID,
				Data: map[string]any{"body": body}})
		case cur.State == ca.StatePending && tally.Satisfied(max(p.ApprovalsRequired, 1)):
			next.State, next.ApprovedAt = ca.StateApproved, now
			ch.Events = append(ch.Events, grantStarted(next, tally.Approvers, fmt.Sprintf("%d of %d approvals", len(tally.Approvers), p.ApprovalsRequired)))
		}
		return nil
	})
	switch {
	case err != nil:
	case followedUp && revoked != nil:
		s.log.LogAttrs(ctx, slog.LevelWarn, "break-glass grant not justified, certificates revoked", slog.String("request_id", r.ID),
			slog.String("actor", login), slog.Any("serials", revoked.Serials))
		s.notifyUrgent(ctx, ca.NotifyNotJustified, login, r, lastReview(r), revoked.Serials)
	case followedUp:
		s.notifyUrgent(ctx, ca.NotifyJustified, login, r, lastReview(r), nil)
	default:
		s.notifyReview(ctx, login, r)
	}
	return r, err
}

// lastReview returns r's newest review, or nil.
func lastReview(r *ca.Request) *ca.Review {
	if r == nil || len(r.Reviews) == 0 {
		return nil
	}
	return &r.Reviews[len(r.Reviews)-1]
}

// checkReviewer refuses, with 403 and the reason, a review by someone who
// is neither the requester nor an approver of the request's group. Such
// callers cannot read the request (Get says "not found"), but a review
// names a request ID they were shown (for example in a notification), so
// they are told why their review does not count. Request IDs are random,
// so this reveals nothing guessable.
func (s *Service) checkReviewer(ctx context.Context, login, id string) error {
	if ca.CheckRequestID(id) != nil {
		return newErr(ErrInvalid, CodeInvalidRequestID, "%q is not a request ID", id)
	}
	r, err := s.store.GetRequest(ctx, id)
	if errors.Is(err, ca.ErrNotFound) {
		return newErr(ErrNotFound, CodeRequestNotFound, "no request %s", id)
	}
	if err != nil {
		return err
	}
	if r.Requester == login {
		return nil
	}
	p, err := s.policy(r.HostGroup)
	if err != nil {
		return err
	}
	ok, err := s.isApprover(ctx, login, p)
	if err != nil {
		return err
	}
	if !ok {
		return newErr(ErrForbidden, CodeNotAnApprover, "%s may not review %s requests: not a member of %s", login, r.HostGroup, strings.Join(p.Approvers, ", "))
	}
	return nil
}
