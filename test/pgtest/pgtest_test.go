package pgtest_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/jit-ssh/jit-ssh/test/pgtest"
)

// TestStart: the server accepts a password login over TCP, runs with
// fsync and synchronous_commit on, serves a fresh database, and is back
// with its data after a restart.
func TestStart(t *testing.T) {
	s := pgtest.Start(t)
	dsn := s.NewDatabase(t)
	ctx := t.Context()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, setting := range []string{"fsync", "synchronous_commit"} {
		var v string
		if err := c.QueryRow(ctx, "SHOW "+setting).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != "on" {
			t.Errorf("%s = %q, want on", setting, v)
		}
	}
	if _, err := c.Exec(ctx, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	if c, err := pgx.Connect(ctx, strings.Replace(dsn, s.Password, "wrong", 1)); err == nil {
		c.Close(ctx)
		t.Error("connected with a wrong password")
	}
	s.Restart(t)
	c, err = pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var x int
	if err := c.QueryRow(ctx, "SELECT x FROM t").Scan(&x); err != nil || x != 42 {
		t.Fatalf("after restart: x = %d, %v; want 42", x, err)
	}
}
