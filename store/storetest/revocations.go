package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// testRevokeSerialTakesItsGrantsCertificates: revoking one certificate ends
// its grant, and a grant that ends takes its certificates with it: the
// grant's other certificates a host could still accept are revoked in the
// same transaction (one event each), those long expired are left alone,
// and so are other grants'.
func testRevokeSerialTakesItsGrantsCertificates(t *testing.T, db store.Ledger) {
	ctx := t.Context()
	m := func(n int) time.Time { return T0.Add(time.Duration(n) * time.Minute) }
	Create(t, db, NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, T0))
	Create(t, db, NewRequest("r-bbbbbbbbbbbbbbbb", "alice", "prod-db", ca.StateApproved, T0))
	for _, c := range []*ca.Certificate{
		CertFor(1, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", m(0), 5*time.Minute),  // expired at 5
		CertFor(2, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", m(18), 5*time.Minute), // expired at 23, within the skew at 24
		CertFor(3, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", m(20), 5*time.Minute), // the one revoked by serial
		CertFor(4, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", m(21), 5*time.Minute), // the laptop's sibling
		CertFor(5, "alice", "prod-db", "r-bbbbbbbbbbbbbbbb", m(21), 5*time.Minute), // another grant
	} {
		if err := db.RecordCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	res, err := db.Revoke(ctx, ca.RevokeSpec{Serial: 3}, "bob", "laptop stolen", m(24))
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Clone(res.Serials)
	slices.Sort(got)
	if !slices.Equal(got, []uint64{2, 3, 4}) || !slices.Equal(res.EndedGrants, []string{"r-aaaaaaaaaaaaaaaa"}) {
		t.Fatalf("revoked %v, ended %v; want 2, 3, 4 and r-aaaaaaaaaaaaaaaa", res.Serials, res.EndedGrants)
	}
	by, _, err := db.RevokedSerials(ctx, m(24).Add(-ca.DefaultSkew))
	if err != nil {
		t.Fatal(err)
	}
	if krl := by["SHA256:ca"]; !slices.Equal(krl, []uint64{2, 3, 4}) {
		t.Errorf("KRL serials %v, want 2, 3, 4", krl)
	}
	var revokedEvents []uint64
	err = db.ListEvents(ctx, ca.EventFilter{Type: ca.EventRevoked}, func(ev *ca.Event) error {
		if ev.Actor != "bob" || ev.Data["reason"] != "laptop stolen" {
			t.Errorf("revocation event %+v, want bob's, with the reason", ev)
		}
		revokedEvents = append(revokedEvents, ev.Serial)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(revokedEvents)
	if !slices.Equal(revokedEvents, []uint64{2, 3, 4}) {
		t.Errorf("certificate.revoked events for %v, want 2, 3, 4", revokedEvents)
	}
	if _, err := db.Verify(ctx); err != nil {
		t.Errorf("ledger does not verify: %v", err)
	}
}
