package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

var gcT0 = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)

// gcLedger opens a ledger with one approved request r-aaaaaaaaaaaaaaaa and
// a second connection to the same file, outside the store, that sees only
// committed rows.
func gcLedger(t *testing.T) (*DB, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	d, err := Open(t.Context(), path, WithClock(func() time.Time { return gcT0 }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	req := &ca.Request{ID: "r-aaaaaaaaaaaaaaaa", HostGroup: "prod-db", Requester: "alice", State: ca.StateApproved,
		Reason: "INC-1", Duration: time.Hour, CreatedAt: gcT0, UpdatedAt: gcT0, ApprovedAt: gcT0, Version: 1}
	if err := d.ApplyRequestChange(t.Context(), ca.RequestChange{Request: req, Create: true}); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return d, raw
}

func gcCert(serial uint64) *ca.Certificate {
	return &ca.Certificate{
		Serial: serial, KeyID: fmt.Sprintf("jit-ssh:user=alice:group=prod-db:req=r-aaaaaaaaaaaaaaaa:by=bob#%d", serial),
		HostGroup: "prod-db", Principals: []string{"prod-db"}, ValidAfter: gcT0.Add(-2 * time.Minute), ValidBefore: gcT0.Add(5 * time.Minute),
		Requester: "alice", RequestID: "r-aaaaaaaaaaaaaaaa", Approvers: []string{"bob"}, Fingerprint: "SHA256:subject",
		CAFingerprint: "SHA256:ca", Certificate: "ssh-ed25519-cert-v01@openssh.com AAAA", IssuedAt: gcT0,
	}
}

func committed(t *testing.T, raw *sql.DB, serial uint64) bool {
	t.Helper()
	var n int
	if err := raw.QueryRow(`SELECT count(*) FROM certificates WHERE serial = ?`, int64(serial)).Scan(&n); err != nil { //nolint:gosec // small test serials
		t.Errorf("reading serial %d: %v", serial, err)
	}
	return n == 1
}

// holdFirstBatch makes the first batch wait before its commit until want
// other callers are queued behind it, so the next batch holds all of them.
// then runs before the commit of every later batch.
func holdFirstBatch(t *testing.T, d *DB, want int, then func(n int) error) {
	t.Helper()
	var calls atomic.Int64
	d.gc.beforeCommit = func(n int) error {
		if calls.Add(1) > 1 {
			return then(n)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			queued := d.gc.Queued()
			if queued == want {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("only %d of %d writers queued", queued, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// record runs RecordCertificate for serials 1..n concurrently, serial 1
// first (it leads the first batch), and returns each caller's error.
func record(t *testing.T, d *DB, n int, cert func(uint64) *ca.Certificate, after func(serial uint64, err error)) []error {
	t.Helper()
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	run := func(s uint64) {
		defer wg.Done()
		errs[s] = d.RecordCertificate(context.Background(), cert(s))
		after(s, errs[s])
	}
	wg.Add(1)
	go run(1)
	for !d.gc.Leading() { // serial 1 must be the first batch's leader
		time.Sleep(time.Millisecond)
	}
	for s := uint64(2); s <= uint64(n); s++ { //nolint:gosec // small n
		wg.Add(1)
		go run(s)
	}
	wg.Wait()
	return errs
}

func TestGroupCommitReturnsOnlyAfterOwnCommit(t *testing.T) {
	d, raw := gcLedger(t)
	const n = 32
	var returned atomic.Int64
	var batchSizes []int
	holdFirstBatch(t, d, n-1, func(size int) error {
		batchSizes = append(batchSizes, size)
		// Before the commit none of this batch's callers may have returned,
		// and their rows are invisible to other connections.
		if got := returned.Load(); got > 1 {
			t.Errorf("%d callers returned before their batch committed; only the first batch's one may have", got)
		}
		for s := uint64(2); s <= n; s++ {
			if committed(t, raw, s) {
				t.Errorf("serial %d visible before its commit", s)
			}
		}
		return nil
	})
	errs := record(t, d, n, gcCert, func(serial uint64, err error) {
		if err == nil && !committed(t, raw, serial) {
			t.Errorf("RecordCertificate(%d) returned before its row was committed", serial)
		}
		returned.Add(1)
	})
	for s, err := range errs[1:] {
		if err != nil {
			t.Errorf("serial %d: %v", s+1, err)
		}
	}
	if d.gc.Batches() != 2 || len(batchSizes) != 1 || batchSizes[0] != n-1 {
		t.Errorf("got %d batches (later sizes %v), want 2: the first writer alone, then the %d that queued behind it", d.gc.Batches(), batchSizes, n-1)
	}
	if _, err := d.Verify(t.Context()); err != nil {
		t.Fatalf("Verify after group commit: %v", err)
	}
	var events int
	if err := raw.QueryRow(`SELECT count(*) FROM events WHERE type = ?`, ca.EventCertIssued).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != n {
		t.Errorf("got %d certificate.issued events, want %d", events, n)
	}
}

func TestGroupCommitFailedBatchFailsEveryCaller(t *testing.T) {
	d, raw := gcLedger(t)
	const n = 16
	injected := errors.New("disk on fire")
	holdFirstBatch(t, d, n-1, func(int) error { return injected })
	errs := record(t, d, n, gcCert, func(uint64, error) {})
	if errs[1] != nil {
		t.Errorf("first batch: %v", errs[1])
	}
	if !committed(t, raw, 1) {
		t.Error("serial 1 (first batch) is not in the ledger")
	}
	for s := uint64(2); s <= n; s++ {
		if !errors.Is(errs[s], store.ErrUnavailable) || !errors.Is(errs[s], injected) {
			t.Errorf("serial %d: got %v, want ErrUnavailable wrapping the commit failure", s, errs[s])
		}
		if committed(t, raw, s) {
			t.Errorf("serial %d is in the ledger although its caller got an error", s)
		}
	}
	// The chain head did not move: the next write links to serial 1's event.
	d.gc.beforeCommit = nil
	if err := d.RecordCertificate(t.Context(), gcCert(100)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Verify(t.Context()); err != nil {
		t.Errorf("Verify after a failed batch: %v", err)
	}
}

func TestGroupCommitBadWriteFailsOnlyItself(t *testing.T) {
	d, raw := gcLedger(t)
	const n = 16
	holdFirstBatch(t, d, n-1, func(int) error { return nil })
	// Serial 7 reuses serial 1's number: a duplicate in the second batch.
	cert := func(s uint64) *ca.Certificate {
		if s == 7 {
			c := gcCert(1)
			c.KeyID += "-dup"
			return c
		}
		return gcCert(s)
	}
	errs := record(t, d, n, cert, func(uint64, error) {})
	for s := uint64(1); s <= n; s++ {
		switch {
		case s == 7:
			if !errors.Is(errs[s], store.ErrDuplicate) {
				t.Errorf("duplicate serial: got %v, want ErrDuplicate", errs[s])
			}
		case errs[s] != nil:
			t.Errorf("serial %d failed with its batch neighbour: %v", s, errs[s])
		case !committed(t, raw, s):
			t.Errorf("serial %d not committed", s)
		}
	}
	var keyID string
	if err := raw.QueryRow(`SELECT key_id FROM certificates WHERE serial = 1`).Scan(&keyID); err != nil || keyID != gcCert(1).KeyID {
		t.Errorf("serial 1 key id %q (%v): the duplicate changed it", keyID, err)
	}
	var events int
	if err := raw.QueryRow(`SELECT count(*) FROM events WHERE type = ?`, ca.EventCertIssued).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != n-1 {
		t.Errorf("got %d certificate.issued events, want %d (none for the refused duplicate)", events, n-1)
	}
	if _, err := d.Verify(t.Context()); err != nil {
		t.Errorf("Verify: %v", err)
	}
}
