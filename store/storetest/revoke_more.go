package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// testRevokeRequestAndUser: revoking by request ends its grant and revokes
// its certificates, revoking a pending request cancels it, revoking by user
// takes all the user's grants and certificates and nobody else's; the KRL
// lists what was revoked and its version grows; an unknown serial is
// store.ErrNotFound.
func testRevokeRequestAndUser(t *testing.T, db store.Ledger) {
	ctx := t.Context()
	m := func(n int) time.Time { return T0.Add(time.Duration(n) * time.Minute) }
	Create(t, db, NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, T0))
	Create(t, db, NewRequest("r-bbbbbbbbbbbbbbbb", "alice", "staging", ca.StateApproved, T0))
	Create(t, db, NewRequest("r-cccccccccccccccc", "erin", "prod-db", ca.StateApproved, T0))
	Create(t, db, NewRequest("r-dddddddddddddddd", "alice", "prod-db", ca.StatePending, T0))
	for _, c := range []*ca.Certificate{
		CertFor(1, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", m(1), time.Hour),
		CertFor(2, "alice", "staging", "r-bbbbbbbbbbbbbbbb", m(2), time.Hour),
		CertFor(3, "erin", "prod-db", "r-cccccccccccccccc", m(3), time.Hour),
	} {
		if err := db.RecordCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	_, v0, err := db.RevokedSerials(ctx, T0)
	if err != nil {
		t.Fatal(err)
	}

	res, err := db.Revoke(ctx, ca.RevokeSpec{RequestID: "r-aaaaaaaaaaaaaaaa"}, "carol", "incident", m(10))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Serials, []uint64{1}) || !slices.Equal(res.EndedGrants, []string{"r-aaaaaaaaaaaaaaaa"}) || len(res.Cancelled) != 0 {
		t.Errorf("revoking a request = %+v, want serial 1 and its grant ended", res)
	}
	if r, err := db.GetRequest(ctx, "r-aaaaaaaaaaaaaaaa"); err != nil || r.OpenAt(m(11)) {
		t.Errorf("request after revocation = %+v, %v; want its grant over", r, err)
	}
	_, v1, err := db.RevokedSerials(ctx, T0)
	if err != nil || v1 <= v0 {
		t.Errorf("KRL version after a revocation = %d (%v), want more than %d", v1, err, v0)
	}

	res, err = db.Revoke(ctx, ca.RevokeSpec{RequestID: "r-dddddddddddddddd"}, "carol", "incident", m(10))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Serials) != 0 || !slices.Equal(res.Cancelled, []string{"r-dddddddddddddddd"}) {
		t.Errorf("revoking a pending request = %+v, want it cancelled", res)
	}
	if r, err := db.GetRequest(ctx, "r-dddddddddddddddd"); err != nil || r.State != ca.StateCancelled {
		t.Errorf("pending request after revocation = %+v, %v; want cancelled", r, err)
	}

	res, err = db.Revoke(ctx, ca.RevokeSpec{User: "alice"}, "carol", "left", m(11))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Serials, []uint64{2}) || !slices.Equal(res.EndedGrants, []string{"r-bbbbbbbbbbbbbbbb"}) {
		t.Errorf("revoking a user = %+v, want serial 2 and grant r-bbbbbbbbbbbbbbbb (the rest was revoked already)", res)
	}
	if c, err := db.GetCertificate(ctx, 3); err != nil || !c.RevokedAt.IsZero() {
		t.Errorf("erin's certificate = %+v, %v; want it untouched", c, err)
	}
	if c, err := db.GetCertificate(ctx, 2); err != nil || !c.RevokedAt.Equal(m(11)) {
		t.Errorf("alice's certificate 2 = %+v, %v; want revoked at 11m", c, err)
	}

	by, _, err := db.RevokedSerials(ctx, T0)
	if err != nil {
		t.Fatal(err)
	}
	krl := slices.Clone(by["SHA256:ca"])
	slices.Sort(krl)
	if !slices.Equal(krl, []uint64{1, 2}) || len(by) != 1 {
		t.Errorf("KRL serials %v, want 1 and 2 under SHA256:ca", by)
	}
	if by, _, err := db.RevokedSerials(ctx, m(200)); err != nil || len(by["SHA256:ca"]) != 0 {
		t.Errorf("KRL after every certificate expired = %v, %v; want none", by, err)
	}

	before := countEvents(t, db)
	if _, err := db.Revoke(ctx, ca.RevokeSpec{Serial: 42}, "carol", "typo", m(12)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking an unknown serial = %v, want store.ErrNotFound", err)
	}
	if n := countEvents(t, db); n != before {
		t.Errorf("%d events after a refused revocation, want %d", n, before)
	}
	if _, err := db.Verify(ctx); err != nil {
		t.Errorf("ledger does not verify: %v", err)
	}
}
