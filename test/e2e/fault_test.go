package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/ghstub"
	"github.com/jit-ssh/jit-ssh/test/testenv"
	"github.com/jit-ssh/jit-ssh/test/vaulttest"
)

// The fault tests break one real dependency of a running `jit-ssh serve`
// at a time (Vault, GitHub, the ledger's disk) and check the same three
// things each time: no certificate leaves the server or lands in the ledger
// during the fault, the client gets a 503 whose code and message name the
// dependency, and issuance resumes by itself once the dependency is back,
// with the same server process.

// faultKey returns a fresh ed25519 public key in authorized_keys form.
func faultKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
}

// faultClient returns an API client for login's token on s.
func faultClient(t *testing.T, s *server, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(s.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// faultGrant opens an auto-approved staging grant for the client's user.
func faultGrant(t *testing.T, c *api.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := c.CreateRequest(ctx, api.CreateRequest{HostGroup: "staging", Duration: "1h", Reason: "fault test"})
	if err != nil {
		t.Fatalf("creating a staging request: %v", err)
	}
	if req.State != "approved" {
		t.Fatalf("staging request is %s, want approved", req.State)
	}
	return req.ID
}

// faultIssue asks for one certificate.
func faultIssue(c *api.Client, reqID, pub string) (*api.Certificate, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	return c.IssueCertificate(ctx, reqID, pub)
}

// want503 checks that err is the server's 503 with code and a message
// naming the dependency (every word in words, case-insensitively).
func want503(t *testing.T, what string, cert *api.Certificate, err error, code string, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got certificate %s, want a 503", what, cert.Serial)
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		t.Fatalf("%s: %v, want a 503 answer from the server", what, err)
	}
	if ae.Status != 503 || ae.Code != code {
		t.Fatalf("%s: status %d code %q (%s), want 503 %q", what, ae.Status, ae.Code, ae.Message, code)
	}
	for _, w := range words {
		if !strings.Contains(strings.ToLower(ae.Message), strings.ToLower(w)) {
			t.Fatalf("%s: message %q does not mention %q", what, ae.Message, w)
		}
	}
	t.Logf("%s: 503 %s: %s", what, ae.Code, ae.Message)
}

// waitIssued polls until a certificate is issued again, without touching
// the server: the dependency is back, so service must resume by itself.
func waitIssued(t *testing.T, what string, c *api.Client, reqID string) *api.Certificate {
	t.Helper()
	var cert *api.Certificate
	tries := 0
	start := time.Now()
	waitFor(t, what+": issuance to resume", 60*time.Second, func() bool {
		var err error
		tries++
		cert, err = faultIssue(c, reqID, faultKey(t))
		return err == nil
	})
	t.Logf("%s: issuance resumed %s after the dependency returned (attempt %d)", what, time.Since(start).Round(time.Millisecond), tries)
	return cert
}

// noCertsBetween fails if the ledger holds a certificate issued in
// [from, to] that is not an allowed extra serial, or one that is not in
// known plus the extras.
func noCertsBetween(t *testing.T, s *server, what string, from, to time.Time, known map[string]bool, extra ...string) {
	t.Helper()
	allowed := map[string]bool{}
	for _, e := range extra {
		allowed[e] = true
	}
	for _, c := range auditCerts(t, s) {
		if !c.IssuedAt.Before(from) && !c.IssuedAt.After(to) && !allowed[c.Serial] {
			t.Errorf("%s: certificate %s was issued during the fault (%s)", what, c.Serial, c.IssuedAt)
		}
		if !known[c.Serial] && !allowed[c.Serial] {
			t.Errorf("%s: unexpected certificate %s issued at %s", what, c.Serial, c.IssuedAt)
		}
	}
}

// ledgerSerials returns the serials the ledger holds now.
func ledgerSerials(t *testing.T, s *server) map[string]bool {
	t.Helper()
	m := map[string]bool{}
	for _, c := range auditCerts(t, s) {
		m[c.Serial] = true
	}
	return m
}

// faultAlive fails unless the server process that started the test is
// still running: recovery must not need a restart.
func faultAlive(t *testing.T, s *server, pid int, what string) {
	t.Helper()
	if s.cmd.Process.Pid != pid || syscall.Kill(pid, 0) != nil {
		t.Fatalf("%s: the jit-ssh server (pid %d) is no longer running", what, pid)
	}
}

// agentKeys counts the keys in the agent at sock.
func agentKeys(t *testing.T, sock string) int {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	keys, err := agent.NewClient(conn).List()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// cliLoginFails runs `jit-ssh login staging` during a fault and checks it
// fails with a message naming the dependency and leaves the agent empty.
func cliLoginFails(t *testing.T, u *user, what string, words ...string) {
	t.Helper()
	r := u.run("login", "staging", "--duration", "1h", "--reason", "fault test", "--timeout", "40s")
	if r.Code == 0 {
		t.Fatalf("%s: jit-ssh login succeeded during the fault:\n%s", what, r.Stdout)
	}
	for _, w := range words {
		if !strings.Contains(strings.ToLower(r.Stderr), strings.ToLower(w)) {
			t.Errorf("%s: login's error %q does not mention %q", what, strings.TrimSpace(r.Stderr), w)
		}
	}
	if n := agentKeys(t, u.sock); n != 0 {
		t.Errorf("%s: the agent holds %d keys after a failed login, want 0", what, n)
	}
	t.Logf("%s: jit-ssh login exit %d: %s", what, r.Code, strings.TrimSpace(r.Stderr))
}

const faultStaticUsers = `
identity:
  type: static
  static:
    users:
      alice: {token: dev-alice, teams: [backend]}
      carol: {token: dev-carol, teams: [security]}
`

// faultGroups also turns the per-login rate limits off: these tests issue
// faster than a person would, and the limits have tests of their own.
const faultGroups = `
limits:
  requests: {per_minute: 0}
  certificates: {per_minute: 0}
  writes: {per_minute: 0}
auditors: [security]
host_groups:
  staging:
    principals: [staging]
    requesters: [backend]
    approvals_required: 0
    max_duration: 1h
    cert_ttl: 5m
    extensions: [permit-pty]
`

// TestFaultVault: Vault sealed, hung (SIGSTOP, with a 2s signer timeout)
// and stopped. The server keeps running throughout.
func TestFaultVault(t *testing.T) {
	v := vaulttest.Start(t)
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.Token)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %%DATA%%
signer:
  type: vault
  vault: {mount: ssh, role: jit-ssh, timeout: 2s}
%s%s`, faultStaticUsers, faultGroups)
	vaultSetup := func() {
		t.Helper()
		path := filepath.Join(testenv.TempDir(t), "config.yaml")
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(cfg, "%DATA%", t.TempDir())), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(jitBinary(t), "vault", "setup", "--config", path).CombinedOutput()
		if err != nil {
			t.Fatalf("jit-ssh vault setup: %v\n%s", err, out)
		}
	}
	vaultSetup()
	srv := startWithConfig(t, cfg)
	pid := srv.cmd.Process.Pid
	alice := faultClient(t, srv, "dev-alice")
	reqID := faultGrant(t, alice)
	if _, err := faultIssue(alice, reqID, faultKey(t)); err != nil {
		t.Fatalf("issuing before any fault: %v", err)
	}
	sock := testenv.StartAgent(t)
	cli := srv.as(t, "alice", sock)

	cases := []struct {
		name    string
		words   []string
		fault   func()
		restore func()
	}{
		{"sealed", []string{"vault", "sealed"}, v.Seal, v.Unseal},
		{"hung", []string{"vault", "timed out"}, v.Pause, v.Resume},
		// Dev-mode Vault keeps everything in memory, so a restarted one is
		// empty; the operator runs vault setup again (a new CA key), and
		// jit-ssh picks the new key up without a restart.
		{"stopped", []string{"vault", "unreachable"}, v.Stop, func() { v.Restart(); vaultSetup() }},
	}
	survived := 0
	for _, tc := range cases {
		known := ledgerSerials(t, srv)
		from := time.Now()
		tc.fault()
		for i := range 2 {
			cert, err := faultIssue(alice, reqID, faultKey(t))
			want503(t, fmt.Sprintf("vault %s, attempt %d", tc.name, i+1), cert, err, "signer_unavailable", tc.words...)
		}
		cliLoginFails(t, cli, "vault "+tc.name, tc.words...)
		to := time.Now()
		tc.restore()
		cert := waitIssued(t, "vault "+tc.name, alice, reqID)
		noCertsBetween(t, srv, "vault "+tc.name, from, to, known, cert.Serial)
		faultAlive(t, srv, pid, "vault "+tc.name)
		survived++
	}
	// The CLI works again too, and its certificate reaches the agent.
	cli.ok("login", "staging", "--duration", "1h", "--reason", "fault test")
	if n := agentKeys(t, sock); n == 0 {
		t.Error("the agent is empty after a successful login")
	}
	t.Logf("vault faults survived: %d of %d", survived, len(cases))
}

// TestFaultGitHub: the GitHub stand-in answers 500, hangs, or rate-limits
// (primary 403 and 429, secondary). Identity answers are not cached
// (cache_ttl: 0s), so every call reaches GitHub.
func TestFaultGitHub(t *testing.T) {
	gh := ghstub.New(t)
	gh.AddUser("alice", "gho_alicefaulttoken0000000000000000000")
	gh.AddUser("carol", "gho_carolfaulttoken0000000000000000000")
	gh.AddUser("jit-ssh-bot", "ghs_serverfaulttoken000000000000000000") // the server's own token
	gh.SetTeam("acme", "backend", "alice")
	gh.SetTeam("acme", "security", "carol")
	gh.SetHangLimit(20 * time.Second)
	t.Setenv("JIT_SSH_FAULT_GH_TOKEN", "ghs_serverfaulttoken000000000000000000")
	srv := startWithConfig(t, fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %%DATA%%
signer:
  type: file
  file: {key_file: %%DATA%%/ca_ed25519}
identity:
  type: github
  github: {api_url: %q, org: acme, token_env: JIT_SSH_FAULT_GH_TOKEN, cache_ttl: 0s}
%s`, gh.APIURL(), faultGroups))
	pid := srv.cmd.Process.Pid
	alice := faultClient(t, srv, "gho_alicefaulttoken0000000000000000000")
	reqID := faultGrant(t, alice)
	if _, err := faultIssue(alice, reqID, faultKey(t)); err != nil {
		t.Fatalf("issuing before any fault: %v", err)
	}
	sock := testenv.StartAgent(t)
	cli := srv.as(t, "alice", sock)
	cli.token = "gho_alicefaulttoken0000000000000000000"
	carol := srv.as(t, "carol", "")
	carol.token = "gho_carolfaulttoken0000000000000000000"
	audit := func() []api.Certificate {
		return jsonLines[api.Certificate](t, carol.ok("audit", "certs", "-o", "json").Stdout)
	}

	cases := []struct {
		mode  ghstub.Mode
		words []string
	}{
		{ghstub.Fail500, []string{"github", "500"}},
		{ghstub.FailTimeout, []string{"github", "no answer"}},
		{ghstub.FailRateLimit, []string{"github", "rate limit"}},
		{ghstub.FailRateLimit429, []string{"github", "rate limit"}},
		{ghstub.FailSecondaryRateLimit, []string{"github", "secondary rate limit"}},
	}
	survived := 0
	for _, tc := range cases {
		known := map[string]bool{}
		for _, c := range audit() {
			known[c.Serial] = true
		}
		// A rate limit ends when GitHub says it resets; jit-ssh must not
		// call again before then, and must resume after.
		gh.SetRateLimitReset(2 * time.Second)
		from := time.Now()
		gh.Fail(tc.mode)
		attempts := 2
		if tc.mode == ghstub.FailTimeout {
			attempts = 1 // each waits for the 5s GitHub timeout
		}
		for i := range attempts {
			cert, err := faultIssue(alice, reqID, faultKey(t))
			want503(t, fmt.Sprintf("github %s, attempt %d", tc.mode, i+1), cert, err, "identity_unavailable", tc.words...)
		}
		if tc.mode != ghstub.FailTimeout {
			cliLoginFails(t, cli, "github "+string(tc.mode), tc.words...)
		}
		to := time.Now()
		gh.Fail(ghstub.FailNone)
		cert := waitIssued(t, "github "+string(tc.mode), alice, reqID)
		for _, c := range audit() {
			if !c.IssuedAt.Before(from) && !c.IssuedAt.After(to) {
				t.Errorf("github %s: certificate %s was issued during the fault", tc.mode, c.Serial)
			}
			if !known[c.Serial] && c.Serial != cert.Serial {
				t.Errorf("github %s: unexpected certificate %s", tc.mode, c.Serial)
			}
		}
		faultAlive(t, srv, pid, "github "+string(tc.mode))
		survived++
	}
	t.Logf("github faults survived: %d of %d", survived, len(cases))
}

// TestFaultLedgerReadOnly makes the ledger's files and directory immutable
// under the running server (chattr +i: root ignores file modes, and an open
// descriptor keeps its write access after chmod, but not after +i).
func TestFaultLedgerReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "making an open file read-only under a running process needs chattr +i, which needs root; chmod does not affect open descriptors")
	}
	chattr := testenv.RequireBinary(t, "chattr")
	srv := startDev(t)
	files := []string{srv.DataDir, filepath.Join(srv.DataDir, "ledger.db"), filepath.Join(srv.DataDir, "ledger.db-wal")}
	set := func(flag string) {
		t.Helper()
		for _, f := range files {
			if out, err := exec.Command(chattr, flag, f).CombinedOutput(); err != nil {
				t.Fatalf("chattr %s %s: %v\n%s", flag, f, err, out)
			}
		}
	}
	t.Cleanup(func() {
		for _, f := range files {
			_ = exec.Command(chattr, "-i", f).Run()
		}
	})
	faultLedger(t, srv, "read-only", false, func() { set("+i") }, func() { set("-i") })
}

// TestFaultLedgerFull runs the server with its data dir on a small tmpfs
// and fills it, so SQLite meets a real ENOSPC.
func TestFaultLedgerFull(t *testing.T) {
	mnt := filepath.Join(testenv.TempDir(t), "disk")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=4m,mode=0700"); err != nil {
		testenv.Unavailable(t, "cannot mount a small tmpfs here (%v); a full disk needs a filesystem of its own", err)
	}
	// Registered before the server starts, so it runs after the server stops.
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	srv := startServer(t, "--dev", "--data-dir", mnt)
	srv.DataDir = mnt
	filler := filepath.Join(mnt, "filler")
	fill := func() {
		t.Helper()
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4096)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling the disk: %v", err)
				}
				break
			}
		}
		if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Fatal(err)
		}
	}
	faultLedger(t, srv, "full", true, fill, func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	})
}

// faultLedger breaks the ledger's disk under a running dev server and
// checks that issuance fails closed with ledger_unavailable and resumes.
// walSpace: after the first refusal, commits may still fit into the space
// the WAL file already has (a full disk, unlike a read-only file); each
// certificate that gets through must then be in the ledger.
func faultLedger(t *testing.T, srv *server, what string, walSpace bool, breakIt, restore func()) {
	t.Helper()
	pid := srv.cmd.Process.Pid
	alice := faultClient(t, srv, "dev-alice")
	reqID := faultGrant(t, alice)
	if _, err := faultIssue(alice, reqID, faultKey(t)); err != nil {
		t.Fatalf("issuing before the fault: %v", err)
	}
	known := ledgerSerials(t, srv)
	sock := testenv.StartAgent(t)
	cli := srv.as(t, "alice", sock)

	breakIt()
	// A full disk stops the ledger only once a commit needs a new block:
	// the WAL is checkpointed and reused in place in the background, so a
	// few more certificates may still commit into space the file already
	// has. Each of those must be a normal, recorded certificate; the first
	// refusal must come before the disk-space margin of the WAL runs out.
	var accepted []string
	for i := 0; ; i++ {
		cert, err := faultIssue(alice, reqID, faultKey(t))
		if err != nil {
			want503(t, fmt.Sprintf("ledger %s, first refusal", what), cert, err, "ledger_unavailable", "ledger", "no certificate")
			break
		}
		if i >= 2000 {
			t.Fatalf("ledger %s: %d certificates issued after the fault, want a 503 by now", what, i+1)
		}
		accepted = append(accepted, cert.Serial)
	}
	if len(accepted) > 0 {
		t.Logf("ledger %s: %d certificates still committed into space the ledger already had", what, len(accepted))
	}
	from := time.Now()
	refusals := 0
	for i := range 3 {
		cert, err := faultIssue(alice, reqID, faultKey(t))
		if err == nil && walSpace {
			// The background checkpoint restarted the WAL: the next
			// commits fit into the space the WAL file already has. They
			// are ordinary, recorded certificates (checked below).
			accepted = append(accepted, cert.Serial)
			continue
		}
		want503(t, fmt.Sprintf("ledger %s, attempt %d", what, i+1), cert, err, "ledger_unavailable", "ledger", "no certificate")
		refusals++
	}
	if walSpace {
		t.Logf("ledger full: %d of 3 further attempts refused, the others fit into the WAL's space", refusals)
		r := cli.run("login", "staging", "--duration", "1h", "--reason", "fault test", "--timeout", "40s")
		t.Logf("ledger full: login exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
		if m := regexp.MustCompile(`Certificate (\d+) for`).FindStringSubmatch(r.Stdout); r.Code == 0 && m != nil {
			accepted = append(accepted, m[1])
		} else if !strings.Contains(strings.ToLower(r.Stderr), "ledger") {
			t.Errorf("ledger full: login exit %d, error %q does not mention the ledger", r.Code, strings.TrimSpace(r.Stderr))
		}
	} else {
		cliLoginFails(t, cli, "ledger "+what, "ledger")
	}
	to := time.Now()
	// The operator's log says why: the store's error, not just the code.
	logged := false
	for line := range strings.Lines(srv.Log()) {
		if strings.Contains(line, `"code":"ledger_unavailable"`) && strings.Contains(line, "recording certificate") {
			logged = true
			t.Logf("ledger %s: server log: %s", what, strings.TrimSpace(line))
			break
		}
	}
	if !logged {
		t.Errorf("ledger %s: the server log has no ledger_unavailable record naming the failed write:\n%s", what, srv.Log())
	}
	restore()
	cert := waitIssued(t, "ledger "+what, alice, reqID)
	after := ledgerSerials(t, srv)
	for _, serial := range accepted {
		if !after[serial] {
			t.Errorf("ledger %s: certificate %s was handed out after the fault but is not in the ledger", what, serial)
		}
	}
	noCertsBetween(t, srv, "ledger "+what, from, to, known, append(accepted, cert.Serial)...)
	faultAlive(t, srv, pid, "ledger "+what)
	// The chain is intact after the failed writes.
	carol := srv.as(t, "carol", "")
	carol.ok("audit", "verify")
}
