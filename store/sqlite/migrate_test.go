package sqlite_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// TestMigrationCertificatesInIssueOrder opens a ledger written before
// migration 0004 (certificates keyed by serial) and checks that every
// certificate survives the rebuild unchanged, that rows now follow issue
// order, and that serials are still unique.
func TestMigrationCertificatesInIssueOrder(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ledger.db")
	raw := rawDB(t, path)
	exec(t, raw, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`)
	for v, name := range []string{"0001_init.sql", "0002_checkpoints.sql", "0003_audit_indexes.sql"} {
		body, err := os.ReadFile(filepath.Join("migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		exec(t, raw, string(body))
		exec(t, raw, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, v+1)
	}
	exec(t, raw, `INSERT INTO requests (id, host_group, requester, state, reason, duration_ns, created_at, updated_at, approved_at, version)
		VALUES ('r-aaaaaaaaaaaaaaaa', 'prod-db', 'alice', 'approved', 'incident 7', 3600000000000, 0, 0, ?, 3)`, t0.UnixNano())
	// Serials in an order unrelated to issue order, one past 2^63, one revoked.
	old := []*ca.Certificate{
		certFor(900, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", t0, 5*time.Minute),
		certFor(1<<63+5, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", t0.Add(time.Minute), 5*time.Minute),
		certFor(3, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", t0.Add(2*time.Minute), 5*time.Minute),
	}
	revokedAt := t0.Add(3 * time.Minute)
	for i, c := range old {
		c.Reason = "incident 7"
		var revoked any
		if i == 1 {
			revoked = revokedAt.UnixNano()
		}
		exec(t, raw, `INSERT INTO certificates (serial, key_id, host_group, principals, valid_after, valid_before, requester, request_id,
			approvers, fingerprint, ca_fingerprint, certificate, issued_at, revoked_at, revoke_reason) VALUES (?, ?, ?, '["prod-db"]', ?, ?, ?, ?, '["bob"]', ?, ?, ?, ?, ?, ?)`,
			int64(c.Serial), c.KeyID, c.HostGroup, c.ValidAfter.UnixNano(), c.ValidBefore.UnixNano(), c.Requester, c.RequestID, //nolint:gosec // bit-for-bit
			c.Fingerprint, c.CAFingerprint, c.Certificate, c.IssuedAt.UnixNano(), revoked, "left")
	}
	raw.Close()

	db, err := sqlite.Open(ctx, path, sqlite.WithClock(func() time.Time { return t0 }))
	if err != nil {
		t.Fatalf("Open (migrating): %v", err)
	}
	defer db.Close()
	for i, want := range old {
		got, err := db.GetCertificate(ctx, want.Serial)
		if err != nil {
			t.Fatalf("GetCertificate(%d) after the migration: %v", want.Serial, err)
		}
		if i == 1 {
			if got.RevokedAt.IsZero() || !got.RevokedAt.Equal(revokedAt) {
				t.Errorf("certificate %d lost its revocation: revoked at %v, want %v", want.Serial, got.RevokedAt, revokedAt)
			}
			got.RevokedAt = time.Time{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("certificate %d after the migration =\n  %+v\nwant\n  %+v", want.Serial, got, want)
		}
	}
	var order []uint64
	check := rawDB(t, path)
	rows, err := check.Query(`SELECT serial FROM certificates ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		order = append(order, uint64(s)) //nolint:gosec // bit-for-bit
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []uint64{900, 1<<63 + 5, 3}; !reflect.DeepEqual(order, want) {
		t.Errorf("rows in id order have serials %v, want issue order %v", order, want)
	}
	if err := db.RecordCertificate(ctx, certFor(3, "erin", "prod-db", "r-aaaaaaaaaaaaaaaa", t0.Add(50*time.Minute), time.Minute)); err == nil {
		t.Errorf("RecordCertificate with serial 3 again succeeded after the migration: serials must stay unique")
	}
	if err := db.RecordCertificate(ctx, certFor(4, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", t0.Add(50*time.Minute), time.Minute)); err != nil {
		t.Errorf("RecordCertificate after the migration: %v", err)
	}
}
