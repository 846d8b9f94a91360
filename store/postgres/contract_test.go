package postgres_test

import (
	"testing"

	"github.com/jit-ssh/jit-ssh/store"
	"github.com/jit-ssh/jit-ssh/store/postgres"
	"github.com/jit-ssh/jit-ssh/store/storetest"
	"github.com/jit-ssh/jit-ssh/test/pgtest"
)

// TestContract runs the ledger contract suite against a real PostgreSQL
// (test/pgtest), a new database for each test.
func TestContract(t *testing.T) {
	srv := pgtest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Ledger {
		db, err := postgres.Open(t.Context(), srv.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
