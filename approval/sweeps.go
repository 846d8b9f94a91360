package approval

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// The time-driven changes of a request: a pending request expires once its
// review window (the pending TTL) has passed, and an approved request's
// grant ends once its time has run out. Each is decided by one rule here
// (expiryDue, ca.Request.GrantElapsedAt) and built by one function
// (expired, ended). Reads (Get, List) only show them (effective,
// expiredView); the sweepers (ExpirePending, EndElapsedGrants) record them,
// and so does any action on the request before it acts (getIf).

// expiryDue reports whether r is a pending request whose review window has
// passed at now.
func (s *Service) expiryDue(r *ca.Request, now time.Time) bool {
	return r.State == ca.StatePending && !now.Before(r.CreatedAt.Add(s.pendingTTL))
}

// expired returns r as its expiry at now leaves it.
func expired(r *ca.Request, now time.Time) *ca.Request {
	next := *r
	next.State, next.UpdatedAt, next.Version = ca.StateExpired, now, r.Version+1
	return &next
}

// ended returns r as the recorded natural end of its grant at now leaves
// it: EndedAt is the end.
func ended(r *ca.Request, now time.Time) *ca.Request {
	next := *r
	next.EndedAt, next.UpdatedAt, next.Version = r.GrantEnds(), now, r.Version+1
	return &next
}

// effective returns r as it stands at now, without writing: expired if its
// expiry is due, ended if its grant has elapsed; otherwise r itself. It is
// what the sweeper's (or an action's) write would make of it at now.
func (s *Service) effective(r *ca.Request, now time.Time) *ca.Request {
	switch {
	case s.expiryDue(r, now):
		return expired(r, now)
	case r.GrantElapsedAt(now):
		return ended(r, now)
	}
	return r
}

// expiredView returns r as expired if its expiry is due at now, without
// writing; otherwise r itself. List shows requests this way.
func (s *Service) expiredView(r *ca.Request, now time.Time) *ca.Request {
	if s.expiryDue(r, now) {
		return expired(r, now)
	}
	return r
}

// expireIfDue records the expiry of a pending request past its review
// window.
func (s *Service) expireIfDue(ctx context.Context, r *ca.Request) (*ca.Request, error) {
	now := s.now().UTC()
	if !s.expiryDue(r, now) {
		return r, nil
	}
	next := expired(r, now)
	err := s.store.ApplyRequestChange(ctx, ca.RequestChange{Request: next, PrevVersion: r.Version, Events: []ca.Event{{
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
	s.notify(ctx, ca.NotifyExpired, ca.SystemActor, next, nil)
	return next, nil
}

// endGrantIfDue records the natural end of an approved request's grant once
// its time has run out: EndedAt is set to the end and a grant.ended event
// written, so the log shows every grant both starting and ending.
func (s *Service) endGrantIfDue(ctx context.Context, r *ca.Request) (*ca.Request, error) {
	now := s.now().UTC()
	if !r.GrantElapsedAt(now) {
		return r, nil
	}
	next := ended(r, now)
	err := s.store.ApplyRequestChange(ctx, ca.RequestChange{Request: next, PrevVersion: r.Version, Events: []ca.Event{{
		Time: now, Actor: ca.SystemActor, Type: ca.EventGrantEnded, RequestID: r.ID,
		Data: map[string]any{"ended_early": false, "reason": "duration elapsed", "grant_ended_at": next.EndedAt, "duration": r.Duration.String()},
	}}})
	if errors.Is(err, ca.ErrConflict) {
		return s.store.GetRequest(ctx, r.ID)
	}
	if err != nil {
		return nil, err
	}
	s.watch.notify(r.ID)
	return next, nil
}

// ExpirePending expires every pending request past its review window. The
// server calls it periodically: reads only show an expiry, this records it.
func (s *Service) ExpirePending(ctx context.Context) error {
	reqs, err := s.store.ListRequests(ctx, ca.RequestFilter{States: []string{ca.StatePending}, Limit: 1000})
	if err != nil {
		return err
	}
	return s.sweep(ctx, reqs, s.expireIfDue, "expiring a pending request failed")
}

// EndElapsedGrants records the end of every grant whose time has run out.
// The server calls it periodically: reads only show the end, this records
// it.
func (s *Service) EndElapsedGrants(ctx context.Context) error {
	reqs, err := s.store.ListRequests(ctx, ca.RequestFilter{GrantElapsedBy: s.now().UTC(), Limit: 1000})
	if err != nil {
		return err
	}
	return s.sweep(ctx, reqs, s.endGrantIfDue, "ending an elapsed grant failed")
}

// sweep applies record to every request of reqs. One request the ledger
// refuses (for one, a row that does not match the event log) does not hold
// up the others: its failure is logged and returned with the rest.
func (s *Service) sweep(ctx context.Context, reqs []*ca.Request, record func(context.Context, *ca.Request) (*ca.Request, error), failed string) error {
	var errs []error
	for _, r := range reqs {
		if _, err := record(ctx, r); err != nil {
			if ctx.Err() != nil {
				return err
			}
			s.log.LogAttrs(ctx, slog.LevelWarn, failed, slog.String("request_id", r.ID), slog.String("error", err.Error()))
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
