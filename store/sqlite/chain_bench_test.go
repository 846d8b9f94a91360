package sqlite_test

import (
	"context"
	"testing"

	"github.com/jit-ssh/jit-ssh/ca"
)

// BenchmarkChainAppend is one event appended to the hash chain in its own
// durable transaction (RecordEvent).
func BenchmarkChainAppend(b *testing.B) {
	db := benchLedger(b)
	ev := ca.Event{Time: t0, Actor: "alice", Type: ca.EventIssueRefused, RequestID: "r-aaaaaaaaaaaaaaaa",
		Data: map[string]any{"code": "grant_ended", "reason": "the grant has ended; request access again"}}
	for b.Loop() {
		if err := db.RecordEvent(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChainVerify walks a chain of 1,000 events (audit verify), per
// event.
func BenchmarkChainVerify(b *testing.B) {
	db := benchLedger(b)
	const n = 1000
	for i := range n {
		c := certFor(uint64(i+1), "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", t0, 0) //nolint:gosec // small
		if err := db.RecordCertificate(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := db.Verify(context.Background())
		if err != nil || res.Rows < n {
			b.Fatalf("Verify: %d rows, %v", res.Rows, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/event")
}
