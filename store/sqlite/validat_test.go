package sqlite_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// TestValidAt answers "who could reach GROUP at T, approved by whom, and
// why" over overlapping, expired and revoked certificates, revoked through
// the store's own Revoke (by serial and by request).
func TestValidAt(t *testing.T) {
	ctx := t.Context()
	db, _ := openDB(t)
	m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	for _, r := range []*ca.Request{
		newRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0),
		newRequest("r-bbbbbbbbbbbbbbbb", "erin", "prod-db", ca.StateApproved, t0),
		newRequest("r-cccccccccccccccc", "alice", "staging", ca.StateApproved, t0),
		newRequest("r-dddddddddddddddd", "frank", "prod-db", ca.StateApproved, t0),
		newRequest("r-eeeeeeeeeeeeeeee", "erin", "prod-db", ca.StateApproved, t0.Add(14*time.Minute)),
	} {
		create(t, db, r)
	}
	// Validity (minutes after t0; each starts 2m before issue):
	//   10 alice prod-db  -2..8        expired early on
	//   11 alice prod-db   3..13       overlaps 10 and 20
	//   20 erin  prod-db   5..15       revoked by serial at 9
	//   21 erin  prod-db  13..23       issued at 15 under a new grant, after 20 (and its grant) was revoked
	//   30 alice staging   0..60       another group
	//   40 frank prod-db   8..18       revoked by request at 12
	//   41 frank prod-db   9..19       revoked by request at 12
	certs := []*ca.Certificate{
		certFor(10, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", m(0), 8*time.Minute),
		certFor(11, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", m(5), 8*time.Minute),
		certFor(20, "erin", "prod-db", "r-bbbbbbbbbbbbbbbb", m(7), 8*time.Minute),
		certFor(30, "alice", "staging", "r-cccccccccccccccc", m(2), 58*time.Minute),
		certFor(40, "frank", "prod-db", "r-dddddddddddddddd", m(10), 8*time.Minute),
		certFor(41, "frank", "prod-db", "r-dddddddddddddddd", m(11), 8*time.Minute),
	}
	for _, c := range certs {
		if err := db.RecordCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Revoke(ctx, ca.RevokeSpec{Serial: 20}, "bob", "laptop lost", m(9)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Revoke(ctx, ca.RevokeSpec{RequestID: "r-dddddddddddddddd"}, "bob", "left the team", m(12)); err != nil {
		t.Fatal(err)
	}
	// Revoking serial 20 ended its grant: no certificate may be recorded
	// under it any more. A fresh one under a new grant is valid on its own
	// terms.
	if err := db.RecordCertificate(ctx, certFor(22, "erin", "prod-db", "r-bbbbbbbbbbbbbbbb", m(15), 8*time.Minute)); !errors.Is(err, ca.ErrGrantEnded) {
		t.Fatalf("recording a certificate under the grant a revocation ended = %v, want ca.ErrGrantEnded", err)
	}
	if err := db.RecordCertificate(ctx, certFor(21, "erin", "prod-db", "r-eeeeeeeeeeeeeeee", m(15), 8*time.Minute)); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		at    time.Time
		group string
		want  []uint64 // newest first
	}{
		{"before anything", m(-3), "prod-db", nil},
		{"backdated start counts", m(-2), "prod-db", []uint64{10}},
		{"overlap of two of alice's", m(4), "prod-db", []uint64{11, 10}},
		{"three at once", m(6), "prod-db", []uint64{20, 11, 10}},
		{"expiry instant is exclusive", m(8), "prod-db", []uint64{40, 20, 11}},
		{"revocation instant is exclusive", m(9), "prod-db", []uint64{41, 40, 11}},
		{"after revocation by serial", m(10), "prod-db", []uint64{41, 40, 11}},
		{"revoked by request: both gone", m(12), "prod-db", []uint64{11}},
		{"fresh cert after a revocation", m(14), "prod-db", []uint64{21}},
		{"everything expired", m(30), "prod-db", nil},
		{"other group only", m(6), "staging", []uint64{30}},
		{"all groups", m(6), "", []uint64{20, 11, 30, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			err := db.ListCertificates(ctx, ca.CertFilter{ValidAt: tt.at, Group: tt.group}, func(c *ca.Certificate) error {
				got = append(got, c.Serial)
				if len(c.Approvers) == 0 || c.Reason == "" || c.Requester == "" {
					t.Errorf("certificate %d lacks who approved it and why: %+v", c.Serial, c)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("valid at %s in %q = %v, want %v", tt.at.Sub(t0), tt.group, got, tt.want)
			}
		})
	}
}
