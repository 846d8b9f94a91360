package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/store/postgres"
)

// TestLedgerConfig: the ledger block of SPEC section 4b, its defaults
// (from the packages that own them) and its strict validation.
func TestLedgerConfig(t *testing.T) {
	c, _, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.Ledger.Type != LedgerSQLite || c.Ledger.Postgres != nil {
		t.Errorf("no ledger block: %+v, want type sqlite", c.Ledger)
	}
	c, _, err = Parse([]byte(base + "ledger: {type: postgres}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pg := c.Ledger.Postgres; c.Ledger.Type != LedgerPostgres || pg == nil || pg.DSNEnv != DefaultPostgresDSNEnv || pg.MaxConns != postgres.DefaultMaxConns {
		t.Errorf("ledger {type: postgres}: %+v %+v, want dsn_env %s and max_conns %d", c.Ledger, pg, DefaultPostgresDSNEnv, postgres.DefaultMaxConns)
	}
	c, _, err = Parse([]byte(base + "ledger: {type: postgres, postgres: {dsn_env: LEDGER_URL, max_conns: 4}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pg := c.Ledger.Postgres; pg.DSNEnv != "LEDGER_URL" || pg.MaxConns != 4 {
		t.Errorf("written values: %+v", pg)
	}
	for _, tt := range []struct{ block, path, mention string }{
		{"ledger: {type: mysql}", "ledger.type", "mysql"},
		{"ledger: {type: sqlite, postgres: {max_conns: 4}}", "ledger.postgres", "only with"},
		{"ledger: {type: postgres, postgres: {dsn_env: 'not a name'}}", "ledger.postgres.dsn_env", "not a name"},
		{"ledger: {type: postgres, postgres: {max_conns: -1}}", "ledger.postgres.max_conns", "between"},
		{"ledger: {type: postgres, postgres: {max_conns: 5000}}", "ledger.postgres.max_conns", "between"},
		{"ledger: {type: postgres, postgres: {dsn: 'postgres://x'}}", "ledger.postgres.dsn", "unknown key"},
		{"ledger: {type: postgres, pool: 3}", "ledger.pool", "unknown key"},
	} {
		_, _, err := Parse([]byte(base + tt.block + "\n"))
		if err == nil {
			t.Errorf("%s: accepted", tt.block)
			continue
		}
		if p := problemAt(problems(t, err), tt.path); !strings.Contains(p, tt.mention) {
			t.Errorf("%s: problems %v, want one at %s mentioning %q", tt.block, err, tt.path, tt.mention)
		}
	}
}

func TestPostgresDSN(t *testing.T) {
	p := &PostgresLedger{DSNEnv: "JIT_TEST_DSN"}
	env := map[string]string{"JIT_TEST_DSN": " postgres://jit@db/jit \n"}
	if dsn, err := p.DSN(func(k string) string { return env[k] }); err != nil || dsn != "postgres://jit@db/jit" {
		t.Errorf("DSN = %q, %v; want the trimmed value", dsn, err)
	}
	_, err := p.DSN(func(string) string { return "" })
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || !strings.HasPrefix(ce.Problems[0], "ledger.postgres.dsn_env: the environment variable JIT_TEST_DSN is empty or unset") {
		t.Errorf("unset DSN: %v", err)
	}
}
