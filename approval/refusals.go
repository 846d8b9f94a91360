package approval

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// RefusalWindow is how long identical refusals are counted rather than
// recorded one by one. The first of a kind is recorded at once; the
// identical ones (same actor, type, request, serial, code and kind of
// attempt: the data's "action", "event" and "host_group") that follow
// within the window are counted, whatever else they presented (a key's
// fingerprint, a reason), and recorded as one event when the window
// closes: the first one's type and data plus "count" (how many refusals
// the event stands for), "first_at", "last_at" and, when the others
// differed from it in other data, "samples": for each such field, up to
// maxRefusalSamples of the values that differed. So a flood of one kind
// costs at most two events a window, and none of it goes unrecorded: a
// count the ledger refuses to write is kept for the next flush.
const RefusalWindow = time.Minute

// refusalKindFields are the data fields that tell kinds of refusal apart
// (besides "code"); other data varies per attempt and is only sampled.
var refusalKindFields = [...]string{"action", "event", "host_group"}

const (
	// maxRefusalKindsPerActor bounds the kinds of refusal counted at once
	// for one actor, so one identity cannot use up maxCountedRefusals;
	// past it the actor's refusals are recorded on their own, as without
	// counting.
	maxRefusalKindsPerActor = 64
	// maxCountedRefusals bounds the kinds counted at once in all (memory).
	maxCountedRefusals = 10000
	// maxRefusalSamples bounds the differing values kept per data field,
	// maxRefusalSampleFields the fields sampled, per window.
	maxRefusalSamples      = 5
	maxRefusalSampleFields = 8
)

// refusalCounter holds the open windows of identical refusals, by key, and
// how many each actor holds.
type refusalCounter struct {
	mu      sync.Mutex
	open    map[string]*countedRefusal
	byActor map[string]int
}

// countedRefusal is one open window: the refusal recorded when it opened,
// and the identical ones since, not yet recorded.
type countedRefusal struct {
	key             string
	ev              ca.Event
	opened          time.Time
	n               int
	firstAt, lastAt time.Time
	samples         map[string][]any // differing values, by data field
}

// refusalKey is what makes two refusals identical: the actor, type,
// request, serial, code and refusalKindFields, not per-attempt data.
func refusalKey(ev ca.Event) (string, bool) {
	var kind [len(refusalKindFields)]any
	for i, f := range refusalKindFields {
		kind[i] = ev.Data[f]
	}
	b, err := json.Marshal(struct {
		Actor, Type, RequestID string
		Serial                 uint64
		Code                   any
		Kind                   [len(refusalKindFields)]any
	}{ev.Actor, ev.Type, ev.RequestID, ev.Serial, ev.Data["code"], kind})
	return string(b), err == nil
}

// count adds one refusal at t with data to the window.
func (w *countedRefusal) count(t time.Time, data map[string]any) {
	if w.n == 0 || t.Before(w.firstAt) {
		w.firstAt = t
	}
	if w.n == 0 || t.After(w.lastAt) {
		w.lastAt = t
	}
	w.n++
	for f, v := range data {
		if f == "code" || slices.Contains(refusalKindFields[:], f) {
			continue
		}
		if first, ok := w.ev.Data[f]; !ok || !sameValue(first, v) {
			w.sample(f, v)
		}
	}
}

// sample keeps v as a value of field f that differed from the first's,
// within maxRefusalSamples and maxRefusalSampleFields.
func (w *countedRefusal) sample(f string, v any) {
	vs, ok := w.samples[f]
	if !ok && len(w.samples) >= maxRefusalSampleFields || len(vs) >= maxRefusalSamples ||
		slices.ContainsFunc(vs, func(s any) bool { return sameValue(s, v) }) {
		return
	}
	if w.samples == nil {
		w.samples = map[string][]any{}
	}
	w.samples[f] = append(vs, v)
}

// merge adds the refusals counted in o to w.
func (w *countedRefusal) merge(o *countedRefusal) {
	if o.n == 0 {
		return
	}
	if w.n == 0 || o.firstAt.Before(w.firstAt) {
		w.firstAt = o.firstAt
	}
	if w.n == 0 || o.lastAt.After(w.lastAt) {
		w.lastAt = o.lastAt
	}
	w.n += o.n
	for _, f := range slices.Sorted(maps.Keys(o.samples)) {
		for _, v := range o.samples[f] {
			w.sample(f, v)
		}
	}
}

// sameValue reports whether a and b encode to the same JSON.
func sameValue(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// add opens w unless the caps are reached; c.mu is held.
func (c *refusalCounter) add(w *countedRefusal) bool {
	if len(c.open) >= maxCountedRefusals || c.byActor[w.ev.Actor] >= maxRefusalKindsPerActor {
		return false
	}
	if c.open == nil {
		c.open, c.byActor = map[string]*countedRefusal{}, map[string]int{}
	}
	c.open[w.key] = w
	c.byActor[w.ev.Actor]++
	return true
}

// remove closes w; c.mu is held.
func (c *refusalCounter) remove(w *countedRefusal) {
	delete(c.open, w.key)
	if c.byActor[w.ev.Actor]--; c.byActor[w.ev.Actor] <= 0 {
		delete(c.byActor, w.ev.Actor)
	}
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

// RecordRefusal records the refusal ev in the ledger (Store.RecordEvent),
// or counts it when an identical one was recorded within RefusalWindow
// (see there). A refusal
// that cannot be recorded is logged; it stands either way. The write is not
// cancelled with ctx.
func (s *Service) RecordRefusal(ctx context.Context, ev ca.Event) {
	ctx = context.WithoutCancel(ctx)
	if ev.Time.IsZero() {
		ev.Time = s.now().UTC()
	}
	key, ok := refusalKey(ev)
	if !ok {
		s.writeRefusal(ctx, ev, 1)
		return
	}
	now := s.now()
	c := &s.refusals
	c.mu.Lock()
	w := c.open[key]
	if w != nil && now.Before(w.opened.Add(RefusalWindow)) {
		w.count(ev.Time, ev.Data)
		n := w.n
		c.mu.Unlock()
		s.log.LogAttrs(ctx, slog.LevelInfo, "refusal counted", slog.String("type", ev.Type), slog.String("actor", ev.Actor),
			slog.String("request_id", ev.RequestID), slog.Any("code", ev.Data["code"]), slog.Int("count", n))
		return
	}
	var closed *countedRefusal
	if w != nil {
		c.remove(w)
		if w.n > 0 {
			closed = w
		}
	}
	opened := &countedRefusal{key: key, ev: ev, opened: now}
	if !c.add(opened) {
		opened = nil
	}
	c.mu.Unlock()
	if closed != nil {
		s.writeCounted(ctx, closed)
	}
	if !s.writeRefusal(ctx, ev, 1) && opened != nil {
		// Not recorded: the window's count stands for it instead.
		c.mu.Lock()
		opened.count(ev.Time, nil)
		c.mu.Unlock()
	}
}

// FlushRefusals records the counts of the windows of identical refusals
// that have closed by now; with all, of every open window (at shutdown).
// A count that cannot be recorded is kept for the next flush. The server
// calls it periodically.
func (s *Service) FlushRefusals(ctx context.Context, all bool) {
	now := s.now()
	var closed []*countedRefusal
	c := &s.refusals
	c.mu.Lock()
	for _, w := range c.open {
		if all || !now.Before(w.opened.Add(RefusalWindow)) {
			c.remove(w)
			if w.n > 0 {
				closed = append(closed, w)
			}
		}
	}
	c.mu.Unlock()
	for _, w := range closed {
		s.writeCounted(context.WithoutCancel(ctx), w)
	}
}

// writeCounted records a window's identical refusals as one event. When
// the ledger refuses the write, the count goes back for the next flush:
// into the window of its kind opened since, or as its own closed window
// (within the caps; past them it is only logged).
func (s *Service) writeCounted(ctx context.Context, w *countedRefusal) {
	ev := w.ev
	ev.Time = s.now().UTC()
	ev.Data = maps.Clone(w.ev.Data)
	if ev.Data == nil {
		ev.Data = map[string]any{}
	}
	ev.Data["count"], ev.Data["first_at"], ev.Data["last_at"] = w.n, w.firstAt, w.lastAt
	if len(w.samples) > 0 {
		ev.Data["samples"] = maps.Clone(w.samples)
	}
	if s.writeRefusal(ctx, ev, w.n) {
		return
	}
	c := &s.refusals
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.open[w.key]; o != nil {
		o.merge(w)
		return
	}
	if !c.add(w) {
		s.log.LogAttrs(ctx, slog.LevelError, "a refusal count was dropped: too many kinds of refusal counted at once",
			slog.String("type", ev.Type), slog.String("actor", ev.Actor), slog.Any("code", ev.Data["code"]), slog.Int("count", w.n))
	}
}

// writeRefusal appends ev, standing for n refusals, and reports whether it
// was recorded; a failure is logged with the count.
func (s *Service) writeRefusal(ctx context.Context, ev ca.Event, n int) bool {
	if err := s.store.RecordEvent(ctx, ev); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "recording a refusal failed", slog.String("type", ev.Type),
			slog.String("actor", ev.Actor), slog.Any("code", ev.Data["code"]), slog.Int("count", n), slog.String("error", err.Error()))
		return false
	}
	return true
}
