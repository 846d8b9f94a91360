package sqlite_test

import (
	"os"
	"testing"
	"time"
)

// TestWALStaysBounded: the writer does not checkpoint the write-ahead log
// itself (a checkpoint inside a group commit would hold every certificate
// in it); the background checkpointer must, or the WAL grows with every
// commit. 1500 commits of about ten 4 KiB pages each would leave a WAL of
// some 60 MB.
func TestWALStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short (make test runs it): writes 1500 certificates to watch the WAL")
	}
	db, path := openDB(t)
	r := newRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", "approved", t0)
	create(t, db, r)
	var largest int64
	for i := range 1500 {
		if err := db.RecordCertificate(t.Context(), certFor(uint64(i)+1, "alice", "prod-db", r.ID, t0.Add(time.Duration(i)*time.Second), time.Minute)); err != nil {
			t.Fatalf("certificate %d: %v", i, err)
		}
		if fi, err := os.Stat(path + "-wal"); err == nil {
			largest = max(largest, fi.Size())
		}
	}
	t.Logf("largest WAL over 1500 commits: %d KiB", largest>>10)
	if largest > 16<<20 {
		t.Errorf("WAL grew to %d MiB over 1500 commits: nothing checkpoints it", largest>>20)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() != 0 {
		t.Errorf("WAL holds %d bytes after Close, want it copied into the ledger and truncated", fi.Size())
	}
	var n int
	if err := rawDB(t, path).QueryRow(`SELECT count(*) FROM certificates`).Scan(&n); err != nil || n != 1500 {
		t.Errorf("certificates after reopening = %d, %v; want 1500", n, err)
	}
}
