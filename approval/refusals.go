package approval

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Event types of refused decisions. Their data holds the refusal's code
// and reason and what was attempted.
const (
	// EventRequestRefused: a request could not be filed, edited or
	// cancelled (data "action": create, edit or cancel).
	EventRequestRefused = "request.refused"
	// EventReviewRefused: a review was not accepted (data "event").
	EventReviewRefused = "review.refused"
)

// RefusalWindow is how long identical refusals are counted rather than
// recorded one by one. The first of a kind is recorded at once; the
// identical ones (same actor, type, request, serial and data: code,
// reason and what was attempted) that follow within the window are
// counted, and recorded as one event when the window closes: the same
// type and data plus "count" (how many refusals the event stands for),
// "first_at" and "last_at". So a flood of one refusal costs at most two
// events a window, and none of it goes unrecorded.
const RefusalWindow = time.Minute

// maxCountedRefusals bounds the kinds of refusal counted at once (memory);
// past it a refusal is recorded on its own, as without counting.
const maxCountedRefusals = 10000

// eventRecorder is the optional part of a Store that appends an event of
// its own, outside any request change (store.DB has it).
type eventRecorder interface {
	RecordEvent(ctx context.Context, ev ca.Event) error
}

// refusalCounter holds the open windows of identical refusals, by key.
type refusalCounter struct {
	mu   sync.Mutex
	open map[string]*countedRefusal
}

// countedRefusal is one open window: the refusal recorded when it opened,
// and the identical ones since, not yet recorded.
type countedRefusal struct {
	ev              ca.Event
	opened          time.Time
	n               int
	firstAt, lastAt time.Time
}

// refusalKey is what makes two refusals identical: everything but the time.
func refusalKey(ev ca.Event) (string, bool) {
	b, err := json.Marshal(struct {
		Actor, Type, RequestID string
		Serial                 uint64
		Data                   map[string]any
	}{ev.Actor, ev.Type, ev.RequestID, ev.Serial, ev.Data})
	return string(b), err == nil
}

// recordRefusal records a decision the policy refused (an error of kind
// ErrForbidden) with its code and reason, so the ledger shows who tried
// what and why it was refused. Other failures (bad input, conflicts,
// outages) are not policy decisions and are not recorded.
func (s *Service) recordRefusal(ctx context.Context, typ, login, requestID string, data map[string]any, err error) {
	var ae *Error
	if !errors.As(err, &ae) || !errors.Is(ae.Kind, ErrForbidden) {
		return
	}
	if ca.CheckRequestID(requestID) != nil {
		requestID = ""
	}
	d := map[string]any{"code": ae.Code, "reason": ae.Message}
	maps.Copy(d, data)
	s.RecordRefusal(ctx, ca.Event{Time: s.now().UTC(), Actor: login, Type: typ, RequestID: requestID, Data: d})
}

// RecordRefusal records the refusal ev in the ledger, or counts it when an
// identical one was recorded within RefusalWindow (see there). A refusal
// that cannot be recorded is logged; it stands either way. The write is not
// cancelled with ctx.
func (s *Service) RecordRefusal(ctx context.Context, ev ca.Event) {
	rec, ok := s.store.(eventRecorder)
	if !ok {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if ev.Time.IsZero() {
		ev.Time = s.now().UTC()
	}
	key, ok := refusalKey(ev)
	if !ok {
		s.writeRefusal(ctx, rec, ev, 1)
		return
	}
	now := s.now()
	c := &s.refusals
	c.mu.Lock()
	w := c.open[key]
	if w != nil && now.Before(w.opened.Add(RefusalWindow)) {
		w.n++
		if w.n == 1 {
			w.firstAt = ev.Time
		}
		w.lastAt = ev.Time
		n := w.n
		c.mu.Unlock()
		s.log.LogAttrs(ctx, slog.LevelInfo, "refusal counted", slog.String("type", ev.Type), slog.String("actor", ev.Actor),
			slog.String("request_id", ev.RequestID), slog.Any("code", ev.Data["code"]), slog.Int("count", n))
		return
	}
	var closed *countedRefusal
	if w != nil {
		delete(c.open, key)
		if w.n > 0 {
			closed = w
		}
	}
	var opened *countedRefusal
	if len(c.open) < maxCountedRefusals {
		if c.open == nil {
			c.open = map[string]*countedRefusal{}
		}
		opened = &countedRefusal{ev: ev, opened: now}
		c.open[key] = opened
	}
	c.mu.Unlock()
	if closed != nil {
		s.writeCounted(ctx, rec, closed)
	}
	if !s.writeRefusal(ctx, rec, ev, 1) && opened != nil {
		// Not recorded: the window's count stands for it instead.
		c.mu.Lock()
		if opened.n == 0 || ev.Time.Before(opened.firstAt) {
			opened.firstAt = ev.Time
		}
		if opened.n == 0 || ev.Time.After(opened.lastAt) {
			opened.lastAt = ev.Time
		}
		opened.n++
		c.mu.Unlock()
	}
}

// FlushRefusals records the counts of the windows of identical refusals
// that have closed by now; with all, of every open window (at shutdown).
// The server calls it periodically.
func (s *Service) FlushRefusals(ctx context.Context, all bool) {
	rec, ok := s.store.(eventRecorder)
	if !ok {
		return
	}
	now := s.now()
	var closed []*countedRefusal
	c := &s.refusals
	c.mu.Lock()
	for k, w := range c.open {
		if all || !now.Before(w.opened.Add(RefusalWindow)) {
			delete(c.open, k)
			if w.n > 0 {
				closed = append(closed, w)
			}
		}
	}
	c.mu.Unlock()
	for _, w := range closed {
		s.writeCounted(context.WithoutCancel(ctx), rec, w)
	}
}

// writeCounted records a window's identical refusals as one event.
func (s *Service) writeCounted(ctx context.Context, rec eventRecorder, w *countedRefusal) {
	ev := w.ev
	ev.Time = s.now().UTC()
	ev.Data = maps.Clone(w.ev.Data)
	if ev.Data == nil {
		ev.Data = map[string]any{}
	}
	ev.Data["count"], ev.Data["first_at"], ev.Data["last_at"] = w.n, w.firstAt, w.lastAt
	s.writeRefusal(ctx, rec, ev, w.n)
}

// writeRefusal appends ev, standing for n refusals, and reports whether it
// was recorded; a failure is logged with the count.
func (s *Service) writeRefusal(ctx context.Context, rec eventRecorder, ev ca.Event, n int) bool {
	if err := rec.RecordEvent(ctx, ev); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "recording a refusal failed", slog.String("type", ev.Type),
			slog.String("actor", ev.Actor), slog.Any("code", ev.Data["code"]), slog.Int("count", n), slog.String("error", err.Error()))
		return false
	}
	return true
}
