package sqlite_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/jit-ssh/jit-ssh/store"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// TestOneWriterPerLedger: the store keeps the chain's head, the next event
// id and a request cache in memory, so a second writer on the same ledger
// is refused while the first has it open; a read-only open (audit verify
// --ledger) is not, and the ledger is free again after Close.
func TestOneWriterPerLedger(t *testing.T) {
	ctx := t.Context()
	db, path := openDB(t)
	if second, err := sqlite.Open(ctx, path); !errors.Is(err, store.ErrInUse) {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second Open of a ledger in use = %v, want store.ErrInUse", err)
	}
	ro, err := sqlite.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatalf("OpenReadOnly while the writer has the ledger: %v", err)
	}
	if _, err := ro.Verify(ctx); err != nil {
		t.Errorf("Verify through the read-only open: %v", err)
	}
	ro.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after the first writer closed: %v", err)
	}
	again.Close()
}

// TestFailedOpenReleasesTheLock: an Open that fails after taking the
// writer's lock (here: the file is not a SQLite database, so the migration
// fails) releases it, so the same process can try again once the cause is
// fixed instead of being told the ledger is in use.
func TestFailedOpenReleasesTheLock(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ledger.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a ledger "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	if db, err := sqlite.Open(ctx, path); err == nil {
		db.Close()
		t.Fatal("Open of a file that is not a ledger succeeded")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after a failed Open in the same process: %v (the failed one kept the lock)", err)
	}
	db.Close()
}
