package approval_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// BenchmarkAuthorize is the policy decision made before every certificate:
// read the request, re-check the requester's and both approvers'
// membership, allowed hours, and tally the reviews.
func BenchmarkAuthorize(b *testing.B) {
	ctx := context.Background()
	now := func() time.Time { return t0 }
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "ledger.db"), sqlite.WithClock(now))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	svc := approval.NewService(db, staticDirectory(), testPolicies(), []string{"security"}, approval.WithClock(now))
	r, err := svc.Create(ctx, "alice", "prod-db", time.Hour, "INC-42")
	if err != nil {
		b.Fatal(err)
	}
	for _, who := range []string{"bob", "dave"} {
		if _, err := svc.Review(ctx, who, r.ID, ca.ReviewApprove, "ok"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		g, err := svc.Authorize(ctx, "alice", r.ID)
		if err != nil || len(g.Approvers) != 2 {
			b.Fatalf("Authorize: %+v, %v", g, err)
		}
	}
}

// BenchmarkTallyReviews counts approvals and blockers of a request with a
// long review thread.
func BenchmarkTallyReviews(b *testing.B) {
	r := &ca.Request{ID: "r-aaaaaaaaaaaaaaaa", Requester: "alice", State: ca.StatePending}
	for i, who := range []string{"bob", "dave", "frank", "bob", "sam", "dave", "carol", "frank"} {
		ev := ca.ReviewComment
		if i%3 == 0 {
			ev = ca.ReviewApprove
		}
		r.Reviews = append(r.Reviews, ca.Review{ID: int64(i + 1), Reviewer: who, Event: ev})
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = approval.TallyReviews(r)
	}
}

// BenchmarkHoursContains is the allowed-hours check, parsed once.
func BenchmarkHoursContains(b *testing.B) {
	h, err := approval.ParseHours("Mon-Fri 07:00-20:00 Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Contains(t0)
	}
}
