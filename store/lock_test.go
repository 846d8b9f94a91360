package store_test

import (
	"errors"
	"testing"

	"github.com/jit-ssh/jit-ssh/store"
)

// TestOneWriterPerLedger: the store keeps the chain's head, the next event
// id and a request cache in memory, so a second writer on the same ledger
// is refused while the first has it open; a read-only open (audit verify
// --ledger) is not, and the ledger is free again after Close.
func TestOneWriterPerLedger(t *testing.T) {
	ctx := t.Context()
	db, path := openDB(t)
	if second, err := store.Open(ctx, path); !errors.Is(err, store.ErrInUse) {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second Open of a ledger in use = %v, want store.ErrInUse", err)
	}
	ro, err := store.OpenReadOnly(ctx, path)
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
	again, err := store.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after the first writer closed: %v", err)
	}
	again.Close()
}
