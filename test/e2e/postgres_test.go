package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/pgtest"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// pgConfig is a server on a PostgreSQL ledger whose DSN is in
// JIT_PG_LEDGER_URL.
const pgConfig = `
listen: 127.0.0.1:0
data_dir: %DATA%
signer: {type: file}
ledger:
  type: postgres
  postgres: {dsn_env: JIT_PG_LEDGER_URL, max_conns: 4}
identity:
  type: static
  static:
    users:
      alice: {token: dev-alice, teams: [backend]}
      bob:   {token: dev-bob,   teams: [sre-leads]}
      carol: {token: dev-carol, teams: [security]}
auditors: [security]
host_groups:
  prod-db:
    principals: [prod-db]
    requesters: [backend]
    approvers: [sre-leads]
    approvals_required: 1
    max_duration: 1h
    cert_ttl: 5m
    extensions: [permit-pty]
` + testLimits

// TestLoginOnPostgresLedger: the server on a real PostgreSQL ledger
// (test/pgtest): alice's request, bob's approval, the certificate in
// alice's agent, plain ssh into a real sshd; the certificate is in the
// ledger and audit verify passes through the API; with PostgreSQL stopped
// a request is 503 ledger_unavailable and /healthz 503, and once it is
// back the same server works again; audit verify passes offline against
// the database; and the DSN's password is in no log or output.
func TestLoginOnPostgresLedger(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	srv := startWithConfigEnv(t, pgConfig, []string{"JIT_PG_LEDGER_URL=" + dsn})
	sock := testenv.StartAgent(t)
	alice, bob, carol := srv.as(t, "alice", sock), srv.as(t, "bob", ""), srv.as(t, "carol", "")
	host := hostFor(t, alice, "prod-db")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	login := alice.start(ctx, "login", "prod-db", "--reason", "e2e: postgres ledger")
	var pending []api.Request
	waitFor(t, "alice's request to be reviewable by bob", 20*time.Second, func() bool {
		pending = jsonLines[api.Request](t, bob.ok("request", "list", "--reviewable", "-o", "json").Stdout)
		return len(pending) == 1
	})
	bob.ok("review", pending[0].ID, "--approve", "-m", "ok")
	select {
	case err := <-login.done:
		if err != nil {
			t.Fatalf("login failed: %v\nstderr:\n%s", err, login.Stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("login did not finish after the approval\nstderr:\n%s", login.Stderr.String())
	}
	stdout, stderr, err := testenv.SSH(t, sock, host.Port, testenv.Login(t), "echo", "hello-from-prod-db")
	if err != nil || strings.TrimSpace(stdout) != "hello-from-prod-db" {
		t.Fatalf("ssh into prod-db: err=%v stdout=%q stderr=%q\nsshd log:\n%s", err, stdout, stderr, host.Log())
	}
	certs := auditCerts(t, srv)
	if len(certs) != 1 || certs[0].RequestID != pending[0].ID {
		t.Fatalf("audit certs = %+v, want alice's one certificate", certs)
	}
	out := carol.ok("audit", "verify").Stdout
	if !strings.Contains(out, "Ledger verified") {
		t.Errorf("audit verify through the API:\n%s", out)
	}

	// PostgreSQL down: no decision, no certificate, a 503 saying why;
	// back up: the same server works again by itself.
	client, err := api.NewClient(srv.URL, "dev-alice")
	if err != nil {
		t.Fatal(err)
	}
	pg.Stop()
	_, err = client.CreateRequest(ctx, api.CreateRequest{HostGroup: "prod-db", Reason: "e2e: while the database is down"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != "ledger_unavailable" {
		t.Errorf("a request with PostgreSQL down = %v, want 503 ledger_unavailable", err)
	}
	if resp, err := http.Get(srv.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/healthz with PostgreSQL down = %v, %v; want 503", resp, err)
	} else {
		resp.Body.Close()
	}
	pg.Restart(t)
	if _, err := client.CreateRequest(ctx, api.CreateRequest{HostGroup: "prod-db", Reason: "e2e: the database is back"}); err != nil {
		t.Errorf("a request once PostgreSQL is back = %v", err)
	}

	srv.Stop(t)
	offline := carol.ok("audit", "verify", "--ledger", dsn).Stdout
	if !strings.Contains(offline, "Ledger verified") || !strings.Contains(offline, "2 requests") || !strings.Contains(offline, "1 certificates") {
		t.Errorf("audit verify --ledger postgres://...:\n%s", offline)
	}
	if strings.Contains(srv.Log(), pg.Password) || strings.Contains(offline, pg.Password) {
		t.Errorf("the DSN's password is in the server log or the verify output")
	}
}

// TestServeRefusesMissingOrUnreachablePostgres: serve on a PostgreSQL
// ledger whose DSN variable is unset stops at once naming the variable;
// one whose database cannot be reached stops saying the ledger is
// unavailable, naming the database without the DSN's password.
func TestServeRefusesMissingOrUnreachablePostgres(t *testing.T) {
	bin := jitBinary(t)
	dir := testenv.TempDir(t)
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(pgConfig, "%DATA%", filepath.Join(dir, "data"))), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(env ...string) string {
		t.Helper()
		cmd := exec.Command(bin, "serve", "--config", cfg, "--listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)))
		cmd.Env = append(append(os.Environ(), "HOME="+dir), env...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("serve started with %v:\n%s", env, out)
		}
		return string(out)
	}
	if out := run(); !strings.Contains(out, "JIT_PG_LEDGER_URL is empty or unset") {
		t.Errorf("serve without the DSN variable:\n%s", out)
	}
	out := run("JIT_PG_LEDGER_URL=postgres://jit:hunter2-secret@127.0.0.1:1/jit?sslmode=disable&connect_timeout=5")
	if !strings.Contains(out, "ledger unavailable") || !strings.Contains(out, "jit@127.0.0.1:1/jit") || strings.Contains(out, "hunter2-secret") {
		t.Errorf("serve with an unreachable database (want 'ledger unavailable', the database named, no password):\n%s", out)
	}
}
