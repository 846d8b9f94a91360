package approval

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// errReasonRequired refuses a request for group (or, with group "", an
// edit of a pending one) without a reason: its approvers decide from it.
// Auto-approved groups need none; their requests still record one if given.
func errReasonRequired(group string) *Error {
	if group == "" {
		return newErr(ErrInvalid, CodeReasonRequired, "a pending request needs a reason: its approvers decide from it")
	}
	return newErr(ErrInvalid, CodeReasonRequired, "a reason is required: %s needs approval, and its approvers decide from the reason", group)
}

// Create files a request by login for group. A group that needs no
// approvals grants it at once.
func (s *Service) Create(ctx context.Context, login, group string, d time.Duration, reason string) (_ *ca.Request, err error) {
	defer func() {
		s.recordRefusal(ctx, ca.EventRequestRefused, login, "", map[string]any{"action": "create", "host_group": group}, err)
	}()
	p, err := s.policy(group)
	if err != nil {
		return nil, err
	}
	if err := CheckFreeText("reason", reason, MaxReasonLen); err != nil {
		return nil, err
	}
	ok, err := s.isRequester(ctx, login, p)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notRequester(ctx, login, p, "request")
	}
	w, isWorkload := workloadFrom(ctx)
	if isWorkload && strings.TrimSpace(reason) == "" {
		// The run's verified claims tell approvers what is asking.
		reason = w.Describe() // printable ASCII (ca.CheckWorkload)
		if len(reason) > MaxReasonLen {
			reason = reason[:MaxReasonLen]
		}
	}
	if p.ApprovalsRequired > 0 && strings.TrimSpace(reason) == "" {
		return nil, errReasonRequired(group)
	}
	if d == 0 {
		d = p.DefaultDuration()
	}
	if d < time.Minute || d > p.MaxDuration {
		return nil, newErr(ErrInvalid, CodeInvalidDuration, "duration %s is outside 1m..%s (max_duration of %s)", d, p.MaxDuration, group)
	}
	now := s.now().UTC()
	if p.AllowedHours != nil && !p.AllowedHours.Contains(now) {
		return nil, newErr(ErrForbidden, CodeOutsideAllowedHours, "%s may only be requested %s", group, p.AllowedHours)
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	r := &ca.Request{ID: id, HostGroup: group, Requester: login, State: ca.StatePending, Reason: reason, Duration: d,
		CreatedAt: now, UpdatedAt: now, Version: 1, Reviews: []ca.Review{}}
	events := []ca.Event{{Time: now, Actor: login, Type: ca.EventRequestCreated, RequestID: id,
		Data: map[string]any{"host_group": group, "duration": d.String(), "reason": reason, "approvals_required": p.ApprovalsRequired}}}
	if isWorkload {
		events[0].Data["workload"] = workloadEventData(w)
	}
	if p.ApprovalsRequired == 0 {
		r.State, r.ApprovedAt = ca.StateApproved, now
		events = append(events, grantStarted(r, nil, "auto-approved: approvals_required is 0"))
	}
	if err := s.store.ApplyRequestChange(ctx, ca.RequestChange{Request: r, Create: true, Events: events}); err != nil {
		return nil, err
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "request created", slog.String("request_id", id), slog.String("requester", login),
		slog.String("host_group", group), slog.String("state", r.State))
	s.notify(ctx, ca.NotifyCreated, login, r, nil)
	return r, nil
}

// reviewable lists what an approver of q.Groups has to review: their
// pending requests (unless state asks for approved ones only) and the
// break-glass grants whose follow-up needs review (unless state asks for
// pending ones only), newest first.
func (s *Service) reviewable(ctx context.Context, q ca.RequestFilter, state string) ([]*ca.Request, error) {
	var out []*ca.Request
	if state != ca.StateApproved {
		pending, err := s.store.ListRequests(ctx, q)
		if err != nil {
			return nil, err
		}
		out = pending
	}
	if state != ca.StatePending {
		fq := q
		fq.States, fq.FollowUp = nil, ca.FollowUpNeedsReview
		follow, err := s.store.ListRequests(ctx, fq)
		if err != nil {
			return nil, err
		}
		out = append(out, follow...)
	}
	slices.SortStableFunc(out, func(a, b *ca.Request) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

// Get returns request id as login may see it, as it stands now: a pending
// request past its review window shows as expired and a grant whose time
// ran out as ended (see effective). Get writes nothing; the sweeper
// (ExpirePending, EndElapsedGrants) records those changes, and so does any
// action on the request. Requests login may not see are reported as not
// found.
func (s *Service) Get(ctx context.Context, login, id string) (*ca.Request, error) {
	r, err := s.read(ctx, login, id, s.canSee)
	if err != nil {
		return nil, err
	}
	return s.effective(r, s.now().UTC()), nil
}

// read returns request id as stored, with may deciding whether login sees
// it; a request login may not see is "not found".
func (s *Service) read(ctx context.Context, login, id string, may func(ctx context.Context, login string, r *ca.Request) (bool, error)) (*ca.Request, error) {
	if ca.CheckRequestID(id) != nil {
		return nil, newErr(ErrInvalid, CodeInvalidRequestID, "%q is not a request ID", id)
	}
	r, err := s.store.GetRequest(ctx, id)
	if errors.Is(err, ca.ErrNotFound) {
		return nil, newErr(ErrNotFound, CodeRequestNotFound, "no request %s", id)
	}
	if err != nil {
		return nil, err
	}
	if ok, err := may(ctx, login, r); err != nil {
		return nil, err
	} else if !ok {
		return nil, newErr(ErrNotFound, CodeRequestNotFound, "no request %s", id)
	}
	return r, nil
}

// getIf returns request id, which may decides login sees, for login to act
// on: an expiry or grant end that is due is recorded first, in its own
// change, so the action is decided on the request as it now stands.
func (s *Service) getIf(ctx context.Context, login, id string, may func(ctx context.Context, login string, r *ca.Request) (bool, error)) (*ca.Request, error) {
	r, err := s.read(ctx, login, id, may)
	if err != nil {
		return nil, err
	}
	if r, err = s.expireIfDue(ctx, r); err != nil {
		return nil, err
	}
	return s.endGrantIfDue(ctx, r)
}

// load is getIf with the readers of Get: the request login acts on.
func (s *Service) load(ctx context.Context, login, id string) (*ca.Request, error) {
	return s.getIf(ctx, login, id, s.canSee)
}

// ListFilter selects requests for List.
type ListFilter struct {
	Mine       bool
	Reviewable bool
	State      string
}

// List returns requests login may see. Reviewable means pending requests of
// groups login approves, and their break-glass grants whose follow-up needs
// review, not login's own. Without Mine or Reviewable,
// auditors see every request and others their own. Like Get it writes
// nothing: a pending request past its review window is listed as expired
// (and left out of a pending or reviewable list).
func (s *Service) List(ctx context.Context, login string, f ListFilter) ([]*ca.Request, error) {
	q := ca.RequestFilter{}
	if f.State != "" {
		switch f.State {
		case ca.StatePending, ca.StateApproved, ca.StateDenied, ca.StateExpired, ca.StateCancelled:
			q.States = []string{f.State}
		default:
			return nil, newErr(ErrInvalid, CodeInvalidState, "unknown state %q", f.State)
		}
	}
	switch {
	case f.Reviewable:
		if f.State != "" && f.State != ca.StatePending && f.State != ca.StateApproved {
			return []*ca.Request{}, nil
		}
		q.States = []string{ca.StatePending}
		for _, g := range s.Groups() {
			ok, err := s.isApprover(ctx, login, s.policies[g])
			if err != nil {
				return nil, err
			}
			if ok {
				q.Groups = append(q.Groups, g)
			}
		}
		if len(q.Groups) == 0 {
			return []*ca.Request{}, nil
		}
	case f.Mine:
		q.Requester = login
	default:
		ok, err := s.IsAuditor(ctx, login)
		if err != nil {
			return nil, err
		}
		if !ok {
			q.Requester = login
		}
	}
	var reqs []*ca.Request
	var err error
	if f.Reviewable {
		reqs, err = s.reviewable(ctx, q, f.State)
	} else {
		reqs, err = s.store.ListRequests(ctx, q)
	}
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	out := make([]*ca.Request, 0, len(reqs))
	for _, r := range reqs {
		if f.Reviewable && r.Requester == login {
			continue
		}
		r = s.expiredView(r, now)
		followUp := f.Reviewable && r.FollowUp == ca.FollowUpNeedsReview
		if len(q.States) > 0 && !slices.Contains(q.States, r.State) && !followUp {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// change applies fn to a fresh copy of request id and commits the result,
// retrying a few times if the request changed concurrently.
func (s *Service) change(ctx context.Context, login, id string, fn func(cur, next *ca.Request, ch *ca.RequestChange) error) (*ca.Request, error) {
	for attempt := 0; ; attempt++ {
		cur, err := s.load(ctx, login, id)
		if err != nil {
			return nil, err
		}
		next := *cur
		next.Reviews = slices.Clone(cur.Reviews)
		next.UpdatedAt, next.Version = s.now().UTC(), cur.Version+1
		ch := ca.RequestChange{Request: &next, PrevVersion: cur.Version}
		if err := fn(cur, &next, &ch); err != nil {
			return nil, err
		}
		err = s.store.ApplyRequestChange(ctx, ch)
		if errors.Is(err, ca.ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ch.Review != nil {
			next.Reviews = append(next.Reviews, *ch.Review)
		}
		if ch.DismissReviews {
			for i := range next.Reviews {
				if e := next.Reviews[i].Event; e == ca.ReviewApprove || e == ca.ReviewRequestChanges {
					next.Reviews[i].Dismissed = true
				}
			}
		}
		s.watch.notify(id)
		return &next, nil
	}
}

// Edit changes a pending request's duration (only narrower) and/or reason,
// dismissing earlier approvals and change requests.
func (s *Service) Edit(ctx context.Context, login, id string, d time.Duration, reason *string) (_ *ca.Request, err error) {
	defer func() { s.recordRefusal(ctx, ca.EventRequestRefused, login, id, map[string]any{"action": "edit"}, err) }()
	if reason != nil {
		if err := CheckFreeText("reason", *reason, MaxReasonLen); err != nil {
			return nil, err
		}
		// Only pending requests can be edited, and those wait for an approver.
		if strings.TrimSpace(*reason) == "" {
			return nil, errReasonRequired("")
		}
	}
	return s.change(ctx, login, id, func(cur, next *ca.Request, ch *ca.RequestChange) error {
		if cur.Requester != login {
			return newErr(ErrForbidden, CodeNotRequester, "only %s may edit request %s", cur.Requester, cur.ID)
		}
		if cur.State != ca.StatePending {
			return newErr(ErrConflict, CodeRequestNotPending, "request %s is %s; only pending requests can be edited", cur.ID, cur.State)
		}
		data := map[string]any{}
		if d != 0 {
			if d < time.Minute || d > cur.Duration {
				return newErr(ErrInvalid, CodeInvalidDuration, "an edit may only narrow the duration: %s is not within 1m..%s", d, cur.Duration)
			}
			next.Duration = d
			data["duration"] = d.String()
		}
		if reason != nil {
			next.Reason = *reason
			data["reason"] = *reason
		}
		if len(data) == 0 {
			return newErr(ErrInvalid, CodeEmptyEdit, "nothing to change: give a new duration or reason")
		}
		ch.DismissReviews = true
		var dismissed []string
		for _, rv := range cur.Reviews {
			if !rv.Dismissed && (rv.Event == ca.ReviewApprove || rv.Event == ca.ReviewRequestChanges) {
				dismissed = append(dismissed, rv.Reviewer+":"+rv.Event)
			}
		}
		data["previous_duration"], data["previous_reason"], data["dismissed_reviews"] = cur.Duration.String(), cur.Reason, nonNil(dismissed)
		ch.Events = append(ch.Events, ca.Event{Time: next.UpdatedAt, Actor: login, Type: ca.EventRequestEdited, RequestID: cur.ID, Data: data})
		return nil
	})
}

// Cancel withdraws a pending request (requester only) or ends an open grant
// early (the requester or an approver of the group). Ending a grant revokes
// its unexpired certificates in the same ledger transaction, as
// 'jit-ssh revoke --request' does: a certificate never outlives its grant.
func (s *Service) Cancel(ctx context.Context, login, id string) (_ *ca.Request, err error) {
	defer func() {
		s.recordRefusal(ctx, ca.EventRequestRefused, login, id, map[string]any{"action": "cancel"}, err)
	}()
	var revoked *ca.CertRevocation
	r, err := s.change(ctx, login, id, func(cur, next *ca.Request, ch *ca.RequestChange) error {
		revoked = nil
		now := next.UpdatedAt
		switch {
		case cur.State == ca.StatePending:
			if cur.Requester != login {
				return newErr(ErrForbidden, CodeNotRequester, "only %s may cancel request %s; approvers can deny it", cur.Requester, cur.ID)
			}
			next.State = ca.StateCancelled
			ch.Events = append(ch.Events, ca.Event{Time: now, Actor: login, Type: ca.EventRequestCancelled, RequestID: cur.ID,
				Data: map[string]any{"previous_state": cur.State}})
		case cur.OpenAt(now):
			if cur.Requester != login {
				p, err := s.policy(cur.HostGroup)
				if err != nil {
					return err
				}
				if ok, err := s.isApprover(ctx, login, p); err != nil {
					return err
				} else if !ok {
					return newErr(ErrForbidden, CodeNotAnApprover, "only the requester or an approver of %s may end this grant", cur.HostGroup)
				}
			}
			next.EndedAt = now
			ch.Events = append(ch.Events, ca.Event{Time: now, Actor: login, Type: ca.EventGrantEnded, RequestID: cur.ID,
				Data: map[string]any{"ended_early": true, "reason": "cancelled by " + login, "grant_was_to_end_at": cur.GrantEnds()}})
			revoked = endedGrantRevocation(login, "cancelled by "+login, now)
			ch.RevokeCertificates = revoked
		default:
			return newErr(ErrConflict, CodeRequestClosed, "request %s is %s and has no open grant", cur.ID, cur.State)
		}
		return nil
	})
	if err == nil && revoked != nil && len(revoked.Serials) > 0 {
		s.log.LogAttrs(ctx, slog.LevelInfo, "grant ended early, certificates revoked", slog.String("request_id", r.ID),
			slog.String("actor", login), slog.Any("serials", revoked.Serials))
	}
	return r, err
}
