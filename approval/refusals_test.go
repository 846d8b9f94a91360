package approval_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// refusalEvents returns the refusal events in the ledger, in order.
func (e *env) refusalEvents(t *testing.T) []*ca.Event {
	t.Helper()
	var out []*ca.Event
	err := e.db.ListEvents(t.Context(), ca.EventFilter{}, func(ev *ca.Event) error {
		if strings.HasSuffix(ev.Type, ".refused") {
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// countOf is how many refusals ev stands for: its "count", else one.
func countOf(t *testing.T, ev *ca.Event) int {
	t.Helper()
	c, ok := ev.Data["count"]
	if !ok {
		return 1
	}
	n, ok := c.(float64)
	if !ok || n < 1 || n != float64(int(n)) {
		t.Fatalf("event %d has count %v (%T), want a whole number >= 1", ev.ID, c, c)
	}
	return int(n)
}

// TestIdenticalRefusalsAreCounted: a flood of one refusal (sam approving
// his own request) is one event at once and one event with the count when
// the window closes, not one event each; the counted event says what was
// refused, how often, and between when. A refusal that differs (another
// event, another request, another actor) is recorded on its own, and once
// the window has closed the same refusal is recorded at once again.
func TestIdenticalRefusalsAreCounted(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	r := e.create(t, "sam", "prod-db", time.Hour)
	selfApprove := func() {
		t.Helper()
		_, err := e.svc.Review(ctx, "sam", r.ID, ca.ReviewApprove, "")
		checkErr(t, err, approval.ErrForbidden, "self_review")
	}
	start := e.clk.now()
	for range 100 {
		selfApprove()
		e.clk.advance(100 * time.Millisecond) // 10 s in all: one window
	}
	last := e.clk.now().Add(-100 * time.Millisecond)
	got := e.refusalEvents(t)
	if len(got) != 1 || countOf(t, got[0]) != 1 || got[0].Actor != "sam" || got[0].Data["code"] != "self_review" {
		t.Fatalf("after 100 identical refusals: %d events, want the first one only, uncounted", len(got))
	}
	// Different refusals are their own: another event, another actor.
	if _, err := e.svc.Review(ctx, "sam", r.ID, ca.ReviewRequestChanges, "no"); err == nil {
		t.Fatal("self REQUEST_CHANGES accepted")
	}
	if _, err := e.svc.Edit(ctx, "bob", r.ID, 30*time.Minute, nil); err == nil {
		t.Fatal("bob edited sam's request")
	}
	if got := e.refusalEvents(t); len(got) != 3 {
		t.Fatalf("%d refusal events after two different refusals, want 3", len(got))
	}
	// Nothing is flushed before the window closes...
	e.svc.FlushRefusals(ctx, false)
	if got := e.refusalEvents(t); len(got) != 3 {
		t.Fatalf("%d refusal events after an early flush, want 3", len(got))
	}
	// ...and the count is recorded once it has.
	e.clk.set(start.Add(approval.RefusalWindow))
	e.svc.FlushRefusals(ctx, false)
	got = e.refusalEvents(t)
	if len(got) != 4 {
		t.Fatalf("%d refusal events after the window closed, want 4: %+v", len(got), got)
	}
	c := got[3]
	if c.Type != ca.EventReviewRefused || c.Actor != "sam" || c.RequestID != r.ID || c.Data["code"] != "self_review" ||
		c.Data["event"] != ca.ReviewApprove || c.Data["reason"] != got[0].Data["reason"] || countOf(t, c) != 99 {
		t.Errorf("counted event = %s by %s on %s, data %v; want the self-approval by sam, count 99", c.Type, c.Actor, c.RequestID, c.Data)
	}
	if c.Data["first_at"] != start.Add(100*time.Millisecond).UTC().Format(time.RFC3339Nano) || c.Data["last_at"] != last.UTC().Format(time.RFC3339Nano) {
		t.Errorf("counted event spans %v to %v, want %s to %s", c.Data["first_at"], c.Data["last_at"], start.Add(100*time.Millisecond), last)
	}
	// A window closed: the same refusal is recorded at once again.
	selfApprove()
	if got := e.refusalEvents(t); len(got) != 5 || countOf(t, got[4]) != 1 {
		t.Fatalf("the refusal after the window: %d events, want a 5th, uncounted", len(got))
	}
	verifyLedger(t, e.db)
}

// failingRecorder is the ledger with RecordEvent failing while fail is set.
type failingRecorder struct {
	*sqlite.DB
	fail bool
}

func (f *failingRecorder) RecordEvent(ctx context.Context, ev ca.Event) error {
	if f.fail {
		return errors.New("disk full")
	}
	return f.DB.RecordEvent(ctx, ev)
}

// TestCountedRefusalsAreNeverLost: however refusals interleave, and even
// when the ledger cannot record the first of a window, every refusal is in
// the ledger after the final flush, on its own or in a count.
func TestCountedRefusalsAreNeverLost(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	rec := &failingRecorder{DB: e.db}
	svc := approval.NewService(rec, staticDirectory(), testPolicies(), []string{"security"}, approval.WithClock(e.clk.now))
	r := e.create(t, "sam", "prod-db", time.Hour)
	refuse := func(event string) {
		if _, err := svc.Review(ctx, "sam", r.ID, event, "x"); err == nil {
			t.Fatal("self review accepted")
		}
	}
	n := 0
	rec.fail = true
	refuse(ca.ReviewApprove) // not recorded: the window counts it
	n++
	rec.fail = false
	for i := range 30 {
		refuse([]string{ca.ReviewApprove, ca.ReviewRequestChanges, ca.ReviewDeny}[i%3])
		n++
		e.clk.advance(5 * time.Second) // 150 s: windows close on the way
	}
	svc.FlushRefusals(ctx, true)
	total := 0
	for _, ev := range e.refusalEvents(t) {
		total += countOf(t, ev)
	}
	if total != n {
		t.Errorf("the ledger accounts for %d refusals, want all %d", total, n)
	}
	if got := len(e.refusalEvents(t)); got >= n {
		t.Errorf("%d events for %d refusals of three kinds: nothing was counted", got, n)
	}
	verifyLedger(t, e.db)
}

// TestRefusalsWithFreshKeysAreCounted: refused issuances that each present
// a fresh key are one kind of refusal (same login, request and code), not
// one event each; the count keeps the first one's data and up to five of
// the fingerprints that differed from it (review S6).
func TestRefusalsWithFreshKeysAreCounted(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	r := e.create(t, "sam", "prod-db", time.Hour)
	for i := range 100 {
		e.svc.RecordRefusal(ctx, ca.Event{Actor: "sam", Type: ca.EventIssueRefused, RequestID: r.ID,
			Data: map[string]any{"code": "not_approved", "reason": "not approved", "fingerprint": fmt.Sprintf("SHA256:key%03d", i)}})
		e.clk.advance(100 * time.Millisecond)
	}
	if got := e.refusalEvents(t); len(got) != 1 || got[0].Data["fingerprint"] != "SHA256:key000" {
		t.Fatalf("100 refusals with fresh keys: %d events, want the first one only", len(got))
	}
	e.clk.advance(approval.RefusalWindow)
	e.svc.FlushRefusals(ctx, false)
	got := e.refusalEvents(t)
	if len(got) != 2 {
		t.Fatalf("%d refusal events after the window closed, want 2", len(got))
	}
	c := got[1]
	if countOf(t, c) != 99 || c.Data["fingerprint"] != "SHA256:key000" || c.Data["code"] != "not_approved" {
		t.Errorf("counted event data %v, want count 99 with the first one's data", c.Data)
	}
	samples, _ := c.Data["samples"].(map[string]any)
	fps, _ := samples["fingerprint"].([]any)
	if len(fps) != 5 || fps[0] != "SHA256:key001" || fps[4] != "SHA256:key005" || len(samples) != 1 {
		t.Errorf("samples = %v, want the first five fingerprints that differed", c.Data["samples"])
	}
	verifyLedger(t, e.db)
}

// floodRecorder is the ledger, except that the refusals of one actor are
// only counted (so a test can flood without writing them all).
type floodRecorder struct {
	*sqlite.DB
	actor string
	n     int
}

func (f *floodRecorder) RecordEvent(ctx context.Context, ev ca.Event) error {
	if ev.Actor == f.actor {
		f.n++
		return nil
	}
	return f.DB.RecordEvent(ctx, ev)
}

// TestOneActorCannotStopCountingForOthers: an identity refusing itself in
// more kinds than the counter holds in all does not stop the counting of
// another identity's refusals (review S6).
func TestOneActorCannotStopCountingForOthers(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	rec := &floodRecorder{DB: e.db, actor: "mallory"}
	svc := approval.NewService(rec, staticDirectory(), testPolicies(), []string{"security"}, approval.WithClock(e.clk.now))
	for i := range 10001 {
		svc.RecordRefusal(ctx, ca.Event{Actor: "mallory", Type: ca.EventRequestRefused,
			Data: map[string]any{"code": "not_requester", "action": "create", "host_group": fmt.Sprintf("g%d", i)}})
	}
	r := e.create(t, "sam", "prod-db", time.Hour)
	for range 10 {
		if _, err := svc.Review(ctx, "sam", r.ID, ca.ReviewApprove, ""); err == nil {
			t.Fatal("self review accepted")
		}
	}
	if got := e.refusalEvents(t); len(got) != 1 {
		t.Fatalf("sam's 10 identical refusals after mallory's flood: %d events, want 1 (the rest counted)", len(got))
	}
	e.clk.advance(approval.RefusalWindow)
	svc.FlushRefusals(ctx, false)
	got := e.refusalEvents(t)
	if len(got) != 2 || countOf(t, got[1]) != 9 {
		t.Fatalf("%d refusal events after the window, want 2, the second with count 9", len(got))
	}
}

// TestFailedCountIsKeptForTheNextFlush: a count the ledger refuses to
// write when its window closes, at a flush or at the next refusal of its
// kind, is kept (merged with what is counted since) and written once the
// ledger can (review S7).
func TestFailedCountIsKeptForTheNextFlush(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	rec := &failingRecorder{DB: e.db}
	svc := approval.NewService(rec, staticDirectory(), testPolicies(), []string{"security"}, approval.WithClock(e.clk.now))
	r := e.create(t, "sam", "prod-db", time.Hour)
	refuse := func() {
		t.Helper()
		if _, err := svc.Review(ctx, "sam", r.ID, ca.ReviewApprove, "x"); err == nil {
			t.Fatal("self review accepted")
		}
	}
	for range 10 {
		refuse()
	}
	e.clk.advance(2 * approval.RefusalWindow)
	rec.fail = true
	svc.FlushRefusals(ctx, false) // the count of 9 fails to write: kept
	svc.FlushRefusals(ctx, false) // and again
	for range 3 {
		refuse() // closes the kept window again, fails again: merged into the new one
	}
	rec.fail = false
	svc.FlushRefusals(ctx, false) // the new window is still open: nothing yet
	if got := e.refusalEvents(t); len(got) != 1 {
		t.Fatalf("%d refusal events before the new window closed, want 1", len(got))
	}
	e.clk.advance(approval.RefusalWindow)
	svc.FlushRefusals(ctx, false)
	got := e.refusalEvents(t)
	total := 0
	for _, ev := range got {
		total += countOf(t, ev)
	}
	if total != 13 || len(got) != 2 {
		t.Errorf("the ledger accounts for %d of 13 refusals in %d events, want all in 2", total, len(got))
	}
	verifyLedger(t, e.db)
}
