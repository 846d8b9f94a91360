package postgres_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
	"github.com/jit-ssh/jit-ssh/store/storetest"
	"github.com/jit-ssh/jit-ssh/test/pgtest"
)

// TestGroupCommit: certificates recorded while a batch commits share the
// next batch's transaction; in it, a duplicate serial, a certificate of an
// ended grant and a row the database refuses (which fails the shared
// transaction: each is then recorded on its own) fail alone, each with its
// own error, and the others are recorded with one event each in one
// unbroken chain.
func TestGroupCommit(t *testing.T) {
	srv := pgtest.Start(t)
	db := open(t, srv.NewDatabase(t))
	open1 := storetest.NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0)
	storetest.Create(t, db, open1)
	ended := storetest.NewRequest("r-bbbbbbbbbbbbbbbb", "alice", "prod-db", ca.StateApproved, t0)
	ended.EndedAt = t0.Add(time.Second)
	storetest.Create(t, db, ended)
	cert := func(serial uint64, req string) *ca.Certificate {
		return storetest.CertFor(serial, "alice", "prod-db", req, t0.Add(time.Minute), time.Minute)
	}
	if err := db.RecordCertificate(t.Context(), cert(1, open1.ID)); err != nil {
		t.Fatal(err)
	}
	// The first batch waits before its commit until the others are queued.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	db.SetBeforeCommit(func(int) { once.Do(func() { close(entered); <-release }) })
	before := db.CertificateBatches()
	const n = 20
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = db.RecordCertificate(t.Context(), cert(100, open1.ID)) })
	<-entered
	for i := 1; i <= n; i++ {
		c := cert(uint64(100+i), open1.ID)
		switch i {
		case 5:
			c = cert(1, open1.ID) // a serial recorded already
		case 9:
			c = cert(109, ended.ID) // its grant has ended
		case 13:
			c.KeyID += "\x00" // a row PostgreSQL refuses, failing the shared transaction
		}
		wg.Go(func() { errs[i] = db.RecordCertificate(t.Context(), c) })
	}
	for db.QueuedCertificates() != n {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if got := db.CertificateBatches() - before; got != 2 {
		t.Errorf("%d batches for %d certificates, want 2 (the first, and the rest together)", got, n+1)
	}
	for i, err := range errs {
		switch {
		case i == 5:
			if !errors.Is(err, store.ErrDuplicate) {
				t.Errorf("duplicate serial: %v, want store.ErrDuplicate", err)
			}
		case i == 9:
			if !errors.Is(err, ca.ErrGrantEnded) {
				t.Errorf("ended grant: %v, want ca.ErrGrantEnded", err)
			}
		case i == 13:
			if err == nil || errors.Is(err, store.ErrUnavailable) {
				t.Errorf("a row PostgreSQL refuses: %v, want its own error, not ErrUnavailable", err)
			}
		case err != nil:
			t.Errorf("certificate %d: %v", i, err)
		}
	}
	res, err := db.Verify(t.Context())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if want := int64(1 + n - 3 + 1); res.Certificates != want || res.Rows != 2+want {
		t.Errorf("Verify: %d certificates, %d rows; want %d certificates, %d rows", res.Certificates, res.Rows, want, 2+want)
	}
}
