package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// testReport: the figures over requests in every state, with since and now
// applied. Percentiles are nearest-rank.
func testReport(t *testing.T, db store.Ledger) {
	ctx := t.Context()
	m := func(n int) time.Time { return T0.Add(time.Duration(n) * time.Minute) }
	req := func(id string, created int, state string) *ca.Request {
		return NewRequest("r-"+id+id+id+id+id+id+id+id+id+id+id+id+id+id+id+id, "alice", "prod-db", state, m(created))
	}
	approved := func(id string, created, approvedAt int, d time.Duration) *ca.Request {
		r := req(id, created, ca.StateApproved)
		r.ApprovedAt, r.Duration = m(approvedAt), d
		return r
	}
	for _, r := range []*ca.Request{
		req("a", 0, ca.StatePending),
		approved("b", 0, 10, 30*time.Minute), // 10m to approval, ends at 40
		approved("c", 1, 21, time.Hour),      // 20m, ends at 81
		approved("d", 2, 42, 90*time.Minute), // 40m, ends at 132
		req("e", 3, ca.StateDenied),
		req("f", 4, ca.StateExpired),
		req("g", 5, ca.StateCancelled),
	} {
		Create(t, db, r)
	}
	if err := db.RecordCertificate(ctx, CertFor(7, "alice", "prod-db", "r-bbbbbbbbbbbbbbbb", m(11), 5*time.Minute)); err != nil {
		t.Fatal(err)
	}

	got, err := db.Report(ctx, time.Time{}, m(50))
	if err != nil {
		t.Fatal(err)
	}
	want := ca.Report{
		Requests: 7, Approved: 3, Denied: 1, Expired: 1, Cancelled: 1, Pending: 1,
		ApprovalRate:     0.6, // 3 of the 5 decided
		MedianToApproval: 20 * time.Minute, P95ToApproval: 40 * time.Minute,
		MedianGrantLength: time.Hour,
		CertsIssued:       1,
		OpenGrantsNow:     2, // c and d at 50; b ended at 40
		OverdueFollowUps:  []ca.OverdueFollowUp{},
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Report(all time, at 50m) =\n  %+v\nwant\n  %+v", *got, want)
	}

	got, err = db.Report(ctx, m(1), m(50))
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests != 5 || got.Approved != 2 || got.Pending != 0 || got.CertsIssued != 1 || !got.Since.Equal(m(1)) {
		t.Errorf("Report(since 1m) = %+v; want 5 requests (2 approved, none pending), 1 certificate, Since 1m", *got)
	}
}
