package sqlite_test

import (
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// revocationsLedger is a ledger of 50 revoked certificates and 50,000
// other events (certificate.issued-like rows appended raw: RevokedSerials
// does not read their hashes), closed.
func revocationsLedger(b *testing.B) string {
	ctx := b.Context()
	db, path := openDB(b)
	create(b, db, newRequest(reqOpen, "alice", "prod-db", ca.StateApproved, t0))
	for i := range 50 {
		if err := db.RecordCertificate(ctx, certFor(uint64(1000+i), "alice", "prod-db", reqOpen, t0, time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	// Ends the grant: all 50 revoked, one event each.
	if _, err := db.Revoke(ctx, ca.RevokeSpec{Serial: 1000}, "carol", "bench", t0.Add(time.Minute)); err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	raw := rawDB(b, path)
	exec(b, raw, `WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < 50000)
		INSERT INTO events (at, actor, type, request_id, serial, data, prev_hash, hash)
		SELECT i, 'alice', 'certificate.issued', 'r-x', 100000 + i, '{"certificate_sha256":"' || hex(zeroblob(32)) || '","principals":["prod-db"],"key_id":"' || hex(zeroblob(100)) || '"}', '', '' FROM s`)
	raw.Close()
	return path
}

// BenchmarkRevokedSerials is what every GET /v1/krl costs the server: the
// ledger's writer (checked once per chain head) and a read-only open
// (checked at every call).
func BenchmarkRevokedSerials(b *testing.B) {
	path := revocationsLedger(b)
	for _, tt := range []struct {
		name string
		open func() (*sqlite.DB, error)
	}{
		{"writer", func() (*sqlite.DB, error) { return sqlite.Open(b.Context(), path) }},
		{"read-only", func() (*sqlite.DB, error) { return sqlite.OpenReadOnly(b.Context(), path) }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			db, err := tt.open()
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			for b.Loop() {
				got, _, err := db.RevokedSerials(b.Context(), t0)
				if err != nil || len(got["SHA256:ca"]) != 50 {
					b.Fatalf("RevokedSerials: %v, %v", got, err)
				}
			}
		})
	}
}
