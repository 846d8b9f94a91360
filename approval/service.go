package approval

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Store is what the service needs from the ledger.
type Store interface {
	ApplyRequestChange(ctx context.Context, ch ca.RequestChange) error
	GetRequest(ctx context.Context, id string) (*ca.Request, error)
	ListRequests(ctx context.Context, f ca.RequestFilter) ([]*ca.Request, error)
}

// Limits on free text.
const (
	MaxReasonLen = 1000
	MaxBodyLen   = 4000
)

// DefaultPendingTTL is how long a request may wait for review.
const DefaultPendingTTL = 24 * time.Hour

// Service is the policy decision point: every request, review and grant
// decision is taken here, with its reason.
type Service struct {
	store      Store
	dir        Directory
	policies   map[string]*Policy
	auditors   []string
	admins     []string
	now        func() time.Time
	rand       io.Reader
	pendingTTL time.Duration
	log        *slog.Logger
	watch      notifier
	sink       Notifier       // told about committed changes; nil = nobody
	refusals   refusalCounter // identical refusals being counted
	signInHint string         // "; " + WithSignInHint's hint, or ""
}

// ServiceOption configures a Service.
type ServiceOption func(*Service)

// WithClock sets the clock; nil means time.Now.
func WithClock(now func() time.Time) ServiceOption { return func(s *Service) { s.now = now } }

// WithPendingTTL sets how long a request may stay pending before it expires.
func WithPendingTTL(d time.Duration) ServiceOption { return func(s *Service) { s.pendingTTL = d } }

// WithSignInHint adds hint to the refusals of a missing or unknown token
// (after "; "): the dev server names its demo tokens there.
func WithSignInHint(hint string) ServiceOption {
	return func(s *Service) {
		if hint != "" {
			s.signInHint = "; " + hint
		}
	}
}

// CodeUnauthenticated is the error code of a missing or refused token.
const CodeUnauthenticated = "unauthenticated"

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) ServiceOption { return func(s *Service) { s.log = l } }

// NewService returns a Service over st and dir with the given host-group
// policies and auditor teams.
func NewService(st Store, dir Directory, policies []*Policy, auditors []string, opts ...ServiceOption) *Service {
	s := &Service{
		store: st, dir: dir, policies: map[string]*Policy{}, auditors: slices.Clone(auditors),
		now: time.Now, rand: rand.Reader, pendingTTL: DefaultPendingTTL, log: slog.New(slog.DiscardHandler),
	}
	for _, p := range policies {
		s.policies[p.Group] = p
	}
	for _, o := range opts {
		o(s)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Policy returns the policy of group, or nil.
func (s *Service) Policy(group string) *Policy { return s.policies[group] }

// Groups returns the configured host groups, sorted.
func (s *Service) Groups() []string {
	out := make([]string, 0, len(s.policies))
	for g := range s.policies {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

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
			return "", newErr(ErrForbidden, "reserved_login", "the login %q is reserved for jit-ssh's own events, so this account cannot use jit-ssh; sign in with another account", login)
		}
		return login, nil
	case errors.Is(err, ErrUnauthenticated):
		return "", newErr(ErrUnauthenticated, CodeUnauthenticated, "the token was not accepted; sign in again with 'jit-ssh auth login' or set JIT_SSH_TOKEN%s", s.signInHint)
	default:
		return "", s.unavailable(err)
	}
}

func (s *Service) unavailable(err error) *Error {
	return newErr(ErrUnavailable, "identity_unavailable", "identity provider unavailable, no decision possible: %v", err)
}

// memberOfAny reports whether login is in any of teams; provider failures
// fail closed.
func (s *Service) memberOfAny(ctx context.Context, login string, teams []string) (bool, error) {
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

// IsAuditor reports whether login may read the whole ledger.
func (s *Service) IsAuditor(ctx context.Context, login string) (bool, error) {
	return s.memberOfAny(ctx, login, s.auditors)
}

func (s *Service) policy(group string) (*Policy, error) {
	if err := ca.CheckGroup(group); err != nil {
		return nil, newErr(ErrInvalid, "invalid_host_group", "%q is not a valid host group name", group)
	}
	p := s.policies[group]
	if p == nil {
		return nil, newErr(ErrNotFound, "unknown_host_group", "unknown host group %q (known: %s)", group, strings.Join(s.Groups(), ", "))
	}
	return p, nil
}

// CheckFreeText is the one rule for free text people write into the
// ledger (a request's reason, a review's body, a revocation's reason):
// valid UTF-8, at most maxLen characters, and no character that would act
// on a terminal or reorder text instead of showing itself: no control
// characters but newline and tab (no escape sequences, no BEL), and no
// bidirectional controls (U+061C, U+200E, U+200F, U+202A-U+202E,
// U+2066-U+2069), which make text read differently from what it is. The
// error is an *Error of kind ErrInvalid (400) with code "invalid_"+what.
func CheckFreeText(what, s string, maxLen int) error {
	if !utf8.ValidString(s) {
		return newErr(ErrInvalid, "invalid_"+what, "%s is not valid UTF-8", what)
	}
	if utf8.RuneCountInString(s) > maxLen {
		return newErr(ErrInvalid, "invalid_"+what, "%s is longer than %d characters", what, maxLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return newErr(ErrInvalid, "invalid_"+what, "%s contains control characters (%U); write it as plain text", what, r)
		}
		if unicode.Is(unicode.Bidi_Control, r) {
			return newErr(ErrInvalid, "invalid_"+what, "%s contains a bidirectional text control (%U), which makes text display differently from what it says; write it without one", what, r)
		}
	}
	return nil
}

func (s *Service) newID() (string, error) {
	var b [10]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", fmt.Errorf("approval: request id: %w", err)
	}
	return "r-" + strings.ToLower(base32.StdEncoding.EncodeToString(b[:])), nil
}

// CodeReasonRequired is the error code of a request, or an edit, without
// a reason for a group whose approvers must read one.
const CodeReasonRequired = "reason_required"

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
		s.recordRefusal(ctx, EventRequestRefused, login, "", map[string]any{"action": "create", "host_group": group}, err)
	}()
	p, err := s.policy(group)
	if err != nil {
		return nil, err
	}
	if err := CheckFreeText("reason", reason, MaxReasonLen); err != nil {
		return nil, err
	}
	ok, err := s.memberOfAny(ctx, login, p.Requesters)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, newErr(ErrForbidden, "not_a_requester", "%s may not request %s: not a member of %s", login, group, strings.Join(p.Requesters, ", "))
	}
	if p.ApprovalsRequired > 0 && strings.TrimSpace(reason) == "" {
		return nil, errReasonRequired(group)
	}
	if d == 0 {
		d = p.DefaultDuration()
	}
	if d < time.Minute || d > p.MaxDuration {
		return nil, newErr(ErrInvalid, "invalid_duration", "duration %s is outside 1m..%s (max_duration of %s)", d, p.MaxDuration, group)
	}
	now := s.now().UTC()
	if p.AllowedHours != nil && !p.AllowedHours.Contains(now) {
		return nil, newErr(ErrForbidden, "outside_allowed_hours", "%s may only be requested %s", group, p.AllowedHours)
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	r := &ca.Request{ID: id, HostGroup: group, Requester: login, State: ca.StatePending, Reason: reason, Duration: d,
		CreatedAt: now, UpdatedAt: now, Version: 1, Reviews: []ca.Review{}}
	events := []ca.Event{{Time: now, Actor: login, Type: ca.EventRequestCreated, RequestID: id,
		Data: map[string]any{"host_group": group, "duration": d.String(), "reason": reason, "approvals_required": p.ApprovalsRequired}}}
	if p.ApprovalsRequired == 0 {
		r.State, r.ApprovedAt = ca.StateApproved, now
		events = append(events, grantStarted(r, nil, "auto-approved: approvals_required is 0"))
	}
	if err := s.store.ApplyRequestChange(ctx, ca.RequestChange{Request: r, Create: true, Events: events}); err != nil {
		return nil, err
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "request created", slog.String("request_id", id), slog.String("requester", login),
		slog.String("host_group", group), slog.String("state", r.State))
	s.notify(ctx, NotifyCreated, login, r, nil)
	return r, nil
}

func grantStarted(r *ca.Request, approvers []string, why string) ca.Event {
	return ca.Event{Time: r.ApprovedAt, Actor: r.Requester, Type: ca.EventGrantStarted, RequestID: r.ID,
		Data: map[string]any{"approvers": nonNil(approvers), "grant_ends_at": r.GrantEnds(), "why": why}}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// canSee reports whether login may read r: the requester, an approver of
// its group, or an auditor.
func (s *Service) canSee(ctx context.Context, login string, r *ca.Request) (bool, error) {
	if r.Requester == login {
		return true, nil
	}
	if p := s.policies[r.HostGroup]; p != nil {
		if ok, err := s.memberOfAny(ctx, login, p.Approvers); err != nil || ok {
			return ok, err
		}
	}
	return s.IsAuditor(ctx, login)
}

// Get returns request id as login may see it. Requests login may not see
// are reported as not found.
func (s *Service) Get(ctx context.Context, login, id string) (*ca.Request, error) {
	return s.getIf(ctx, login, id, s.canSee)
}

// getIf is Get with may deciding who sees the request.
func (s *Service) getIf(ctx context.Context, login, id string, may func(ctx context.Context, login string, r *ca.Request) (bool, error)) (*ca.Request, error) {
	if ca.CheckRequestID(id) != nil {
		return nil, newErr(ErrInvalid, "invalid_request_id", "%q is not a request ID", id)
	}
	r, err := s.store.GetRequest(ctx, id)
	if errors.Is(err, ca.ErrNotFound) {
		return nil, newErr(ErrNotFound, "request_not_found", "no request %s", id)
	}
	if err != nil {
		return nil, err
	}
	if ok, err := may(ctx, login, r); err != nil {
		return nil, err
	} else if !ok {
		return nil, newErr(ErrNotFound, "request_not_found", "no request %s", id)
	}
	if r, err = s.expireIfDue(ctx, r); err != nil {
		return nil, err
	}
	return s.endGrantIfDue(ctx, r)
}

// endGrantIfDue records the natural end of an approved request's grant once
// its time has run out: EndedAt is set to the end and a grant.ended event
// written, so the log shows every grant both starting and ending.
func (s *Service) endGrantIfDue(ctx context.Context, r *ca.Request) (*ca.Request, error) {
	now := s.now().UTC()
	end := r.GrantEnds()
	if r.State != ca.StateApproved || !r.EndedAt.IsZero() || end.IsZero() || now.Before(end) {
		return r, nil
	}
	next := *r
	next.EndedAt, next.UpdatedAt, next.Version = end, now, r.Version+1
	err := s.store.ApplyRequestChange(ctx, ca.RequestChange{Request: &next, PrevVersion: r.Version, Events: []ca.Event{{
		Time: now, Actor: ca.SystemActor, Type: ca.EventGrantEnded, RequestID: r.ID,
		Data: map[string]any{"ended_early": false, "reason": "duration elapsed", "grant_ended_at": end, "duration": r.Duration.String()},
	}}})
	if errors.Is(err, ca.ErrConflict) {
		return s.store.GetRequest(ctx, r.ID)
	}
	if err != nil {
		return nil, err
	}
	s.watch.notify(r.ID)
	return &next, nil
}

// EndElapsedGrants records the end of every grant whose time has run out.
// The server calls it periodically so the end is recorded even if nobody
// looks at the request again.
func (s *Service) EndElapsedGrants(ctx context.Context) error {
	reqs, err := s.store.ListRequests(ctx, ca.RequestFilter{GrantElapsedBy: s.now().UTC(), Limit: 1000})
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range reqs {
		if _, err := s.endGrantIfDue(ctx, r); err != nil {
			if ctx.Err() != nil {
				return err
			}
			// One request the ledger refuses (for one, a row that does not
			// match the event log) does not hold up the others.
			s.log.LogAttrs(ctx, slog.LevelWarn, "ending an elapsed grant failed", slog.String("request_id", r.ID), slog.String("error", err.Error()))
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// expireIfDue moves a pending request past its review window to expired.
func (s *Service) expireIfDue(ctx context.Context, r *ca.Request) (*ca.Request, error) {
	now := s.now().UTC()
	if r.State != ca.StatePending || now.Before(r.CreatedAt.Add(s.pendingTTL)) {
		return r, nil
	}
	next := *r
	next.State, next.UpdatedAt, next.Version = ca.StateExpired, now, r.Version+1
	err := s.store.ApplyRequestChange(ctx, ca.RequestChange{Request: &next, PrevVersion: r.Version, Events: []ca.Event{{
		Time: now, Actor: ca.SystemActor, Type: ca.EventRequestExpired, RequestID: r.ID,
		Data: map[string]any{"pending_ttl": s.pendingTTL.String()},
	}}})
	if errors.Is(err, ca.ErrConflict) {
		return s.store.GetRequest(ctx, r.ID)
	}
	if err != nil {
		return nil, err
	}
	s.watch.notify(r.ID)
	s.notify(ctx, NotifyExpired, ca.SystemActor, &next, nil)
	return &next, nil
}

// ExpirePending expires every pending request past its review window. The
// server calls it periodically so expiry is recorded even if nobody looks.
func (s *Service) ExpirePending(ctx context.Context) error {
	reqs, err := s.store.ListRequests(ctx, ca.RequestFilter{States: []string{ca.StatePending}, Limit: 1000})
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range reqs {
		if _, err := s.expireIfDue(ctx, r); err != nil {
			if ctx.Err() != nil {
				return err
			}
			// As in EndElapsedGrants: the others are still expired.
			s.log.LogAttrs(ctx, slog.LevelWarn, "expiring a pending request failed", slog.String("request_id", r.ID), slog.String("error", err.Error()))
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Wait returns request id once its version differs from version, or when
// maxWait passes or ctx ends, whichever is first.
func (s *Service) Wait(ctx context.Context, login, id string, version int64, maxWait time.Duration) (*ca.Request, error) {
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	for {
		changed := s.watch.subscribe(id)
		r, err := s.Get(ctx, login, id)
		if err != nil || r.Version != version {
			return r, err
		}
		select {
		case <-changed:
		case <-timer.C:
			return r, nil
		case <-ctx.Done():
			return r, nil
		}
	}
}

// ListFilter selects requests for List.
type ListFilter struct {
	Mine       bool
	Reviewable bool
	State      string
}

// List returns requests login may see. Reviewable means pending requests of
// groups login approves, not login's own. Without Mine or Reviewable,
// auditors see every request and others their own.
func (s *Service) List(ctx context.Context, login string, f ListFilter) ([]*ca.Request, error) {
	q := ca.RequestFilter{}
	if f.State != "" {
		switch f.State {
		case ca.StatePending, ca.StateApproved, ca.StateDenied, ca.StateExpired, ca.StateCancelled:
			q.States = []string{f.State}
		default:
			return nil, newErr(ErrInvalid, "invalid_state", "unknown state %q", f.State)
		}
	}
	switch {
	case f.Reviewable:
		if f.State != "" && f.State != ca.StatePending {
			return []*ca.Request{}, nil
		}
		q.States = []string{ca.StatePending}
		for _, g := range s.Groups() {
			ok, err := s.memberOfAny(ctx, login, s.policies[g].Approvers)
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
	reqs, err := s.store.ListRequests(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]*ca.Request, 0, len(reqs))
	for _, r := range reqs {
		if f.Reviewable && r.Requester == login {
			continue
		}
		r, err := s.expireIfDue(ctx, r)
		if err != nil {
			return nil, err
		}
		if len(q.States) > 0 && !slices.Contains(q.States, r.State) {
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
		cur, err := s.Get(ctx, login, id)
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

// Review records a review by login. APPROVE, REQUEST_CHANGES and DENY need
// membership of an approver team of the group and a pending request, and are
// never accepted from the requester. The request is approved as soon as the
// tally is satisfied; DENY is final.
func (s *Service) Review(ctx context.Context, login, id, event, body string) (_ *ca.Request, err error) {
	defer func() { s.recordRefusal(ctx, EventReviewRefused, login, id, map[string]any{"event": event}, err) }()
	switch event {
	case ca.ReviewApprove, ca.ReviewRequestChanges, ca.ReviewComment, ca.ReviewDeny:
	default:
		return nil, newErr(ErrInvalid, "invalid_review_event", "review event %q must be APPROVE, REQUEST_CHANGES, COMMENT or DENY", event)
	}
	if err := CheckFreeText("body", body, MaxBodyLen); err != nil {
		return nil, err
	}
	if (event == ca.ReviewComment || event == ca.ReviewRequestChanges || event == ca.ReviewDeny) && strings.TrimSpace(body) == "" {
		return nil, newErr(ErrInvalid, "body_required", "a %s review needs a body (-m) saying why", event)
	}
	if err := s.checkReviewer(ctx, login, id); err != nil {
		return nil, err
	}
	r, err := s.change(ctx, login, id, func(cur, next *ca.Request, ch *ca.RequestChange) error {
		p, err := s.policy(cur.HostGroup)
		if err != nil {
			return err
		}
		isApprover, err := s.memberOfAny(ctx, login, p.Approvers)
		if err != nil {
			return err
		}
		if event != ca.ReviewComment {
			if !isApprover {
				return newErr(ErrForbidden, "not_an_approver", "%s may not review %s: not a member of %s", login, cur.HostGroup, strings.Join(p.Approvers, ", "))
			}
			if login == cur.Requester {
				return newErr(ErrForbidden, "self_review", "you cannot review your own request; ask a member of %s", strings.Join(p.Approvers, ", "))
			}
			if cur.State != ca.StatePending {
				return newErr(ErrConflict, "request_not_pending", "request %s is %s; only pending requests can be reviewed", cur.ID, cur.State)
			}
		} else if !isApprover && login != cur.Requester {
			return newErr(ErrForbidden, "not_an_approver", "only the requester and approvers of %s may comment", cur.HostGroup)
		}
		now := next.UpdatedAt
		rv := ca.Review{RequestID: cur.ID, Reviewer: login, Event: event, Body: body, CreatedAt: now}
		ch.Review = &rv
		ch.Events = append(ch.Events, ca.Event{Time: now, Actor: login, Type: ca.EventReview, RequestID: cur.ID,
			Data: map[string]any{"event": event, "body": body}})
		tally := TallyReviews(&ca.Request{Requester: cur.Requester, Reviews: append(slices.Clone(cur.Reviews), rv)})
		// An approval counts only while its author is still an approver,
		// the same rule Authorize applies at issuance.
		var lookupErr error
		tally.Approvers = onlyMembers(tally.Approvers, func(a string) bool {
			ok, err := s.memberOfAny(ctx, a, p.Approvers)
			if err != nil && lookupErr == nil {
				lookupErr = err
			}
			return ok
		})
		if lookupErr != nil {
			return lookupErr
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
	if err == nil {
		s.notifyReview(ctx, login, r)
	}
	return r, err
}

// checkReviewer refuses, with 403 and the reason, a review by someone who
// is neither the requester nor an approver of the request's group. Such
// callers cannot read the request (Get says "not found"), but a review
// names a request ID they were shown (for example in a notification), so
// they are told why their review does not count. Request IDs are random,
// so this reveals nothing guessable.
func (s *Service) checkReviewer(ctx context.Context, login, id string) error {
	if ca.CheckRequestID(id) != nil {
		return newErr(ErrInvalid, "invalid_request_id", "%q is not a request ID", id)
	}
	r, err := s.store.GetRequest(ctx, id)
	if errors.Is(err, ca.ErrNotFound) {
		return newErr(ErrNotFound, "request_not_found", "no request %s", id)
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
	ok, err := s.memberOfAny(ctx, login, p.Approvers)
	if err != nil {
		return err
	}
	if !ok {
		return newErr(ErrForbidden, "not_an_approver", "%s may not review %s requests: not a member of %s", login, r.HostGroup, strings.Join(p.Approvers, ", "))
	}
	return nil
}

// Edit changes a pending request's duration (only narrower) and/or reason,
// dismissing earlier approvals and change requests.
func (s *Service) Edit(ctx context.Context, login, id string, d time.Duration, reason *string) (_ *ca.Request, err error) {
	defer func() { s.recordRefusal(ctx, EventRequestRefused, login, id, map[string]any{"action": "edit"}, err) }()
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
			return newErr(ErrForbidden, "not_requester", "only %s may edit request %s", cur.Requester, cur.ID)
		}
		if cur.State != ca.StatePending {
			return newErr(ErrConflict, "request_not_pending", "request %s is %s; only pending requests can be edited", cur.ID, cur.State)
		}
		data := map[string]any{}
		if d != 0 {
			if d < time.Minute || d > cur.Duration {
				return newErr(ErrInvalid, "invalid_duration", "an edit may only narrow the duration: %s is not within 1m..%s", d, cur.Duration)
			}
			next.Duration = d
			data["duration"] = d.String()
		}
		if reason != nil {
			next.Reason = *reason
			data["reason"] = *reason
		}
		if len(data) == 0 {
			return newErr(ErrInvalid, "empty_edit", "nothing to change: give a new duration or reason")
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
	defer func() { s.recordRefusal(ctx, EventRequestRefused, login, id, map[string]any{"action": "cancel"}, err) }()
	var revoked *ca.CertRevocation
	r, err := s.change(ctx, login, id, func(cur, next *ca.Request, ch *ca.RequestChange) error {
		revoked = nil
		now := next.UpdatedAt
		switch {
		case cur.State == ca.StatePending:
			if cur.Requester != login {
				return newErr(ErrForbidden, "not_requester", "only %s may cancel request %s; approvers can deny it", cur.Requester, cur.ID)
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
				if ok, err := s.memberOfAny(ctx, login, p.Approvers); err != nil {
					return err
				} else if !ok {
					return newErr(ErrForbidden, "not_an_approver", "only the requester or an approver of %s may end this grant", cur.HostGroup)
				}
			}
			next.EndedAt = now
			ch.Events = append(ch.Events, ca.Event{Time: now, Actor: login, Type: ca.EventGrantEnded, RequestID: cur.ID,
				Data: map[string]any{"ended_early": true, "reason": "cancelled by " + login, "grant_was_to_end_at": cur.GrantEnds()}})
			revoked = endedGrantRevocation(login, "cancelled by "+login, now)
			ch.RevokeCertificates = revoked
		default:
			return newErr(ErrConflict, "request_closed", "request %s is %s and has no open grant", cur.ID, cur.State)
		}
		return nil
	})
	if err == nil && revoked != nil && len(revoked.Serials) > 0 {
		s.log.LogAttrs(ctx, slog.LevelInfo, "grant ended early, certificates revoked", slog.String("request_id", r.ID),
			slog.String("actor", login), slog.Any("serials", revoked.Serials))
	}
	return r, err
}

// endedGrantRevocation revokes, with a grant that ends early at now, every
// certificate of it that a host could still accept: the same margin the KRL
// keeps a revoked serial listed for (ca.DefaultSkew past its expiry).
func endedGrantRevocation(actor, why string, now time.Time) *ca.CertRevocation {
	return &ca.CertRevocation{Actor: actor, Reason: "grant ended early: " + why, At: now, NotExpiredAt: now.Add(-ca.DefaultSkew)}
}

// Authorize decides whether login may be issued a certificate under request
// id now, re-checking the requester's and each approver's membership. It
// returns the grant to issue under.
func (s *Service) Authorize(ctx context.Context, login, id string) (ca.Grant, error) {
	r, err := s.Get(ctx, login, id)
	if err != nil {
		return ca.Grant{}, err
	}
	if r.Requester != login {
		return ca.Grant{}, newErr(ErrForbidden, "not_requester", "request %s belongs to %s; certificates are issued only to the requester", r.ID, r.Requester)
	}
	now := s.now()
	if r.State != ca.StateApproved {
		return ca.Grant{}, newErr(ErrConflict, "request_not_approved", "request %s is %s, not approved", r.ID, r.State)
	}
	if !r.OpenAt(now) {
		return ca.Grant{}, newErr(ErrConflict, "grant_ended", "the grant of request %s ended at %s; run 'jit-ssh login %s' for a new one", r.ID, r.GrantEnds().Format(time.RFC3339), r.HostGroup)
	}
	p, err := s.policy(r.HostGroup)
	if err != nil {
		return ca.Grant{}, err
	}
	if ok, err := s.memberOfAny(ctx, login, p.Requesters); err != nil {
		return ca.Grant{}, err
	} else if !ok {
		return ca.Grant{}, newErr(ErrForbidden, "not_a_requester", "%s is no longer a member of %s", login, strings.Join(p.Requesters, ", "))
	}
	if p.AllowedHours != nil && !p.AllowedHours.Contains(now) {
		return ca.Grant{}, newErr(ErrForbidden, "outside_allowed_hours", "%s may only be accessed %s", r.HostGroup, p.AllowedHours)
	}
	approvers := TallyReviews(r).Approvers
	var lookupErr error
	valid := onlyMembers(approvers, func(a string) bool {
		ok, err := s.memberOfAny(ctx, a, p.Approvers)
		if err != nil && lookupErr == nil {
			lookupErr = err
		}
		return ok
	})
	if lookupErr != nil {
		return ca.Grant{}, lookupErr
	}
	if len(valid) < p.ApprovalsRequired {
		return ca.Grant{}, newErr(ErrForbidden, "approval_no_longer_valid",
			"request %s has %d valid approvals of %d required: an approver has left %s", r.ID, len(valid), p.ApprovalsRequired, strings.Join(p.Approvers, ", "))
	}
	return ca.Grant{RequestID: r.ID, User: login, Group: r.HostGroup, Approvers: valid, Ends: r.GrantEnds(), Profile: p.Profile()}, nil
}

// notifier wakes long-polling waiters when a request changes.
type notifier struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

func (n *notifier) subscribe(id string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = map[string]chan struct{}{}
	}
	c, ok := n.ch[id]
	if !ok {
		c = make(chan struct{})
		n.ch[id] = c
	}
	return c
}

func (n *notifier) notify(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c, ok := n.ch[id]; ok {
		close(c)
		delete(n.ch, id)
	}
}
