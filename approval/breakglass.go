package approval

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// BreakGlass grants login access to group at once, without an approver,
// under the group's break_glass policy (SPEC section 4c): login must be in
// one of its teams (and a requester), give a reason (matching its
// reason_pattern, if any), ask for at most its max_duration (0 means that
// maximum), and have no break-glass follow-up past due, in any group. The
// grant is recorded with its own event (ca.EventBreakGlass), every approver
// of the group is told at once (urgent), and its follow-up review stays
// needs_review until an approver reviews it (Review). allowed_hours does
// not apply: an emergency keeps no office hours, and the follow-up is
// where the grant is judged.
func (s *Service) BreakGlass(ctx context.Context, login, group string, d time.Duration, reason string) (_ *ca.Request, err error) {
	defer func() {
		s.recordRefusal(ctx, ca.EventRequestRefused, login, "", map[string]any{"action": "break_glass", "host_group": group}, err)
	}()
	p, err := s.policy(group)
	if err != nil {
		return nil, err
	}
	bg := p.BreakGlass
	if bg == nil {
		return nil, newErr(ErrForbidden, CodeBreakGlassNotAllowed, "%s has no break_glass policy; request access with 'jit-ssh login %s' and ask %s", group, group, approverTeams(p))
	}
	if err := CheckFreeText("reason", reason, MaxReasonLen); err != nil {
		return nil, err
	}
	member, err := s.memberOfAny(ctx, login, bg.Teams)
	if err != nil {
		return nil, err
	}
	if member {
		if member, err = s.isRequester(ctx, login, p); err != nil {
			return nil, err
		}
	}
	if !member {
		return nil, newErr(ErrForbidden, CodeNotABreakGlassTeam, "%s may not break glass for %s: not a member of %s", login, group, strings.Join(bg.Teams, ", "))
	}
	if strings.TrimSpace(reason) == "" {
		return nil, newErr(ErrInvalid, CodeReasonRequired, "breaking glass needs a reason (--reason): the approvers of %s review the grant from it afterwards", group)
	}
	if bg.ReasonPattern != nil && !bg.ReasonPattern.MatchString(reason) {
		return nil, newErr(ErrInvalid, CodeReasonPattern, "the reason must match %s (the break_glass reason_pattern of %s): name the incident, e.g. \"INC-42: primary down\"", bg.ReasonPattern, group)
	}
	if d == 0 {
		d = bg.MaxDuration
	}
	if d < time.Minute || d > bg.MaxDuration {
		return nil, newErr(ErrInvalid, CodeInvalidDuration, "break-glass duration %s is outside 1m..%s (break_glass.max_duration of %s)", d, bg.MaxDuration, group)
	}
	now := s.now().UTC()
	if err := s.checkNoOverdueFollowUp(ctx, login, now); err != nil {
		return nil, err
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	r := &ca.Request{ID: id, HostGroup: group, Requester: login, State: ca.StateApproved, Reason: reason, Duration: d,
		CreatedAt: now, UpdatedAt: now, ApprovedAt: now, Version: 1, Reviews: []ca.Review{},
		BreakGlass: true, FollowUp: ca.FollowUpNeedsReview, ReviewDueAt: now.Add(bg.ReviewWithin)}
	data := map[string]any{"host_group": group, "duration": d.String(), "reason": reason, "grant_ends_at": r.GrantEnds(),
		"review_due_at": r.ReviewDueAt, "notified_teams": nonNil(slices.Clone(p.Approvers))}
	if p.AllowedHours != nil && !p.AllowedHours.Contains(now) {
		data["outside_allowed_hours"] = p.AllowedHours.String()
	}
	events := []ca.Event{
		{Time: now, Actor: login, Type: ca.EventRequestCreated, RequestID: id,
			Data: map[string]any{"host_group": group, "duration": d.String(), "reason": reason, "break_glass": true}},
		{Time: now, Actor: login, Type: ca.EventBreakGlass, RequestID: id, Data: data},
	}
	if err := s.store.ApplyRequestChange(ctx, ca.RequestChange{Request: r, Create: true, Events: events}); err != nil {
		return nil, err
	}
	s.log.LogAttrs(ctx, slog.LevelWarn, "break glass: grant without approver", slog.String("request_id", id), slog.String("requester", login),
		slog.String("host_group", group), slog.Time("review_due_at", r.ReviewDueAt))
	s.notifyUrgent(ctx, ca.NotifyBreakGlass, login, r, nil, nil)
	return r, nil
}

// checkNoOverdueFollowUp refuses a new break glass by login while one of
// its break-glass grants, in any group, is past its follow-up's due time
// without a review, naming the oldest such grant. The store selects the
// overdue ones (FollowUpDueBy): a list of the newest open follow-ups would
// lose an overdue one behind a thousand newer grants.
func (s *Service) checkNoOverdueFollowUp(ctx context.Context, login string, now time.Time) error {
	open, err := s.store.ListRequests(ctx, ca.RequestFilter{Requester: login, FollowUp: ca.FollowUpNeedsReview, FollowUpDueBy: now, Limit: 1000})
	if err != nil {
		return err
	}
	var late *ca.Request
	for _, r := range open {
		if r.FollowUpOverdueAt(now) && (late == nil || r.ReviewDueAt.Before(late.ReviewDueAt)) {
			late = r
		}
	}
	if late == nil {
		return nil
	}
	teams := "an approver of " + late.HostGroup
	if p := s.policies[late.HostGroup]; p != nil {
		teams = approverTeams(p)
	}
	return newErr(ErrForbidden, CodeFollowUpOverdue,
		"you cannot break glass again: the follow-up review of your break-glass grant %s (%s) was due at %s; ask %s to review it ('jit-ssh review %s')",
		late.ID, late.HostGroup, late.ReviewDueAt.Format(time.RFC3339), teams, late.ID)
}

// approverTeams names p's approver teams for a message.
func approverTeams(p *Policy) string {
	if len(p.Approvers) == 0 {
		return "an approver"
	}
	return "a member of " + strings.Join(p.Approvers, ", ")
}

// followUp records an approver's review of a break-glass grant's follow-up
// into ch: APPROVE makes it justified; REQUEST_CHANGES or DENY not
// justified, which ends the grant if it is still open and revokes every
// certificate of it a host could still accept, in the same transaction.
// It returns that revocation (nil when justified). The caller has checked
// that login is an approver of the group, not the requester, and the body.
func followUp(login, event, body string, cur, next *ca.Request, ch *ca.RequestChange) (*ca.CertRevocation, error) {
	if cur.FollowUp != ca.FollowUpNeedsReview {
		return nil, newErr(ErrConflict, CodeFollowUpRecorded, "the follow-up of break-glass grant %s was recorded already: %s", cur.ID, strings.ReplaceAll(cur.FollowUp, "_", " "))
	}
	now := next.UpdatedAt
	outcome := ca.FollowUpJustified
	if event != ca.ReviewApprove {
		outcome = ca.FollowUpNotJustified
	}
	next.FollowUp, next.FollowedUpAt = outcome, now
	ch.Events = append(ch.Events, ca.Event{Time: now, Actor: login, Type: ca.EventFollowUp, RequestID: cur.ID,
		Data: map[string]any{"follow_up": outcome, "event": event, "body": body, "review_due_at": cur.ReviewDueAt, "late": !now.Before(cur.ReviewDueAt)}})
	if outcome == ca.FollowUpJustified {
		return nil, nil
	}
	why := "break-glass grant found not justified by " + login
	if cur.OpenAt(now) {
		next.EndedAt = now
		ch.Events = append(ch.Events, ca.Event{Time: now, Actor: login, Type: ca.EventGrantEnded, RequestID: cur.ID,
			Data: map[string]any{"ended_early": true, "reason": why, "grant_was_to_end_at": cur.GrantEnds()}})
	}
	rc := &ca.CertRevocation{Actor: login, Reason: why + ": " + body, At: now, NotExpiredAt: now.Add(-ca.DefaultSkew)}
	ch.RevokeCertificates = rc
	return rc, nil
}

// notifyUrgent tells the notifier about a break-glass change of r, marked
// urgent unless it is a justified follow-up.
func (s *Service) notifyUrgent(ctx context.Context, kind, actor string, r *ca.Request, rv *ca.Review, revoked []uint64) {
	if s.sink == nil || r == nil {
		return
	}
	n := ca.Notification{Kind: kind, Actor: actor, Request: *r, Urgent: kind != ca.NotifyJustified, Revoked: slices.Clone(revoked)}
	n.Request.Reviews = slices.Clone(r.Reviews)
	if rv != nil {
		c := *rv
		n.Review = &c
	}
	if p := s.policies[r.HostGroup]; p != nil {
		n.ApprovalsRequired, n.ApproverTeams = p.ApprovalsRequired, slices.Clone(p.Approvers)
	}
	s.sink.Notify(context.WithoutCancel(ctx), n)
}
