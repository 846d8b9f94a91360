package postgres_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
	"github.com/jit-ssh/jit-ssh/store/postgres"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
	"github.com/jit-ssh/jit-ssh/store/storetest"
	"github.com/jit-ssh/jit-ssh/test/pgtest"
)

var t0 = storetest.T0

func clock() time.Time { return t0 }

func open(t testing.TB, dsn string, opts ...postgres.Option) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), dsn, append([]postgres.Option{postgres.WithClock(clock)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// raw connects behind the ledger's back, as someone with write access to
// the database would.
func raw(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(t.Context()) })
	return c
}

func signer(t testing.TB) ssh.Signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// history runs the same requests, reviews, certificates and revocations
// through any ledger, with fixed times.
func history(t *testing.T, db store.Ledger) {
	t.Helper()
	ctx := t.Context()
	r := storetest.NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StatePending, t0)
	storetest.Create(t, db, r)
	approved := *r
	approved.State, approved.ApprovedAt, approved.UpdatedAt, approved.Version = ca.StateApproved, t0.Add(time.Minute), t0.Add(time.Minute), 2
	approved.Duration = time.Hour
	err := db.ApplyRequestChange(ctx, ca.RequestChange{Request: &approved, PrevVersion: 1,
		Review: &ca.Review{Reviewer: "bob", Event: ca.ReviewApprove, Body: "ok", CreatedAt: t0.Add(time.Minute)},
		Events: []ca.Event{{Time: t0.Add(time.Minute), Actor: "bob", Type: ca.EventReview, RequestID: r.ID}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		c := storetest.CertFor(1<<63+uint64(i), "alice", "prod-db", r.ID, t0.Add(2*time.Minute), 5*time.Minute)
		if err := db.RecordCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.RecordEvent(ctx, ca.Event{Time: t0.Add(3 * time.Minute), Actor: "jit-ssh", Type: ca.EventConfigLoaded, Data: map[string]any{"dev": true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Revoke(ctx, ca.RevokeSpec{Serial: 1<<63 + 1}, "carol", "lost laptop", t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// TestSameHashesAsSQLite: the same history gives both backends the same
// chain, byte for byte (the hashes and digests are package store's), so a
// ledger can move between them.
func TestSameHashesAsSQLite(t *testing.T) {
	srv := pgtest.Start(t)
	pg := open(t, srv.NewDatabase(t))
	lite, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"), sqlite.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	history(t, pg)
	history(t, lite)
	pr, err := pg.Verify(t.Context())
	if err != nil {
		t.Fatalf("PostgreSQL Verify: %v", err)
	}
	lr, err := lite.Verify(t.Context())
	if err != nil {
		t.Fatalf("SQLite Verify: %v", err)
	}
	if pr.Rows != lr.Rows || pr.Head != lr.Head || pr.Rows == 0 {
		t.Errorf("PostgreSQL chain: %d rows, head %s; SQLite: %d rows, head %s; want the same", pr.Rows, pr.Head, lr.Rows, lr.Head)
	}
	if pr.Requests != 1 || pr.Reviews != 1 || pr.Certificates != 3 || !pr.RowsChecked {
		t.Errorf("PostgreSQL rows checked: %+v", pr)
	}
}

// TestWritersOnTwoConnectionsKeepOneChain: two ledgers open on one
// database (as two processes would be) writing at once give one chain, no
// fork and no gap, every certificate recorded once; a serial recorded by
// one is a duplicate for the other.
func TestWritersOnTwoConnectionsKeepOneChain(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	a, b := open(t, dsn), open(t, dsn)
	r := storetest.NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0)
	storetest.Create(t, a, r)
	const perWriter = 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*4*perWriter)
	for w, db := range []*postgres.DB{a, b, a, b} {
		wg.Go(func() {
			for i := range perWriter {
				serial := uint64(w*perWriter + i + 1)
				if err := db.RecordCertificate(t.Context(), storetest.CertFor(serial, "alice", "prod-db", r.ID, t0.Add(time.Second), time.Minute)); err != nil {
					errs <- fmt.Errorf("serial %d: %w", serial, err)
				}
				if err := db.RecordEvent(t.Context(), ca.Event{Actor: "jit-ssh", Type: ca.EventConfigLoaded}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	res, err := b.Verify(t.Context())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if want := int64(1 + 4*perWriter*2); res.Rows != want || res.Certificates != 4*perWriter {
		t.Errorf("Verify: %d rows, %d certificates; want %d rows, %d certificates", res.Rows, res.Certificates, want, 4*perWriter)
	}
	err = b.RecordCertificate(t.Context(), storetest.CertFor(1, "alice", "prod-db", r.ID, t0.Add(time.Second), time.Minute))
	if !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("recording serial 1 again on the other connection = %v, want store.ErrDuplicate", err)
	}
}

// TestRevocationOnOneConnectionStopsIssuanceOnTheOther: nothing is cached
// between the grant's check and the record: a revocation committed through
// one ledger handle refuses the next certificate through another.
func TestRevocationOnOneConnectionStopsIssuanceOnTheOther(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	a, b := open(t, dsn), open(t, dsn)
	r := storetest.NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0)
	storetest.Create(t, a, r)
	if _, err := a.GetRequest(t.Context(), r.ID); err != nil {
		t.Fatal(err)
	}
	if err := a.RecordCertificate(t.Context(), storetest.CertFor(1, "alice", "prod-db", r.ID, t0.Add(time.Second), time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Revoke(t.Context(), ca.RevokeSpec{RequestID: r.ID}, "carol", "incident over", t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := a.GetRequest(t.Context(), r.ID)
	if err != nil || got.EndedAt.IsZero() {
		t.Errorf("GetRequest on the other handle after the revocation: ended %v, %v; want the grant ended", got.EndedAt, err)
	}
	err = a.RecordCertificate(t.Context(), storetest.CertFor(2, "alice", "prod-db", r.ID, t0.Add(3*time.Second), time.Minute))
	if !errors.Is(err, ca.ErrGrantEnded) {
		t.Errorf("RecordCertificate after a revocation through the other handle = %v, want ca.ErrGrantEnded", err)
	}
	serials, _, err := a.RevokedSerials(t.Context(), t0)
	if err != nil || len(serials["SHA256:ca"]) != 1 {
		t.Errorf("RevokedSerials on the other handle = %v, %v; want serial 1", serials, err)
	}
}

// TestMigrateOnceWhenStartingTogether: ledgers opening a new database at
// the same time migrate it once (the advisory lock), and all of them work.
func TestMigrateOnceWhenStartingTogether(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			db, err := postgres.Open(t.Context(), dsn)
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			errs <- db.Ping(t.Context())
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Open at the same time: %v", err)
		}
	}
	var n, distinct int
	if err := raw(t, dsn).QueryRow(t.Context(), `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != distinct || n == 0 {
		t.Errorf("schema_migrations: %d rows for %d versions; want each version once", n, distinct)
	}
}

// TestUnavailableAndRecovery: with PostgreSQL down every call is
// store.ErrUnavailable (no certificate is recorded) and the same ledger
// works again once PostgreSQL is back.
func TestUnavailableAndRecovery(t *testing.T) {
	srv := pgtest.Start(t)
	db := open(t, srv.NewDatabase(t))
	r := storetest.NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0)
	storetest.Create(t, db, r)
	srv.Stop()
	ctx := t.Context()
	if err := db.RecordCertificate(ctx, storetest.CertFor(1, "alice", "prod-db", r.ID, t0.Add(time.Second), time.Minute)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("RecordCertificate with PostgreSQL down = %v, want store.ErrUnavailable", err)
	}
	if _, err := db.GetRequest(ctx, r.ID); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetRequest with PostgreSQL down = %v, want store.ErrUnavailable", err)
	}
	if err := db.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping with PostgreSQL down = %v, want store.ErrUnavailable", err)
	}
	srv.Restart(t)
	if err := db.RecordCertificate(ctx, storetest.CertFor(2, "alice", "prod-db", r.ID, t0.Add(time.Second), time.Minute)); err != nil {
		t.Errorf("RecordCertificate after PostgreSQL is back = %v", err)
	}
	if _, err := db.GetCertificate(ctx, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the certificate refused while PostgreSQL was down: GetCertificate = %v, want store.ErrNotFound", err)
	}
	if _, err := postgres.Open(ctx, "postgres://jit:secret-pw@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open of an unreachable database = %v, want store.ErrUnavailable", err)
	} else if strings.Contains(err.Error(), "secret-pw") {
		t.Errorf("Open's error shows the DSN's password: %v", err)
	}
}

// TestRowsEditedOutsideTheServer: a request row edited in the database is
// refused when read (ErrRowMismatch) and named by Verify; an event row
// appended with the right hash but without the server's MAC stops
// VerifyTail.
func TestRowsEditedOutsideTheServer(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	s := signer(t)
	db := open(t, dsn, postgres.WithCheckpointSigner(s))
	r := storetest.NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StatePending, t0)
	storetest.Create(t, db, r)
	if _, err := db.VerifyTail(t.Context()); err != nil {
		t.Fatalf("VerifyTail of an untouched ledger: %v", err)
	}
	cp, err := db.Checkpoint(t.Context())
	if err != nil || cp == nil || cp.Row != 1 {
		t.Fatalf("Checkpoint = %+v, %v; want row 1", cp, err)
	}
	rc := raw(t, dsn)
	if _, err := rc.Exec(t.Context(), `UPDATE requests SET state = 'approved', approved_at = created_at WHERE id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetRequest(t.Context(), r.ID); !errors.Is(err, store.ErrRowMismatch) {
		t.Errorf("GetRequest of an edited row = %v, want store.ErrRowMismatch", err)
	}
	var ce *store.ChainError
	if _, err := db.Verify(t.Context()); !errors.As(err, &ce) || ce.Table != "requests" || ce.Key != r.ID {
		t.Errorf("Verify = %v, want a ChainError naming requests row %s", err, r.ID)
	}
	if _, err := rc.Exec(t.Context(), `UPDATE requests SET state = 'pending', approved_at = NULL WHERE id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	var head string
	if err := rc.QueryRow(t.Context(), `SELECT hash FROM events WHERE id = 1`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	data := `{}`
	h := store.EventRowHash(2, t0.UnixNano(), "mallory", ca.EventConfigLoaded, "", 0, data, head)
	if _, err := rc.Exec(t.Context(), `INSERT INTO events (id, at, actor, type, data, prev_hash, hash) VALUES (2, $1, 'mallory', $2, $3, $4, $5)`,
		t0.UnixNano(), ca.EventConfigLoaded, data, head, h); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Verify(t.Context()); err != nil {
		t.Errorf("Verify of a chain extended with the right hash = %v, want nil (only the MAC tells)", err)
	}
	restarted := open(t, dsn, postgres.WithCheckpointSigner(s))
	if _, err := restarted.VerifyTail(t.Context()); !errors.As(err, &ce) || ce.Row != 2 {
		t.Errorf("VerifyTail with a row lacking the server's MAC = %v, want a ChainError at row 2", err)
	}
}

// TestLeastPrivilegeRole: after an owner's first start has migrated the
// database, the ledger runs as a role with no UPDATE or DELETE on the event
// log (the grants the README lists), and that role cannot rewrite it.
func TestLeastPrivilegeRole(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	owner := open(t, dsn)
	owner.Close()
	rc := raw(t, dsn)
	for _, q := range []string{
		`CREATE ROLE ledger LOGIN PASSWORD 'ledger-pw'`,
		`GRANT SELECT, INSERT ON events, checkpoints, schema_migrations TO ledger`,
		`GRANT SELECT, INSERT, UPDATE ON requests, reviews, certificates TO ledger`,
		`GRANT SELECT ON certificate_baseline TO ledger`,
	} {
		if _, err := rc.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	name := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	ldsn := srv.DSNAs(name, "ledger", "ledger-pw")
	db := open(t, ldsn, postgres.WithCheckpointSigner(signer(t)))
	if _, err := db.VerifyTail(t.Context()); err != nil {
		t.Fatal(err)
	}
	history(t, db)
	if _, err := db.Checkpoint(t.Context()); err != nil {
		t.Errorf("Checkpoint as the least-privilege role: %v", err)
	}
	if _, err := db.Verify(t.Context()); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if _, err := raw(t, ldsn).Exec(t.Context(), `UPDATE events SET actor = 'mallory' WHERE id = 1`); err == nil {
		t.Error("the ledger's role could update the event log")
	}
}

// TestRevocationDuringABurst: while two handles record certificates under
// one grant as fast as they can, a third revokes the grant. Afterwards
// every certificate of the grant is revoked: each was recorded before the
// revocation (which revoked it) or refused (ErrGrantEnded); none slipped
// in between the grant's check and the revocation.
func TestRevocationDuringABurst(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	a, b, c := open(t, dsn), open(t, dsn), open(t, dsn)
	r := storetest.NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0)
	storetest.Create(t, a, r)
	var serial atomic.Uint64
	var refused atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, db := range []*postgres.DB{a, b, a, b} {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := db.RecordCertificate(t.Context(), storetest.CertFor(serial.Add(1), "alice", "prod-db", r.ID, t0.Add(time.Second), time.Hour))
				switch {
				case errors.Is(err, ca.ErrGrantEnded):
					refused.Add(1)
				case err != nil:
					t.Error(err)
					return
				}
			}
		})
	}
	for serial.Load() < 40 {
		time.Sleep(time.Millisecond)
	}
	rev, err := c.Revoke(t.Context(), ca.RevokeSpec{RequestID: r.ID}, "carol", "incident over", t0.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// A bound, not a measurement: refusals start with the next batch.
	for deadline := time.Now().Add(time.Minute); refused.Load() < 8 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	var total, unrevoked int
	err = c.ListCertificates(t.Context(), ca.CertFilter{}, func(cert *ca.Certificate) error {
		total++
		if cert.RevokedAt.IsZero() {
			unrevoked++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if refused.Load() < 8 {
		t.Errorf("%d certificates refused after the revocation, want them all refused", refused.Load())
	}
	if unrevoked != 0 || total != len(rev.Serials) || total == 0 {
		t.Errorf("%d certificates recorded, %d revoked by the revocation, %d not revoked; want all recorded ones revoked", total, len(rev.Serials), unrevoked)
	}
	if _, err := c.Verify(t.Context()); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// TestTailDeletedAfterCheckpoint: rows deleted from the end of the event
// log below the newest checkpoint stop VerifyTail at start and Verify.
func TestTailDeletedAfterCheckpoint(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	s := signer(t)
	db := open(t, dsn, postgres.WithCheckpointSigner(s))
	history(t, db)
	if _, err := db.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := raw(t, dsn).Exec(t.Context(), `DELETE FROM events WHERE id = (SELECT max(id) FROM events)`); err != nil {
		t.Fatal(err)
	}
	var ce *store.ChainError
	if _, err := open(t, dsn, postgres.WithCheckpointSigner(s)).VerifyTail(t.Context()); !errors.As(err, &ce) || !strings.Contains(ce.Reason, "deleted") {
		t.Errorf("VerifyTail after deleting the last row = %v, want a ChainError saying rows were deleted", err)
	}
	if _, err := db.Verify(t.Context()); !errors.As(err, &ce) || !strings.Contains(ce.Reason, "deleted") {
		t.Errorf("Verify after deleting the last row = %v, want a ChainError saying rows were deleted", err)
	}
}
