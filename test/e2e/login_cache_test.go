package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// TestLoginRemembersGrant: after a first login, `jit-ssh login GROUP` goes
// straight to the certificate with the grant it remembered (one round trip
// instead of two), from a 0600 cache file; once the grant is revoked the
// server refuses it, login forgets it and files a new request, and no
// certificate comes out of the remembered grant.
func TestLoginRemembersGrant(t *testing.T) {
	srv := startWithConfig(t, revokeConfig)
	sock := testenv.StartAgent(t)
	alice, bob := srv.as(t, "alice", sock), srv.as(t, "bob", "")
	reqID, _ := grantAndLogin(t, alice, bob, "prod-db")

	cache := filepath.Join(alice.home, ".cache", "jit-ssh", "grants.json")
	fi, err := os.Stat(cache)
	if err != nil {
		t.Fatalf("no grant cache after the first login: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("grant cache mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	var grants []map[string]any
	if err := json.Unmarshal(b, &grants); err != nil || !strings.Contains(string(b), reqID) || strings.Contains(string(b), alice.token) {
		t.Fatalf("grant cache %s = %s (%v); want the grant %s and no token", cache, b, err, reqID)
	}

	r := alice.ok("login", "prod-db")
	if !strings.Contains(r.Stderr, "Using your open grant "+reqID+" for prod-db (remembered") {
		t.Errorf("second login did not use the remembered grant; stderr:\n%s", r.Stderr)
	}
	if n := len(auditCerts(t, srv, "--user", "alice")); n != 2 {
		t.Errorf("alice has %d certificates after two logins, want 2", n)
	}

	bob.ok("revoke", "--request", reqID, "--reason", "e2e: grant revoked")
	r = alice.ok("login", "prod-db", "--no-wait", "--reason", "again")
	if !strings.Contains(r.Stderr, "Grant "+reqID+" cannot be used any more") || !strings.Contains(r.Stderr, "Requested prod-db") {
		t.Errorf("login after the grant was revoked: stderr\n%s\nwant the remembered grant refused and a new request filed", r.Stderr)
	}
	if n := len(auditCerts(t, srv, "--user", "alice")); n != 2 {
		t.Errorf("alice has %d certificates after the revoked grant's login, want still 2", n)
	}
	if b, err := os.ReadFile(cache); err != nil || strings.Contains(string(b), reqID) {
		t.Errorf("grant cache still names the revoked grant %s: %s (%v)", reqID, b, err)
	}

	// The server's /metrics (no token, like /healthz) counted the same.
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\njit_ssh_certificates_issued_total{host_group=\"prod-db\"} 2\n",
		"\njit_ssh_certificate_refusals_total{code=\"grant_ended\"} 1\n",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("GET /metrics has no line %q:\n%s", strings.TrimSpace(want), body)
		}
	}
}
