package storetest

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// testCertificateRoundTrip: a certificate record round-trips for every
// range of serial (uint64, bit-for-bit), a duplicate serial is refused
// without a trace, and the issued event carries the serial.
func testCertificateRoundTrip(t *testing.T, db store.Ledger) {
	ctx := t.Context()
	r := NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, T0)
	Create(t, db, r)

	tests := []struct {
		name      string
		serial    uint64
		approvers []string
	}{
		{"small serial", 1, []string{"bob", "dave"}},
		{"serial 2^63-1", 1<<63 - 1, []string{"bob"}},
		{"serial 2^63", 1 << 63, []string{"bob"}},
		{"serial 2^64-1", 1<<64 - 1, []string{"bob"}},
		{"auto-approved", 12345, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := CertFor(tt.serial, "alice", "prod-db", r.ID, T0, 5*time.Minute)
			c.Approvers = tt.approvers
			if err := db.RecordCertificate(ctx, c); err != nil {
				t.Fatalf("RecordCertificate: %v", err)
			}
			got, err := db.GetCertificate(ctx, tt.serial)
			if err != nil {
				t.Fatalf("GetCertificate(%d): %v", tt.serial, err)
			}
			want := *c
			want.Reason = r.Reason // listings carry the request's reason
			if want.Approvers == nil {
				want.Approvers = []string{}
			}
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("GetCertificate(%d) =\n  %+v\nwant\n  %+v", tt.serial, got, &want)
			}
			var n int
			if err := db.ListCertificates(ctx, ca.CertFilter{Serial: tt.serial}, func(c *ca.Certificate) error {
				if c.Serial != tt.serial {
					t.Errorf("listing by serial %d returned %d", tt.serial, c.Serial)
				}
				n++
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("listing by serial %d returned %d rows, want 1", tt.serial, n)
			}
		})
	}

	if _, err := db.GetCertificate(ctx, 999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetCertificate(999) = %v, want store.ErrNotFound", err)
	}

	t.Run("duplicate serial", func(t *testing.T) {
		before := countEvents(t, db)
		headBefore, err := db.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dup := CertFor(1<<63, "erin", "staging", r.ID, T0.Add(time.Hour), time.Minute)
		err = db.RecordCertificate(ctx, dup)
		if !errors.Is(err, store.ErrDuplicate) {
			t.Errorf("RecordCertificate with a used serial = %v, want store.ErrDuplicate", err)
		}
		if n := countEvents(t, db); n != before {
			t.Errorf("event rows = %d after a refused duplicate, want %d", n, before)
		}
		got, err := db.GetCertificate(ctx, 1<<63)
		if err != nil || got.Requester != "alice" {
			t.Errorf("original certificate changed by the refused duplicate: %+v, %v", got, err)
		}
		// The in-memory head did not move: the next event still links.
		if err := db.RecordEvent(ctx, ca.Event{Actor: "jit-ssh", Type: ca.EventConfigLoaded}); err != nil {
			t.Fatal(err)
		}
		res, err := db.Verify(ctx)
		if err != nil {
			t.Errorf("Verify after a refused duplicate = %v, want clean", err)
		}
		if res.Rows != headBefore.Rows+1 {
			t.Errorf("Verify rows = %d, want %d", res.Rows, headBefore.Rows+1)
		}
	})

	t.Run("issued event carries the serial", func(t *testing.T) {
		var n int
		if err := db.ListEvents(ctx, ca.EventFilter{Type: ca.EventCertIssued, Serial: 1 << 63}, func(ev *ca.Event) error {
			if ev.Serial != 1<<63 {
				t.Errorf("listing by serial 2^63 returned an event with serial %d", ev.Serial)
			}
			n++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%d %s events with serial 2^63, want 1", n, ca.EventCertIssued)
		}
	})
}

// testValidAt answers "who could reach GROUP at T, approved by whom, and
// why" over overlapping, expired and revoked certificates, revoked through
// the store's own Revoke (by serial and by request).
func testValidAt(t *testing.T, db store.Ledger) {
	ctx := t.Context()
	m := func(n int) time.Time { return T0.Add(time.Duration(n) * time.Minute) }
	for _, r := range []*ca.Request{
		NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, T0),
		NewRequest("r-bbbbbbbbbbbbbbbb", "erin", "prod-db", ca.StateApproved, T0),
		NewRequest("r-cccccccccccccccc", "alice", "staging", ca.StateApproved, T0),
		NewRequest("r-dddddddddddddddd", "frank", "prod-db", ca.StateApproved, T0),
		NewRequest("r-eeeeeeeeeeeeeeee", "erin", "prod-db", ca.StateApproved, T0.Add(14*time.Minute)),
	} {
		Create(t, db, r)
	}
	// Validity (minutes after T0; each starts 2m before issue):
	//   10 alice prod-db  -2..8        expired early on
	//   11 alice prod-db   3..13       overlaps 10 and 20
	//   20 erin  prod-db   5..15       revoked by serial at 9
	//   21 erin  prod-db  13..23       issued at 15 under a new grant, after 20 (and its grant) was revoked
	//   30 alice staging   0..60       another group
	//   40 frank prod-db   8..18       revoked by request at 12
	//   41 frank prod-db   9..19       revoked by request at 12
	certs := []*ca.Certificate{
		CertFor(10, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", m(0), 8*time.Minute),
		CertFor(11, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", m(5), 8*time.Minute),
		CertFor(20, "erin", "prod-db", "r-bbbbbbbbbbbbbbbb", m(7), 8*time.Minute),
		CertFor(30, "alice", "staging", "r-cccccccccccccccc", m(2), 58*time.Minute),
		CertFor(40, "frank", "prod-db", "r-dddddddddddddddd", m(10), 8*time.Minute),
		CertFor(41, "frank", "prod-db", "r-dddddddddddddddd", m(11), 8*time.Minute),
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
	if err := db.RecordCertificate(ctx, CertFor(22, "erin", "prod-db", "r-bbbbbbbbbbbbbbbb", m(15), 8*time.Minute)); !errors.Is(err, ca.ErrGrantEnded) {
		t.Fatalf("recording a certificate under the grant a revocation ended = %v, want ca.ErrGrantEnded", err)
	}
	if err := db.RecordCertificate(ctx, CertFor(21, "erin", "prod-db", "r-eeeeeeeeeeeeeeee", m(15), 8*time.Minute)); err != nil {
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
				t.Errorf("valid at %s in %q = %v, want %v", tt.at.Sub(T0), tt.group, got, tt.want)
			}
		})
	}
}
