package sqlite_test

import (
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
	"github.com/jit-ssh/jit-ssh/store/storetest"
)

// TestContract runs the ledger contract suite against a real SQLite file
// in t.TempDir().
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Ledger {
		db, _ := openDB(t)
		return db
	})
}

// The contract suite's fixtures, shared by the SQLite-specific tests.
var (
	newRequest = storetest.NewRequest
	create     = storetest.Create
	certFor    = storetest.CertFor
)

// TestSerialStoredBitForBit: a uint64 serial is stored in SQLite's int64
// column bit for bit (2^63 as -2^63), in the certificate.issued event too.
func TestSerialStoredBitForBit(t *testing.T) {
	db, path := openDB(t)
	r := newRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0)
	create(t, db, r)
	if err := db.RecordCertificate(t.Context(), certFor(1<<63, "alice", "prod-db", r.ID, t0, 5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	var serial int64
	if err := rawDB(t, path).QueryRow(`SELECT serial FROM events WHERE type = ? AND serial = ?`, ca.EventCertIssued, int64(-1<<63)).Scan(&serial); err != nil {
		t.Errorf("no %s event with serial 2^63 (stored bit-for-bit as %d): %v", ca.EventCertIssued, int64(-1<<63), err)
	}
}
