package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// eventLedger fills db with a small log whose every event has its time:
// two requests (alice's in prod-db, erin's in staging), bob's review of
// alice's, a certificate and two events recorded on their own. It returns
// the event count.
func eventLedger(t *testing.T, db store.Ledger) int {
	t.Helper()
	ctx := t.Context()
	m := func(n int) time.Time { return T0.Add(time.Duration(n) * time.Minute) }
	a := NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StatePending, m(0))
	Create(t, db, a)                                                                          // 1
	Create(t, db, NewRequest("r-bbbbbbbbbbbbbbbb", "erin", "staging", ca.StatePending, m(1))) // 2
	approved := *a
	approved.State, approved.ApprovedAt, approved.UpdatedAt, approved.Version = ca.StateApproved, m(2), m(2), 2
	if err := db.ApplyRequestChange(ctx, ca.RequestChange{Request: &approved, PrevVersion: 1,
		Review: &ca.Review{Reviewer: "bob", Event: ca.ReviewApprove, CreatedAt: m(2)},
		Events: []ca.Event{
			{Time: m(2), Actor: "bob", Type: ca.EventReview, RequestID: a.ID, Data: map[string]any{"event": "APPROVE"}}, // 3
			{Time: m(2), Actor: "alice", Type: ca.EventGrantStarted, RequestID: a.ID},                                   // 4
		}}); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordCertificate(ctx, CertFor(1<<63+1, "alice", "prod-db", a.ID, m(3), 5*time.Minute)); err != nil { // 5
		t.Fatal(err)
	}
	if err := db.RecordEvent(ctx, ca.Event{Time: m(4), Actor: "alice", Type: ca.EventIssueRefused, RequestID: a.ID,
		Data: map[string]any{"why": "rsa 2048"}}); err != nil { // 6
		t.Fatal(err)
	}
	if err := db.RecordEvent(ctx, ca.Event{Time: m(5), Actor: "jit-ssh", Type: ca.EventConfigLoaded}); err != nil { // 7
		t.Fatal(err)
	}
	return 7
}

// testListEvents: every filter of ca.EventFilter, in log order, with the
// events' content round-tripping; an error from the callback stops the
// listing.
func testListEvents(t *testing.T, db store.Ledger) {
	ctx := t.Context()
	n := eventLedger(t, db)
	m := func(n int) time.Time { return T0.Add(time.Duration(n) * time.Minute) }
	var all []*ca.Event
	if err := db.ListEvents(ctx, ca.EventFilter{}, func(ev *ca.Event) error { all = append(all, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("ListEvents listed %d events, want %d", len(all), n)
	}
	for i, ev := range all {
		if i > 0 && ev.ID <= all[i-1].ID {
			t.Errorf("event %d has ID %d after %d, want log order", i, ev.ID, all[i-1].ID)
		}
	}
	if got := all[5]; got.Actor != "alice" || got.Type != ca.EventIssueRefused || got.RequestID != "r-aaaaaaaaaaaaaaaa" ||
		!got.Time.Equal(m(4)) || got.Data["why"] != "rsa 2048" {
		t.Errorf("recorded event round trip = %+v", got)
	}
	if got := all[4]; got.Type != ca.EventCertIssued || got.Serial != 1<<63+1 {
		t.Errorf("issued event = %+v, want %s with serial 2^63+1", got, ca.EventCertIssued)
	}

	tests := []struct {
		name string
		f    ca.EventFilter
		want []string // types, in log order
	}{
		{"actor", ca.EventFilter{Actor: "bob"}, []string{ca.EventReview}},
		{"type", ca.EventFilter{Type: ca.EventRequestCreated}, []string{ca.EventRequestCreated, ca.EventRequestCreated}},
		{"request", ca.EventFilter{RequestID: "r-bbbbbbbbbbbbbbbb"}, []string{ca.EventRequestCreated}},
		{"serial", ca.EventFilter{Serial: 1<<63 + 1}, []string{ca.EventCertIssued}},
		{"group", ca.EventFilter{Group: "staging"}, []string{ca.EventRequestCreated}},
		{"involving: caused and about her requests", ca.EventFilter{Involving: "alice"},
			[]string{ca.EventRequestCreated, ca.EventReview, ca.EventGrantStarted, ca.EventCertIssued, ca.EventIssueRefused}},
		{"since is inclusive", ca.EventFilter{Since: m(4)}, []string{ca.EventIssueRefused, ca.EventConfigLoaded}},
		{"until is exclusive", ca.EventFilter{Until: m(1)}, []string{ca.EventRequestCreated}},
		{"limit", ca.EventFilter{Limit: 2}, []string{ca.EventRequestCreated, ca.EventRequestCreated}},
		{"nothing", ca.EventFilter{Actor: "mallory"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			if err := db.ListEvents(ctx, tt.f, func(ev *ca.Event) error { got = append(got, ev.Type); return nil }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ListEvents(%+v) = %q, want %q", tt.f, got, tt.want)
			}
		})
	}

	t.Run("callback error stops the listing", func(t *testing.T) {
		stop := errors.New("client went away")
		calls := 0
		err := db.ListEvents(ctx, ca.EventFilter{}, func(*ca.Event) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("ListEvents = %v after %d calls, want the callback's error after 1", err, calls)
		}
	})
}

// testVerifyUntouched: a ledger written only through the contract
// verifies, over every row, and its tail too.
func testVerifyUntouched(t *testing.T, db store.Ledger) {
	ctx := t.Context()
	empty, err := db.Verify(ctx)
	if err != nil || empty.Rows != 0 {
		t.Errorf("Verify of an empty ledger = %+v, %v; want 0 rows, nil", empty, err)
	}
	n := eventLedger(t, db)
	res, err := db.Verify(ctx)
	if err != nil {
		t.Fatalf("Verify of an untouched ledger = %v, want nil", err)
	}
	if res.Rows != int64(n) {
		t.Errorf("Verify rows = %d, want %d", res.Rows, n)
	}
	if len(res.Head) != 64 {
		t.Errorf("Verify head = %q, want a SHA-256 in hex", res.Head)
	}
	if res.RowsChecked && (res.Requests != 2 || res.Reviews != 1 || res.Certificates != 1) {
		t.Errorf("Verify checked %d requests, %d reviews, %d certificates; want 2, 1, 1", res.Requests, res.Reviews, res.Certificates)
	}
	tail, err := db.VerifyTail(ctx)
	if err != nil {
		t.Fatalf("VerifyTail of an untouched ledger = %v, want nil", err)
	}
	if tail.Anchor != 0 || tail.Rows != int64(n) {
		t.Errorf("VerifyTail = %+v, want no anchor and %d rows", tail, n)
	}
	// The chain goes on: a new event links to the head.
	if err := db.RecordEvent(ctx, ca.Event{Time: T0.Add(time.Hour), Actor: "jit-ssh", Type: ca.EventConfigLoaded}); err != nil {
		t.Fatal(err)
	}
	if res, err := db.Verify(ctx); err != nil || res.Rows != int64(n)+1 {
		t.Errorf("Verify after one more event = %d rows, %v; want %d, nil", res.Rows, err, n+1)
	}
}

// testNotFound: reads of unknown records are store.ErrNotFound (which is
// ca.ErrNotFound); reads leave no event.
func testNotFound(t *testing.T, db store.Ledger) {
	ctx := t.Context()
	if _, err := db.GetRequest(ctx, "r-zzzzzzzzzzzzzzzz"); !errors.Is(err, store.ErrNotFound) || !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("GetRequest of an unknown id = %v, want store.ErrNotFound", err)
	}
	if _, err := db.GetCertificate(ctx, 42); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetCertificate(42) = %v, want store.ErrNotFound", err)
	}
	var n int
	if err := db.ListCertificates(ctx, ca.CertFilter{Serial: 42}, func(*ca.Certificate) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("ListCertificates of an unknown serial = %d, %v; want none, nil", n, err)
	}
	if reqs, err := db.ListRequests(ctx, ca.RequestFilter{Requester: "nobody"}); err != nil || len(reqs) != 0 {
		t.Errorf("ListRequests of nobody = %v, %v; want none, nil", reqs, err)
	}
	if n := countEvents(t, db); n != 0 {
		t.Errorf("%d events after reads only, want 0", n)
	}
}

// testHealth: an open ledger answers a ping and tells its counters (their
// values are the implementation's: a fresh ledger has no failures).
func testHealth(t *testing.T, db store.Ledger) {
	if err := db.Ping(t.Context()); err != nil {
		t.Errorf("Ping = %v, want nil", err)
	}
	st, err := db.Stats(t.Context())
	if err != nil {
		t.Errorf("Stats = %v, want nil", err)
	}
	if st.WALCheckpointFailures != 0 {
		t.Errorf("a fresh ledger reports %d failed WAL checkpoints, want 0", st.WALCheckpointFailures)
	}
}
