package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/jit-ssh/jit-ssh/agent"
	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/hostconfig"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// startDevServer runs the real `jit-ssh serve --dev` in this process on a
// free port and returns its URL once it is healthy.
func startDevServer(t *testing.T) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--dev", "--listen", addr, "--data-dir", filepath.Join(t.TempDir(), "data")}, nil, io.Discard, io.Discard)
	}()
	t.Cleanup(func() { cancel(); <-done })
	url := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		select {
		case code := <-done:
			t.Fatalf("jit-ssh serve --dev exited with %d at start", code)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("jit-ssh serve --dev did not become healthy")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// loginStaging gets alice a real staging certificate from the server and
// loads it into the agent at sock, as `jit-ssh login staging` does.
func loginStaging(t *testing.T, url, sock string) {
	t.Helper()
	c, err := api.NewClient(url, "dev-alice")
	if err != nil {
		t.Fatal(err)
	}
	req, err := c.CreateRequest(t.Context(), api.CreateRequest{HostGroup: "staging", Duration: "30m", Reason: "doctor test"})
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := agent.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := c.IssueCertificate(t.Context(), req.ID, string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(pub))))
	if err != nil {
		t.Fatal(err)
	}
	parsed, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rec.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := agent.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	if err := keys.Load("staging", priv, parsed.(*ssh.Certificate)); err != nil {
		t.Fatal(err)
	}
}

// addToAgent adds a key to the agent at sock, with a certificate signed by
// a throwaway CA when validBefore is not zero; the agent keeps it until it
// is removed (no lifetime), as a careless tool would.
func addToAgent(t *testing.T, sock, comment string, validBefore time.Time) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := sshagent.AddedKey{PrivateKey: priv, Comment: comment}
	if !validBefore.IsZero() {
		_, caPriv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		caSigner, err := ssh.NewSignerFromKey(caPriv)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ssh.NewPublicKey(priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		cert := &ssh.Certificate{Key: pub, Serial: 7, CertType: ssh.UserCert, KeyId: "old", ValidPrincipals: []string{"staging"},
			ValidAfter: uint64(validBefore.Add(-time.Hour).Unix()), ValidBefore: uint64(validBefore.Unix())} //nolint:gosec // test times are after 1970
		if err := cert.SignCert(rand.Reader, caSigner); err != nil {
			t.Fatal(err)
		}
		key.Certificate = cert
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sshagent.NewClient(conn).Add(key); err != nil {
		t.Fatal(err)
	}
}

func TestDoctorEngineer(t *testing.T) {
	url := startDevServer(t)
	allChecks := []string{"agent", "certs", "stray-certs", "server", "clock", "token"}
	tests := []struct {
		name       string
		breakIt    func(t *testing.T, c *engineerChecks)
		wantCheck  string // "": every check passes
		wantStatus hostconfig.Status
		wantMsg    string
		wantFix    string
	}{
		{name: "correct set-up", breakIt: func(*testing.T, *engineerChecks) {}},
		{
			name:      "SSH_AUTH_SOCK unset",
			breakIt:   func(_ *testing.T, c *engineerChecks) { c.sock = "" },
			wantCheck: "agent", wantStatus: hostconfig.StatusFail, wantMsg: "SSH_AUTH_SOCK is not set", wantFix: "ssh-agent",
		},
		{
			name:      "agent not running",
			breakIt:   func(t *testing.T, c *engineerChecks) { c.sock = filepath.Join(t.TempDir(), "gone.sock") },
			wantCheck: "agent", wantStatus: hostconfig.StatusFail, wantMsg: "cannot reach ssh-agent", wantFix: "ssh-agent",
		},
		{
			name: "expired jit-ssh certificate left in the agent",
			breakIt: func(t *testing.T, c *engineerChecks) {
				addToAgent(t, c.sock, agent.Comment("prod-db", 7), time.Now().Add(-10*time.Minute))
			},
			wantCheck: "stray-certs", wantStatus: hostconfig.StatusWarn, wantMsg: "expired jit-ssh certificate for prod-db", wantFix: "jit-ssh logout prod-db",
		},
		{
			name: "someone else's expired certificate in the agent",
			breakIt: func(t *testing.T, c *engineerChecks) {
				addToAgent(t, c.sock, "old-vault-cert", time.Now().Add(-time.Hour))
			},
			wantCheck: "stray-certs", wantStatus: hostconfig.StatusWarn, wantMsg: `"old-vault-cert"`, wantFix: "ssh-add -d",
		},
		{
			name: "certificate about to expire",
			breakIt: func(t *testing.T, c *engineerChecks) {
				addToAgent(t, c.sock, agent.Comment("prod-db", 7), time.Now().Add(40*time.Second))
			},
			wantCheck: "certs", wantStatus: hostconfig.StatusWarn, wantMsg: "prod-db certificate (serial 7) expires in", wantFix: "jit-ssh login prod-db",
		},
		{
			name: "too many keys in the agent",
			breakIt: func(t *testing.T, c *engineerChecks) {
				for i := range 6 {
					addToAgent(t, c.sock, fmt.Sprintf("key-%d", i), time.Time{})
				}
			},
			wantCheck: "agent-keys", wantStatus: hostconfig.StatusWarn, wantMsg: "MaxAuthTries", wantFix: "IdentitiesOnly",
		},
		{
			name: "clock far ahead",
			breakIt: func(_ *testing.T, c *engineerChecks) {
				c.now = func() time.Time { return time.Now().Add(10 * time.Minute) }
			},
			wantCheck: "clock", wantStatus: hostconfig.StatusFail, wantMsg: "ahead of the server's", wantFix: "timedatectl",
		},
		{
			name: "clock a little behind",
			breakIt: func(_ *testing.T, c *engineerChecks) {
				c.now = func() time.Time { return time.Now().Add(-45 * time.Second) }
			},
			wantCheck: "clock", wantStatus: hostconfig.StatusWarn, wantMsg: "behind the server's", wantFix: "timedatectl",
		},
		{
			name: "server down",
			breakIt: func(t *testing.T, c *engineerChecks) {
				c.server = fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
			},
			wantCheck: "server", wantStatus: hostconfig.StatusFail, wantMsg: "cannot reach the jit-ssh server", wantFix: "JIT_SSH_SERVER",
		},
		{
			name: "not a jit-ssh server",
			breakIt: func(t *testing.T, c *engineerChecks) {
				other := httptest.NewServer(http.NotFoundHandler())
				t.Cleanup(other.Close)
				c.server = other.URL
			},
			wantCheck: "server", wantStatus: hostconfig.StatusFail, wantMsg: "is it a jit-ssh server?", wantFix: "JIT_SSH_SERVER",
		},
		{
			name:      "token refused",
			breakIt:   func(_ *testing.T, c *engineerChecks) { c.token = "dev-mallory" },
			wantCheck: "token", wantStatus: hostconfig.StatusFail, wantMsg: "did not accept your token", wantFix: "jit-ssh auth login",
		},
		{
			name:      "no token",
			breakIt:   func(_ *testing.T, c *engineerChecks) { c.token = "" },
			wantCheck: "token", wantStatus: hostconfig.StatusFail, wantMsg: "no token", wantFix: "JIT_SSH_TOKEN",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := testenv.StartAgent(t)
			loginStaging(t, url, sock)
			c := &engineerChecks{sock: sock, server: url, token: "dev-alice"}
			tt.breakIt(t, c)
			findings := c.run(t.Context())
			var checks []string
			found := false
			for _, f := range findings {
				t.Logf("%-4s %-12s %s (fix: %s)", f.Status, f.Check, f.Message, f.Fix)
				checks = append(checks, f.Check)
				if f.Status != hostconfig.StatusOK && f.Fix == "" {
					t.Errorf("finding %+v says nothing about how to fix it", f)
				}
				if tt.wantCheck == "" && f.Status != hostconfig.StatusOK {
					t.Errorf("correct set-up: %s: %s %s", f.Check, f.Status, f.Message)
				}
				if f.Check == tt.wantCheck && f.Status == tt.wantStatus && strings.Contains(f.Message, tt.wantMsg) && strings.Contains(f.Fix, tt.wantFix) {
					found = true
				}
			}
			if tt.wantCheck != "" && !found {
				t.Errorf("no %s %s finding saying %q with a fix mentioning %q", tt.wantStatus, tt.wantCheck, tt.wantMsg, tt.wantFix)
			}
			if tt.wantCheck == "" {
				for _, want := range allChecks {
					if !slices.Contains(checks, want) {
						t.Errorf("correct set-up: check %s did not run (ran %v)", want, checks)
					}
				}
				if !slices.ContainsFunc(findings, func(f finding) bool {
					return f.Check == "certs" && strings.Contains(f.Message, "staging certificate")
				}) {
					t.Errorf("the staging certificate in the agent is not reported")
				}
			}
		})
	}
}

func TestPrintFindings(t *testing.T) {
	findings := []finding{
		{Check: "agent", Status: hostconfig.StatusOK, Message: "fine"},
		{Check: "clock", Status: hostconfig.StatusWarn, Message: "a bit off", Fix: "sync it"},
		{Check: "krl-fresh", Status: hostconfig.StatusFail, Message: "stale", Fix: "run host sync"},
	}
	var out bytes.Buffer
	e := &env{stdout: &out, output: "table"}
	if err := printFindings(e, findings); err == nil || exitCode(err) != exitError {
		t.Errorf("printFindings with a failure = %v, want an error (exit 1)", err)
	}
	for _, want := range []string{"ok    agent", "warn  clock", "FAIL  krl-fresh", "fix: run host sync", "3 check(s): 1 failed, 1 warning(s)."} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	e.output = "json"
	if err := printFindings(e, findings[:2]); err != nil {
		t.Errorf("printFindings with only a warning = %v, want nil", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || lines[1] != `{"check":"clock","status":"warn","message":"a bit off","fix":"sync it"}` {
		t.Errorf("json output = %q, want one object per finding", out.String())
	}
}
