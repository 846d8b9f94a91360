package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/jit-ssh/jit-ssh/agent"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// signedCert returns a fresh key and a user certificate for it, signed by a
// throwaway CA, valid until validBefore.
func signedCert(t *testing.T, serial uint64, validBefore time.Time) (ed25519.PrivateKey, *ssh.Certificate) {
	t.Helper()
	_, caPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := agent.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{
		Key: pub, Serial: serial, CertType: ssh.UserCert, KeyId: "jit-ssh:test", ValidPrincipals: []string{"staging"},
		ValidAfter: uint64(validBefore.Add(-time.Hour).Unix()), ValidBefore: uint64(validBefore.Unix()), //nolint:gosec // positive
	}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		t.Fatal(err)
	}
	return priv, cert
}

// holdsCert is true only for this tool's certificate for the group with
// more than a minute left; the user's own keys and certificates, other
// groups' certificates and a certificate about to end do not count.
func TestHoldsCert(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name  string
		load  func(t *testing.T, a sshagent.Agent, ring *agent.Keyring)
		wantT bool
	}{
		{"empty agent", func(*testing.T, sshagent.Agent, *agent.Keyring) {}, false},
		{"61s left", func(t *testing.T, _ sshagent.Agent, ring *agent.Keyring) {
			loadCert(t, ring, "staging", now.Add(61*time.Second))
		}, true},
		{"exactly a minute left", func(t *testing.T, _ sshagent.Agent, ring *agent.Keyring) {
			loadCert(t, ring, "staging", now.Add(time.Minute))
		}, false},
		{"expired", func(t *testing.T, _ sshagent.Agent, ring *agent.Keyring) {
			loadCert(t, ring, "staging", now.Add(-time.Second))
		}, false},
		{"another group's", func(t *testing.T, _ sshagent.Agent, ring *agent.Keyring) {
			loadCert(t, ring, "staging-eu", now.Add(time.Hour))
			loadCert(t, ring, "prod-db", now.Add(time.Hour))
		}, false},
		{"the user's own certificate", func(t *testing.T, a sshagent.Agent, _ *agent.Keyring) {
			priv, cert := signedCert(t, 1, now.Add(time.Hour))
			if err := a.Add(sshagent.AddedKey{PrivateKey: priv, Certificate: cert, Comment: "staging"}); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := sshagent.NewKeyring()
			ring := agent.New(a, func() time.Time { return now })
			tt.load(t, a, ring)
			got, err := holdsCert(ring, "staging", now)
			if err != nil || got != tt.wantT {
				t.Errorf("holdsCert = %v, %v; want %v", got, err, tt.wantT)
			}
		})
	}
}

func loadCert(t *testing.T, ring *agent.Keyring, group string, validBefore time.Time) {
	t.Helper()
	priv, cert := signedCert(t, 7, validBefore)
	if err := ring.Load(group, priv, cert); err != nil {
		t.Fatal(err)
	}
}

// TestLoginEnsure runs the CLI against a real dev server and a real
// ssh-agent: with nothing in the agent, --ensure logs in and prints only
// on stderr; with the certificate held it prints nothing and reaches no
// server (the address it is given has none); a group it holds nothing for
// still needs the server.
func TestLoginEnsure(t *testing.T) {
	url := startDevServer(t)
	sock := testenv.StartAgent(t)
	t.Setenv("JIT_SSH_SERVER", url)
	t.Setenv("SSH_AUTH_SOCK", sock)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("GITHUB_TOKEN", "")
	t.Setenv("PATH", t.TempDir()) // no gh to ask for a token
	t.Setenv("JIT_SSH_TOKEN", "dev-alice")

	r := runCLI(t, "login", "--ensure", "staging")
	if r.code != exitOK || r.stdout != "" || !strings.Contains(r.stderr, "loaded into ssh-agent") {
		t.Fatalf("login --ensure with an empty agent: exit %d, stdout %q, stderr %q; want 0, nothing on stdout, the login on stderr", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "Now run: ssh") {
		t.Errorf("login --ensure tells the user to run ssh, which runs it: %q", r.stderr)
	}
	keys, err := agent.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	if held, err := holdsCert(keys, "staging", time.Now()); err != nil || !held {
		t.Fatalf("after login --ensure the agent holds no staging certificate (%v)", err)
	}

	t.Setenv("JIT_SSH_SERVER", "http://127.0.0.1:1") // nothing listens
	t.Setenv("JIT_SSH_TOKEN", "")
	if r := runCLI(t, "login", "--ensure", "staging"); r.code != exitOK || r.stdout != "" || r.stderr != "" {
		t.Errorf("login --ensure with the certificate held: exit %d, stdout %q, stderr %q; want 0 and no output without a server", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "login", "--ensure", "prod-db"); r.code == exitOK || r.stdout != "" || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("login --ensure for a group not held, no server: exit %d, stdout %q, stderr %q; want a failure naming the server", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{
		{"login", "--ensure", "Prod DB"},
		{"login", "--ensure", "staging", "--no-wait"},
	} {
		if r := runCLI(t, args...); r.code != exitUsage || r.stdout != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want a usage error", args, r.code, r.stdout, r.stderr)
		}
	}
}

// Two 'login --ensure' at once file one request between them: the second
// waits for the first's lock, then finds the certificate the first loaded
// and returns without a login (its server address has no server).
func TestLoginEnsureWaitsForAnother(t *testing.T) {
	sock := testenv.StartAgent(t)
	t.Setenv("SSH_AUTH_SOCK", sock)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("JIT_SSH_SERVER", "http://127.0.0.1:1") // nothing listens
	t.Setenv("JIT_SSH_TOKEN", "")
	t.Setenv("PATH", t.TempDir())

	// The test plays the first process: it holds the lock...
	first := &loginOptions{group: "staging", timeout: time.Minute, after: time.After}
	var firstErr bytes.Buffer
	release, err := first.lockEnsure(t.Context(), &env{stderr: &firstErr, getenv: os.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	var out, errb lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(t.Context(), []string{"login", "--ensure", "staging"}, strings.NewReader(""), &out, &errb)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(errb.String(), "Waiting for another 'jit-ssh login --ensure staging'") {
		select {
		case code := <-done:
			t.Fatalf("the second login --ensure did not wait for the lock: exit %d, stderr %q", code, errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second login --ensure does not say it waits: stderr %q", errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// ...and loads its certificate before it lets go.
	keys, err := agent.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	priv, cert := signedCert(t, 9, time.Now().Add(10*time.Minute))
	if err := keys.Load("staging", priv, cert); err != nil {
		t.Fatal(err)
	}
	release()
	select {
	case code := <-done:
		if code != exitOK || out.String() != "" {
			t.Errorf("second login --ensure after the first loaded the certificate: exit %d, stdout %q, stderr %q; want 0 without a login", code, out.String(), errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the second login --ensure did not finish once the lock was released: stderr %q", errb.String())
	}
}

// TestLoginEnsureRefusesOddGroupsBeforeTouchingFiles: a group name that
// could leave the cache directory or write an odd file name (slashes, dot
// dots, a leading dot or dash, a line break, a NUL, a glob) is a usage
// error before the agent, the lock file or the server is touched.
func TestLoginEnsureRefusesOddGroupsBeforeTouchingFiles(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("SSH_AUTH_SOCK", "/nonexistent/agent.sock")
	t.Setenv("JIT_SSH_SERVER", "http://127.0.0.1:1")
	t.Setenv("JIT_SSH_TOKEN", "dev-alice")
	for _, g := range []string{"../../x", "a/b", "..", ".hidden", "-rf", "prod\n", "prod\x00x", "prod*", "prod db", "PROD", "ünï"} {
		r := runCLI(t, "login", "--ensure", g)
		if r.code != exitUsage || r.stdout != "" || strings.Contains(r.stderr, "agent") {
			t.Errorf("login --ensure %q: exit %d, stdout %q, stderr %q; want a usage error naming the group only", g, r.code, r.stdout, r.stderr)
		}
	}
	entries, err := os.ReadDir(cache)
	if err != nil || len(entries) != 0 {
		t.Errorf("the cache directory holds %v (%v) after refused groups; want nothing", entries, err)
	}
}
