package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
	"github.com/jit-ssh/jit-ssh/store/storetest"
)

// t0 is the fixed start of the store tests.
var t0 = storetest.T0

func openDB(t testing.TB, opts ...sqlite.Option) (*sqlite.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	db, err := sqlite.Open(t.Context(), path, append([]sqlite.Option{sqlite.WithClock(func() time.Time { return t0 })}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// rawDB opens the ledger file behind the store's back, as an attacker with
// file access (or sqlite3 on the host) would.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

func exec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestOpenCreatesPrivateFileAndMigrates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "ledger.db")
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	if db.Path() != path {
		t.Errorf("Path = %q, want %q", db.Path(), path)
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{path, 0o600}, {dir, 0o700}} {
		st, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != c.want {
			t.Errorf("mode of %s = %04o, want %04o", c.path, got, c.want)
		}
	}
	if err := db.Ping(t.Context()); err != nil {
		t.Errorf("Ping = %v, want nil", err)
	}

	raw := rawDB(t, path)
	var mode string
	if err := raw.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	// New ledgers have 8 KiB pages (a listing reads half as many).
	var pageSize int
	if err := raw.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil || pageSize != 8192 {
		t.Errorf("page_size = %d (%v), want 8192", pageSize, err)
	}
	for _, table := range []string{"requests", "reviews", "certificates", "events", "schema_migrations"} {
		var n int
		if err := raw.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("table %s missing after Open", table)
		}
	}
	var versions int
	if err := raw.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions == 0 {
		t.Errorf("schema_migrations is empty after Open")
	}
}

func TestReopenIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	ctx := t.Context()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	create(t, db, newRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StatePending, t0))
	var before int
	if err := rawDB(t, path).QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for i := range 2 {
		db, err = sqlite.Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		var after int
		if err := rawDB(t, path).QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&after); err != nil {
			t.Fatal(err)
		}
		if after != before {
			t.Errorf("reopen %d: %d migrations recorded, want %d (none re-applied)", i, after, before)
		}
		if _, err := db.GetRequest(ctx, "r-aaaaaaaaaaaaaaaa"); err != nil {
			t.Errorf("reopen %d: request lost: %v", i, err)
		}
		// The chain continues from the stored head after a restart.
		if err := db.RecordEvent(ctx, ca.Event{Time: t0, Actor: "jit-ssh", Type: ca.EventConfigLoaded}); err != nil {
			t.Fatal(err)
		}
		res, err := db.Verify(ctx)
		if err != nil {
			t.Errorf("reopen %d: Verify = %v, want a clean chain across restarts", i, err)
		}
		if res.Rows != int64(2+i) {
			t.Errorf("reopen %d: Verify rows = %d, want %d", i, res.Rows, 2+i)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestListCertificates(t *testing.T) {
	ctx := t.Context()
	db, path := openDB(t)
	for _, r := range []*ca.Request{
		newRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0),
		newRequest("r-bbbbbbbbbbbbbbbb", "erin", "prod-db", ca.StateApproved, t0),
		newRequest("r-cccccccccccccccc", "alice", "staging", ca.StateApproved, t0),
	} {
		create(t, db, r)
	}
	// Timeline (minutes after t0; validity starts 2m before issue):
	//   1 alice prod-db   issued 0,  valid -2..5
	//   2 alice prod-db   issued 4,  valid  2..9   (overlaps 1)
	//   3 erin  prod-db   issued 10, valid  8..15
	//   4 alice staging   issued 20, valid 18..80
	//   5 erin  prod-db   issued 30, valid 28..35, revoked at 31
	m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	certs := []*ca.Certificate{
		certFor(1, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", m(0), 5*time.Minute),
		certFor(2, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", m(4), 5*time.Minute),
		certFor(3, "erin", "prod-db", "r-bbbbbbbbbbbbbbbb", m(10), 5*time.Minute),
		certFor(4, "alice", "staging", "r-cccccccccccccccc", m(20), time.Hour),
		certFor(1<<63+5, "erin", "prod-db", "r-bbbbbbbbbbbbbbbb", m(30), 5*time.Minute),
	}
	for _, c := range certs {
		if err := db.RecordCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// There is no revocation API in the store yet; mark one revoked the way
	// the schema records it.
	exec(t, rawDB(t, path), `UPDATE certificates SET revoked_at = ?, revoke_reason = 'laptop lost' WHERE serial = ?`, m(31).UnixNano(), int64(-1<<63+5))

	const five = 1<<63 + 5
	tests := []struct {
		name string
		f    ca.CertFilter
		want []uint64 // newest first
	}{
		{"everything", ca.CertFilter{}, []uint64{five, 4, 3, 2, 1}},
		{"user", ca.CertFilter{User: "alice"}, []uint64{4, 2, 1}},
		{"group", ca.CertFilter{Group: "prod-db"}, []uint64{five, 3, 2, 1}},
		{"user and group", ca.CertFilter{User: "alice", Group: "prod-db"}, []uint64{2, 1}},
		{"since is inclusive", ca.CertFilter{Since: m(10)}, []uint64{five, 4, 3}},
		{"until is exclusive", ca.CertFilter{Until: m(10)}, []uint64{2, 1}},
		{"since and until", ca.CertFilter{Since: m(4), Until: m(20)}, []uint64{3, 2}},
		{"valid before issue (backdated start)", ca.CertFilter{ValidAt: m(-1)}, []uint64{1}},
		{"valid at overlap", ca.CertFilter{ValidAt: m(3)}, []uint64{2, 1}},
		{"valid at first's end is exclusive", ca.CertFilter{ValidAt: m(5)}, []uint64{2}},
		{"valid in a gap", ca.CertFilter{ValidAt: m(16)}, nil},
		{"valid at, with group", ca.CertFilter{ValidAt: m(3), Group: "staging"}, nil},
		{"valid while a long cert runs", ca.CertFilter{ValidAt: m(29), Group: ""}, []uint64{five, 4}},
		{"revoked cert is not valid after revocation", ca.CertFilter{ValidAt: m(32)}, []uint64{4}},
		{"after everything expired", ca.CertFilter{ValidAt: m(90)}, nil},
		{"key id (shared by every cert of a grant)", ca.CertFilter{KeyID: certs[2].KeyID}, []uint64{five, 3}},
		{"serial", ca.CertFilter{Serial: 2}, []uint64{2}},
		{"limit", ca.CertFilter{Limit: 2}, []uint64{five, 4}},
		{"no match", ca.CertFilter{User: "mallory"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			err := db.ListCertificates(ctx, tt.f, func(c *ca.Certificate) error {
				got = append(got, c.Serial)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ListCertificates(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}

	t.Run("revoked_at round trip", func(t *testing.T) {
		c, err := db.GetCertificate(ctx, five)
		if err != nil {
			t.Fatal(err)
		}
		if !c.RevokedAt.Equal(m(31)) {
			t.Errorf("RevokedAt = %s, want %s", c.RevokedAt, m(31))
		}
	})

	t.Run("callback error stops the listing", func(t *testing.T) {
		stop := errors.New("client went away")
		calls := 0
		err := db.ListCertificates(ctx, ca.CertFilter{}, func(*ca.Certificate) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) {
			t.Errorf("ListCertificates = %v, want the callback's error", err)
		}
		if calls != 1 {
			t.Errorf("callback called %d times after returning an error, want 1", calls)
		}
	})
}

// ledgerWithEvents returns a ledger holding a realistic log of n >= 5 rows.
func ledgerWithEvents(t *testing.T, opts ...sqlite.Option) (*sqlite.DB, string, int) {
	t.Helper()
	ctx := t.Context()
	db, path := openDB(t, opts...)
	r := newRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StatePending, t0) // row 1
	create(t, db, r)
	approved := *r
	approved.State, approved.ApprovedAt, approved.Version = ca.StateApproved, t0.Add(time.Minute), 2
	if err := db.ApplyRequestChange(ctx, ca.RequestChange{Request: &approved, PrevVersion: 1,
		Review: &ca.Review{Reviewer: "bob", Event: ca.ReviewApprove, CreatedAt: t0.Add(time.Minute)},
		Events: []ca.Event{
			{Time: t0.Add(time.Minute), Actor: "bob", Type: ca.EventReview, RequestID: r.ID, Data: map[string]any{"event": "APPROVE"}},         // row 2
			{Time: t0.Add(time.Minute), Actor: "alice", Type: ca.EventGrantStarted, RequestID: r.ID, Data: map[string]any{"approvers": "bob"}}, // row 3
		}}); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordCertificate(ctx, certFor(1<<63+1, "alice", "prod-db", r.ID, t0.Add(2*time.Minute), 5*time.Minute)); err != nil { // row 4
		t.Fatal(err)
	}
	if err := db.RecordEvent(ctx, ca.Event{Time: t0.Add(3 * time.Minute), Actor: "alice", Type: ca.EventIssueRefused, RequestID: r.ID,
		Data: map[string]any{"why": "rsa 2048"}}); err != nil { // row 5
		t.Fatal(err)
	}
	if err := db.RecordEvent(ctx, ca.Event{Actor: "jit-ssh", Type: ca.EventConfigLoaded}); err != nil { // row 6, time from the store clock
		t.Fatal(err)
	}
	return db, path, 6
}

func TestVerifyUntouched(t *testing.T) {
	db, path, n := ledgerWithEvents(t)
	res, err := db.Verify(t.Context())
	if err != nil {
		t.Fatalf("Verify of an untouched ledger = %v, want nil", err)
	}
	if res.Rows != int64(n) {
		t.Errorf("Verify rows = %d, want %d", res.Rows, n)
	}
	var last string
	if err := rawDB(t, path).QueryRow(`SELECT hash FROM events ORDER BY id DESC LIMIT 1`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if res.Head != last || len(last) != 64 {
		t.Errorf("Verify head = %q, want the last row's hash %q", res.Head, last)
	}

	empty, _ := openDB(t)
	res, err = empty.Verify(t.Context())
	if err != nil || res.Rows != 0 || res.Head != "" {
		t.Errorf("Verify of an empty ledger = %+v, %v; want 0 rows, no error", res, err)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short (make test runs it): a tampering matrix, one ledger per case")
	}
	cols := `at, actor, type, request_id, serial, data, prev_hash, hash`
	tests := []struct {
		name    string
		tamper  []string // SQL run through a separate connection
		wantRow int64
	}{
		{"actor edited", []string{`UPDATE events SET actor = 'mallory' WHERE id = 2`}, 2},
		{"type edited", []string{`UPDATE events SET type = 'review.dismissed' WHERE id = 3`}, 3},
		{"time edited", []string{`UPDATE events SET at = at - 3600000000000 WHERE id = 4`}, 4},
		{"data edited", []string{`UPDATE events SET data = '{"approvers":"mallory"}' WHERE id = 3`}, 3},
		{"data made invalid", []string{`UPDATE events SET data = '{' WHERE id = 5`}, 5},
		{"serial edited", []string{`UPDATE events SET serial = 7 WHERE id = 4`}, 4},
		{"request id edited", []string{`UPDATE events SET request_id = 'r-zzzzzzzzzzzzzzzz' WHERE id = 1`}, 1},
		{"last row edited", []string{`UPDATE events SET actor = 'root' WHERE id = 6`}, 6},
		{"hash edited", []string{`UPDATE events SET hash = (SELECT hash FROM events WHERE id = 1) WHERE id = 2`}, 2},
		{"row deleted", []string{`DELETE FROM events WHERE id = 3`}, 4},
		{"first row deleted", []string{`DELETE FROM events WHERE id = 1`}, 2},
		{"two rows' contents swapped", []string{
			`CREATE TEMP TABLE r2 AS SELECT ` + cols + ` FROM events WHERE id = 2`,
			`UPDATE events SET (` + cols + `) = (SELECT ` + cols + ` FROM events WHERE id = 3) WHERE id = 2`,
			`UPDATE events SET (` + cols + `) = (SELECT ` + cols + ` FROM r2) WHERE id = 3`,
		}, 2},
		{"rows renumbered to hide a deletion", []string{
			`DELETE FROM events WHERE id = 3`,
			`UPDATE events SET id = id - 1 WHERE id > 3`,
		}, 3},
		{"row appended", []string{
			`INSERT INTO events (id, at, actor, type, request_id, serial, data, prev_hash, hash)
			 SELECT 7, at, 'mallory', 'certificate.issued', '', 0, '{}', hash, hash FROM events WHERE id = 6`,
		}, 7},
		{"row inserted out of sequence", []string{
			`INSERT INTO events (id, at, actor, type, request_id, serial, data, prev_hash, hash)
			 SELECT 100, at, 'mallory', 'certificate.issued', '', 0, '{}', hash, hash FROM events WHERE id = 6`,
		}, 100},
		{"row copied over another", []string{
			`UPDATE events SET (` + cols + `) = (SELECT ` + cols + ` FROM events WHERE id = 5) WHERE id = 4`,
		}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, path, _ := ledgerWithEvents(t)
			raw := rawDB(t, path)
			conn, err := raw.Conn(t.Context()) // one connection, so the TEMP table is visible
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range tt.tamper {
				if _, err := conn.ExecContext(t.Context(), q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			conn.Close()

			_, err = db.Verify(t.Context())
			var ce *store.ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify after tampering = %v, want a *store.ChainError", err)
			}
			if ce.Row != tt.wantRow {
				t.Errorf("ChainError names row %d (%s), want row %d", ce.Row, ce.Reason, tt.wantRow)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("row %d", tt.wantRow)) {
				t.Errorf("error %q does not name row %d", err, tt.wantRow)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	// As root, file permissions cannot make the ledger read-only, so the
	// write path is broken two other ways: a closed database, and a
	// trigger that makes SQLite refuse the write (as a full disk would)
	// part way through a transaction.
	ctx := context.Background()

	t.Run("closed database", func(t *testing.T) {
		db, _ := openDB(t)
		create(t, db, newRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0))
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		calls := []struct {
			name string
			call func() error
		}{
			{"RecordCertificate", func() error {
				return db.RecordCertificate(ctx, certFor(1, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", t0, time.Minute))
			}},
			{"RecordEvent", func() error { return db.RecordEvent(ctx, ca.Event{Actor: "x", Type: ca.EventConfigLoaded}) }},
			{"ApplyRequestChange", func() error {
				return db.ApplyRequestChange(ctx, ca.RequestChange{Create: true, Request: newRequest("r-bbbbbbbbbbbbbbbb", "alice", "prod-db", ca.StatePending, t0)})
			}},
			{"GetRequest", func() error { _, err := db.GetRequest(ctx, "r-aaaaaaaaaaaaaaaa"); return err }},
			{"Ping", func() error { return db.Ping(ctx) }},
		}
		for _, c := range calls {
			t.Run(c.name, func(t *testing.T) {
				if err := c.call(); !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, ca.ErrLedgerUnavailable) {
					t.Errorf("%s on a closed ledger = %v, want store.ErrUnavailable (ca.ErrLedgerUnavailable)", c.name, err)
				}
			})
		}
	})

	t.Run("write refused inside the transaction", func(t *testing.T) {
		db, path := openDB(t)
		create(t, db, newRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0))
		raw := rawDB(t, path)
		// The certificate row goes in, then appending its event fails: the
		// whole transaction must roll back.
		exec(t, raw, `CREATE TRIGGER no_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'simulated I/O failure'); END`)
		err := db.RecordCertificate(ctx, certFor(42, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", t0, time.Minute))
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("RecordCertificate with a failing event write = %v, want store.ErrUnavailable", err)
		}
		if _, err := db.GetCertificate(ctx, 42); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("certificate 42 is in the ledger although its event was not written (%v): the write was not atomic", err)
		}
		exec(t, raw, `DROP TRIGGER no_events`)
		// The failed write did not move the chain head: new rows still link.
		if err := db.RecordCertificate(ctx, certFor(43, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", t0, time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Verify(ctx); err != nil {
			t.Errorf("Verify after a failed write = %v, want a clean chain", err)
		}
	})
}

// TestIssueCommitsBeforeReturning runs the real issuance pipeline against
// the real ledger: the certificate is readable from a second handle on the
// file by the time Issue returns, and a ledger that cannot write means no
// certificate.
func TestIssueCommitsBeforeReturning(t *testing.T) {
	ctx := t.Context()
	db, path := openDB(t)
	create(t, db, newRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0))
	signer, err := ca.LoadOrCreateFileSigner(filepath.Join(t.TempDir(), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	g := ca.Grant{RequestID: "r-aaaaaaaaaaaaaaaa", User: "alice", Group: "prod-db", Approvers: []string{"bob"}, Ends: now.Add(time.Hour),
		Profile: ca.Profile{Principals: []string{"prod-db"}, CertTTL: 5 * time.Minute}}
	subject, err := ca.ParseSubjectKey("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
	if err != nil {
		t.Fatal(err)
	}
	iss := ca.NewIssuer(signer, db, ca.WithClock(func() time.Time { return now }))
	rec, _, err := iss.Issue(ctx, g, subject)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}

	second, err := sqlite.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	got, err := second.GetCertificate(ctx, rec.Serial)
	if err != nil {
		t.Fatalf("issued certificate %d is not in the ledger file: %v", rec.Serial, err)
	}
	if got.Certificate != rec.Certificate || got.KeyID != rec.KeyID {
		t.Errorf("ledger holds a different certificate for serial %d", rec.Serial)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, cert, err := iss.Issue(ctx, g, subject)
	if !errors.Is(err, ca.ErrLedgerUnavailable) || cert != nil {
		t.Errorf("Issue on a closed ledger = %v, %v; want no certificate and ca.ErrLedgerUnavailable", cert, err)
	}
}
