package storetest

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// testApplyRequestChange: a request round-trips; a change applies only at
// the stored version, a refused one leaves no trace (no review, no event);
// duplicates and unknown IDs are the contract's errors.
func testApplyRequestChange(t *testing.T, db store.Ledger) {
	ctx := t.Context()
	r := NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StatePending, T0)
	Create(t, db, r)

	got, err := db.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := *r
	want.Reviews = []ca.Review{}
	if !reflect.DeepEqual(got, &want) {
		t.Errorf("GetRequest after create =\n  %+v\nwant\n  %+v", got, &want)
	}

	t.Run("duplicate id", func(t *testing.T) {
		err := db.ApplyRequestChange(ctx, ca.RequestChange{Request: r, Create: true})
		if !errors.Is(err, store.ErrDuplicate) {
			t.Errorf("creating %s twice = %v, want store.ErrDuplicate", r.ID, err)
		}
	})

	// Approve it at version 1 -> 2.
	approved := *r
	approved.State, approved.ApprovedAt, approved.UpdatedAt, approved.Version = ca.StateApproved, T0.Add(time.Minute), T0.Add(time.Minute), 2
	if err := db.ApplyRequestChange(ctx, ca.RequestChange{Request: &approved, PrevVersion: 1,
		Events: []ca.Event{{Actor: "bob", Type: ca.EventGrantStarted, RequestID: r.ID}}}); err != nil {
		t.Fatalf("update at the current version: %v", err)
	}
	got, err = db.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != ca.StateApproved || got.Version != 2 || !got.ApprovedAt.Equal(approved.ApprovedAt) || !got.EndedAt.IsZero() {
		t.Errorf("after update: state %s version %d approved_at %s ended_at %s; want approved, 2, %s, zero",
			got.State, got.Version, got.ApprovedAt, got.EndedAt, approved.ApprovedAt)
	}
	if want := approved.ApprovedAt.Add(30 * time.Minute); !got.GrantEnds().Equal(want) {
		t.Errorf("GrantEnds = %s, want %s", got.GrantEnds(), want)
	}

	eventsBefore := countEvents(t, db)
	tests := []struct {
		name string
		prev int64
		id   string
		want error
	}{
		{"stale version", 1, r.ID, store.ErrConflict},
		{"future version", 7, r.ID, store.ErrConflict},
		{"unknown request", 0, "r-bbbbbbbbbbbbbbbb", store.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stale := *r
			stale.ID = tt.id
			stale.State, stale.Version = ca.StateCancelled, tt.prev+1
			err := db.ApplyRequestChange(ctx, ca.RequestChange{Request: &stale, PrevVersion: tt.prev,
				Review: &ca.Review{Reviewer: "bob", Event: ca.ReviewComment, Body: "x", CreatedAt: T0},
				Events: []ca.Event{{Actor: "alice", Type: ca.EventRequestCancelled, RequestID: r.ID}}})
			if !errors.Is(err, tt.want) {
				t.Errorf("ApplyRequestChange = %v, want %v", err, tt.want)
			}
			got, err := db.GetRequest(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != ca.StateApproved || got.Version != 2 || len(got.Reviews) != 0 {
				t.Errorf("refused change was applied: state %s version %d reviews %d", got.State, got.Version, len(got.Reviews))
			}
			if n := countEvents(t, db); n != eventsBefore {
				t.Errorf("refused change appended events: %d rows, want %d", n, eventsBefore)
			}
		})
	}

	if _, err := db.GetRequest(ctx, "r-cccccccccccccccc"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRequest of an unknown id = %v, want store.ErrNotFound", err)
	}
	if _, err := db.Verify(ctx); err != nil {
		t.Errorf("Verify = %v, want a clean chain", err)
	}
}

// testReviewsAndDismissal: reviews come back oldest first with their
// dismissal; an edit dismisses approvals and change requests but not the
// approval it carries.
func testReviewsAndDismissal(t *testing.T, db store.Ledger) {
	ctx := t.Context()
	r := NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StatePending, T0)
	Create(t, db, r)

	version := r.Version
	review := func(reviewer, event string, dismiss bool) *ca.Review {
		t.Helper()
		next := *r
		next.Version = version + 1
		rv := &ca.Review{Reviewer: reviewer, Event: event, Body: event + " by " + reviewer, CreatedAt: T0.Add(time.Duration(version) * time.Second)}
		if reviewer == "" {
			rv = nil
		}
		if err := db.ApplyRequestChange(ctx, ca.RequestChange{Request: &next, PrevVersion: version, Review: rv, DismissReviews: dismiss}); err != nil {
			t.Fatalf("review %s %s: %v", reviewer, event, err)
		}
		version++
		return rv
	}
	first := review("bob", ca.ReviewApprove, false)
	if first.ID == 0 || first.RequestID != r.ID {
		t.Errorf("inserted review has ID %d, RequestID %q; want both filled in", first.ID, first.RequestID)
	}
	review("dave", ca.ReviewRequestChanges, false)
	review("carol", ca.ReviewComment, false)
	review("frank", ca.ReviewDeny, false)
	// An edit: dismiss, and in the same change a new approval that must
	// survive the dismissal it rides with.
	review("erin", ca.ReviewApprove, true)

	got, err := db.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		reviewer, event string
		dismissed       bool
	}{
		{"bob", ca.ReviewApprove, true},
		{"dave", ca.ReviewRequestChanges, true},
		{"carol", ca.ReviewComment, false},
		{"frank", ca.ReviewDeny, false},
		{"erin", ca.ReviewApprove, false},
	}
	if len(got.Reviews) != len(want) {
		t.Fatalf("got %d reviews, want %d", len(got.Reviews), len(want))
	}
	for i, w := range want {
		rv := got.Reviews[i]
		t.Run(w.reviewer+"/"+w.event, func(t *testing.T) {
			if rv.Reviewer != w.reviewer || rv.Event != w.event {
				t.Errorf("review %d = %s %s, want %s %s (oldest first)", i, rv.Reviewer, rv.Event, w.reviewer, w.event)
			}
			if rv.Dismissed != w.dismissed {
				t.Errorf("review %d (%s %s) dismissed = %v, want %v", i, rv.Reviewer, rv.Event, rv.Dismissed, w.dismissed)
			}
			if rv.Body != w.event+" by "+w.reviewer || rv.RequestID != r.ID || rv.CreatedAt.IsZero() {
				t.Errorf("review %d round trip: %+v", i, rv)
			}
		})
	}
	if got.Version != version {
		t.Errorf("version = %d, want %d", got.Version, version)
	}
}

// testListRequests: every filter of ca.RequestFilter, newest first, with
// reviews.
func testListRequests(t *testing.T, db store.Ledger) {
	ctx := t.Context()
	reqs := []*ca.Request{
		NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StatePending, T0),
		NewRequest("r-bbbbbbbbbbbbbbbb", "alice", "staging", ca.StateApproved, T0.Add(1*time.Minute)),
		NewRequest("r-cccccccccccccccc", "erin", "prod-db", ca.StateDenied, T0.Add(2*time.Minute)),
		NewRequest("r-dddddddddddddddd", "erin", "prod-db", ca.StatePending, T0.Add(3*time.Minute)),
		NewRequest("r-eeeeeeeeeeeeeeee", "alice", "prod-db", ca.StateExpired, T0.Add(4*time.Minute)),
	}
	for _, r := range reqs {
		if r.State == ca.StateApproved {
			r.ApprovedAt = r.CreatedAt
		}
		Create(t, db, r)
	}
	// A review on one of them comes back with the listing.
	next := *reqs[3]
	next.Version = 2
	if err := db.ApplyRequestChange(ctx, ca.RequestChange{Request: &next, PrevVersion: 1,
		Review: &ca.Review{Reviewer: "bob", Event: ca.ReviewComment, Body: "why?", CreatedAt: T0}}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		f    ca.RequestFilter
		want []string // newest first
	}{
		{"everything", ca.RequestFilter{}, []string{"e", "d", "c", "b", "a"}},
		{"requester", ca.RequestFilter{Requester: "alice"}, []string{"e", "b", "a"}},
		{"unknown requester", ca.RequestFilter{Requester: "mallory"}, nil},
		{"one state", ca.RequestFilter{States: []string{ca.StatePending}}, []string{"d", "a"}},
		{"two states", ca.RequestFilter{States: []string{ca.StateApproved, ca.StateDenied}}, []string{"c", "b"}},
		{"group", ca.RequestFilter{Groups: []string{"staging"}}, []string{"b"}},
		{"two groups", ca.RequestFilter{Groups: []string{"staging", "prod-db"}}, []string{"e", "d", "c", "b", "a"}},
		{"all filters", ca.RequestFilter{Requester: "erin", States: []string{ca.StatePending}, Groups: []string{"prod-db"}}, []string{"d"}},
		{"limit", ca.RequestFilter{Limit: 2}, []string{"e", "d"}},
		{"injection is data", ca.RequestFilter{Requester: "alice' OR '1'='1"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.ListRequests(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range got {
				ids = append(ids, strings.TrimPrefix(r.ID, "r-")[:1])
				if r.Reviews == nil {
					t.Errorf("%s: Reviews is nil, want an empty list", r.ID)
				}
				if r.ID == "r-dddddddddddddddd" && (len(r.Reviews) != 1 || r.Reviews[0].Body != "why?") {
					t.Errorf("%s: reviews = %+v, want the one comment", r.ID, r.Reviews)
				}
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("ListRequests(%+v) = %q, want %q", tt.f, ids, tt.want)
			}
		})
	}
}
