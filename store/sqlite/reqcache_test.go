package sqlite_test

import (
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// TestGetRequestAfterWrites: GetRequest answers from a cache between
// writes; every write that changes a request (a review, an end by
// revocation) must show in the next read, and a caller changing what it
// was given must not change what the next caller gets.
func TestGetRequestAfterWrites(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	r := newRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0)
	r.ApprovedAt = t0
	create(t, db, r)
	if err := db.RecordCertificate(ctx, certFor(7, "alice", "prod-db", r.ID, t0, time.Minute)); err != nil {
		t.Fatal(err)
	}
	first, err := db.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	first.State = ca.StateDenied
	first.Reviews = append(first.Reviews, ca.Review{Reviewer: "mallory", Event: ca.ReviewApprove})
	again, err := db.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.State != ca.StateApproved || len(again.Reviews) != 0 {
		t.Errorf("a caller's change to its copy leaked into the next read: state %s, %d reviews", again.State, len(again.Reviews))
	}

	commented := *again
	commented.Version++
	if err := db.ApplyRequestChange(ctx, ca.RequestChange{Request: &commented, PrevVersion: again.Version,
		Review: &ca.Review{Reviewer: "bob", Event: ca.ReviewComment, Body: "ok", CreatedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != commented.Version || len(got.Reviews) != 1 {
		t.Errorf("after a review: version %d with %d reviews, want %d with 1", got.Version, len(got.Reviews), commented.Version)
	}

	if _, err := db.Revoke(ctx, ca.RevokeSpec{RequestID: r.ID}, "security", "test", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err = db.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.EndedAt.IsZero() {
		t.Errorf("GetRequest after a revocation ended the grant still shows it running (ended_at zero)")
	}
}

// TestReadOnlyGetRequestIsFresh: a read-only open shares the file with the
// server that writes it, so it must not answer from a cache.
func TestReadOnlyGetRequestIsFresh(t *testing.T) {
	ctx := t.Context()
	db, path := openDB(t)
	r := newRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0)
	create(t, db, r)
	ro, err := sqlite.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	before, err := ro.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	next := *before
	next.Version++
	if err := db.ApplyRequestChange(ctx, ca.RequestChange{Request: &next, PrevVersion: before.Version,
		Review: &ca.Review{Reviewer: "bob", Event: ca.ReviewComment, Body: "ok", CreatedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	after, err := ro.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != next.Version || len(after.Reviews) != 1 {
		t.Errorf("read-only GetRequest after the server's write: version %d with %d reviews, want %d with 1", after.Version, len(after.Reviews), next.Version)
	}
}
