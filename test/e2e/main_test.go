package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// TestMain skips the whole suite under -short (make test-short promises
// unit tests only): every test here runs the built binary against real
// OpenSSH, SQLite files and, with JIT_SSH_VAULT_BIN, Vault. make test runs
// it, and there (CI=true) a missing OpenSSH binary still fails.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: end-to-end suite skipped under -short (make test runs it)")
		os.Exit(0)
	}
	os.Exit(m.Run())
}
