package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// testBreakGlass: the break-glass fields of a request round-trip through
// create and update (the follow-up decision included), ListRequests selects
// by follow-up, the report counts the grants, the median time to follow-up
// and the overdue ones, BreakGlassCounts counts by group at now, and the
// chain still verifies.
func testBreakGlass(t *testing.T, db store.Ledger) {
	ctx := t.Context()
	m := func(n int) time.Time { return T0.Add(time.Duration(n) * time.Minute) }
	bg := func(id, who, group string, at int) *ca.Request {
		r := NewRequest("r-"+id, who, group, ca.StateApproved, m(at))
		r.Duration = 30 * time.Minute
		r.BreakGlass, r.FollowUp, r.ReviewDueAt = true, ca.FollowUpNeedsReview, m(at+60)
		return r
	}
	a := bg("aaaaaaaaaaaaaaaa", "alice", "prod-db", 0)  // due at 60, reviewed at 30: justified
	b := bg("bbbbbbbbbbbbbbbb", "erin", "prod-db", 10)  // due at 70, never reviewed
	c := bg("cccccccccccccccc", "alice", "staging", 20) // due at 80, reviewed at 110: not justified
	plain := NewRequest("r-dddddddddddddddd", "alice", "prod-db", ca.StateApproved, m(0))
	for _, r := range []*ca.Request{a, b, c, plain} {
		Create(t, db, r)
	}
	got, err := db.GetRequest(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.BreakGlass || got.FollowUp != ca.FollowUpNeedsReview || !got.ReviewDueAt.Equal(b.ReviewDueAt) || !got.FollowedUpAt.IsZero() {
		t.Fatalf("GetRequest(%s) break glass = %v, follow-up %q, due %s, followed up %s; want true, needs_review, %s, zero",
			b.ID, got.BreakGlass, got.FollowUp, got.ReviewDueAt, got.FollowedUpAt, b.ReviewDueAt)
	}
	if got, err := db.GetRequest(ctx, plain.ID); err != nil || got.BreakGlass || got.FollowUp != "" || !got.ReviewDueAt.IsZero() {
		t.Fatalf("GetRequest(plain) = %+v, %v; want no break-glass fields", got, err)
	}

	follow := func(r *ca.Request, outcome string, at int) {
		t.Helper()
		next := *r
		next.FollowUp, next.FollowedUpAt, next.UpdatedAt, next.Version = outcome, m(at), m(at), r.Version+1
		err := db.ApplyRequestChange(ctx, ca.RequestChange{Request: &next, PrevVersion: r.Version, Events: []ca.Event{{
			Time: m(at), Actor: "bob", Type: ca.EventFollowUp, RequestID: r.ID, Data: map[string]any{"follow_up": outcome},
		}}})
		if err != nil {
			t.Fatalf("recording follow-up of %s: %v", r.ID, err)
		}
		*r = next
	}
	follow(a, ca.FollowUpJustified, 30)
	follow(c, ca.FollowUpNotJustified, 110)
	if got, err := db.GetRequest(ctx, c.ID); err != nil || got.FollowUp != ca.FollowUpNotJustified || !got.FollowedUpAt.Equal(m(110)) {
		t.Fatalf("GetRequest(%s) after the follow-up = %+v, %v; want not_justified at 110m", c.ID, got, err)
	}
	// A stale version is still a conflict for a follow-up.
	stale := *a
	stale.Version = a.Version + 1
	if err := db.ApplyRequestChange(ctx, ca.RequestChange{Request: &stale, PrevVersion: a.Version - 1}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("follow-up on a stale version: %v, want ErrConflict", err)
	}

	list, err := db.ListRequests(ctx, ca.RequestFilter{FollowUp: ca.FollowUpNeedsReview})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != b.ID {
		t.Fatalf("ListRequests(needs_review) = %v; want only %s", ids(list), b.ID)
	}
	if list, err = db.ListRequests(ctx, ca.RequestFilter{FollowUp: ca.FollowUpJustified, Requester: "alice"}); err != nil || len(list) != 1 || list[0].ID != a.ID {
		t.Fatalf("ListRequests(justified, alice) = %v, %v; want only %s", ids(list), err, a.ID)
	}
	// FollowUpDueBy selects by due time, inclusive: b is due at 70.
	for at, want := range map[int]int{69: 0, 70: 1, 75: 1} {
		list, err := db.ListRequests(ctx, ca.RequestFilter{FollowUp: ca.FollowUpNeedsReview, FollowUpDueBy: m(at)})
		if err != nil || len(list) != want || (want == 1 && list[0].ID != b.ID) {
			t.Fatalf("ListRequests(needs_review, due by %dm) = %v, %v; want %d (%s)", at, ids(list), err, want, b.ID)
		}
	}
	if list, err := db.ListRequests(ctx, ca.RequestFilter{FollowUpDueBy: m(1000), Requester: "alice"}); err != nil || len(list) != 2 {
		t.Fatalf("ListRequests(due by 1000m, alice) = %v, %v; want the two break-glass grants, not the plain request", ids(list), err)
	}

	rep, err := db.Report(ctx, time.Time{}, m(75))
	if err != nil {
		t.Fatal(err)
	}
	if rep.BreakGlass != 3 || rep.MedianToFollowUp != 30*time.Minute {
		t.Errorf("Report: %d break-glass grants, median to follow-up %s; want 3, 30m (30m and 90m, nearest rank)", rep.BreakGlass, rep.MedianToFollowUp)
	}
	wantOverdue := []ca.OverdueFollowUp{{RequestID: b.ID, Requester: "erin", HostGroup: "prod-db", DueAt: m(70)}}
	if !sameOverdue(rep.OverdueFollowUps, wantOverdue) {
		t.Errorf("Report overdue at 75m = %+v; want %+v", rep.OverdueFollowUps, wantOverdue)
	}
	if rep, err = db.Report(ctx, time.Time{}, m(69)); err != nil || len(rep.OverdueFollowUps) != 0 {
		t.Errorf("Report overdue at 69m = %+v, %v; want none (b is due at 70m)", rep.OverdueFollowUps, err)
	}

	counts, err := db.BreakGlassCounts(ctx, m(75))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ca.BreakGlassCount{"prod-db": {Grants: 2, Overdue: 1}, "staging": {Grants: 1}}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("BreakGlassCounts(75m) = %+v; want %+v", counts, want)
	}
	if res, err := db.Verify(ctx); err != nil {
		t.Fatalf("Verify after the follow-ups: %v (%+v)", err, res)
	}
}

func ids(rs []*ca.Request) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func sameOverdue(a, b []ca.OverdueFollowUp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].RequestID != b[i].RequestID || a[i].Requester != b[i].Requester || a[i].HostGroup != b[i].HostGroup || !a[i].DueAt.Equal(b[i].DueAt) {
			return false
		}
	}
	return true
}
