package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// TestLoginWithApprovalThenSSH is the walking skeleton end to end: alice
// asks for prod-db, bob approves, alice's agent gets a certificate, and
// plain ssh works into a prod-db host and nowhere else.
func TestLoginWithApprovalThenSSH(t *testing.T) {
	srv := startDev(t)
	sock := testenv.StartAgent(t)
	alice, bob := srv.as(t, "alice", sock), srv.as(t, "bob", "")
	prodDB := hostFor(t, alice, "prod-db")
	staging := hostFor(t, alice, "staging")

	// alice logs in; her request needs bob's approval.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	login := alice.start(ctx, "login", "prod-db", "--reason", "e2e: check replication")

	var pending []api.Request
	waitFor(t, "alice's request to be reviewable by bob", 20*time.Second, func() bool {
		pending = jsonLines[api.Request](t, bob.ok("request", "list", "--reviewable", "-o", "json").Stdout)
		return len(pending) == 1
	})
	req := pending[0]
	if req.Requester != "alice" || req.HostGroup != "prod-db" || req.State != "pending" {
		t.Fatalf("reviewable request = %+v, want alice's pending prod-db request", req)
	}
	waitFor(t, "login to show it is waiting", 10*time.Second, func() bool {
		return strings.Contains(login.Stderr.String(), "Waiting for 1 approval(s) from sre-leads")
	})
	bob.ok("review", req.ID, "--approve", "-m", "ok for the check")
	approved := time.Now()

	select {
	case err := <-login.done:
		if err != nil {
			t.Fatalf("login failed: %v\nstdout:\n%s\nstderr:\n%s", err, login.Stdout.String(), login.Stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("login did not finish after the approval\nstderr:\n%s", login.Stderr.String())
	}
	t.Logf("login completed %s after the approving review returned", login.ended.Sub(approved).Round(time.Millisecond))
	if !strings.Contains(login.Stderr.String(), "bob: approve: ok for the check") {
		t.Errorf("login progress does not show bob's review:\n%s", login.Stderr.String())
	}

	// Plain ssh into the prod-db host works with what is in the agent.
	stdout, stderr, err := testenv.SSH(t, sock, prodDB.Port, testenv.Login(t), "echo", "hello-from-prod-db")
	if err != nil || strings.TrimSpace(stdout) != "hello-from-prod-db" {
		t.Fatalf("ssh into prod-db: err=%v stdout=%q stderr=%q\nsshd log:\n%s", err, stdout, stderr, prodDB.Log())
	}
	// ...but not into a host of another group.
	if _, stderr, err := testenv.SSH(t, sock, staging.Port, testenv.Login(t), "true"); err == nil {
		t.Fatalf("a prod-db certificate logged into a staging host; stderr=%q", stderr)
	}

	// The ledger has exactly this certificate, and it is the one in the agent.
	certs := auditCerts(t, srv)
	if len(certs) != 1 {
		t.Fatalf("audit certs lists %d certificates, want 1: %+v", len(certs), certs)
	}
	c := certs[0]
	wantKeyID := fmt.Sprintf("jit-ssh:user=alice:group=prod-db:req=%s:by=bob", req.ID)
	if c.KeyID != wantKeyID || c.Requester != "alice" || c.RequestID != req.ID || strings.Join(c.Approvers, ",") != "bob" {
		t.Errorf("ledger record = %+v, want key id %q, requester alice, approvers [bob]", c, wantKeyID)
	}
	agentKeys := run(t, sock, "ssh-add", "-L")
	if !strings.Contains(agentKeys, strings.Fields(c.Certificate)[1]) {
		t.Errorf("the agent does not hold the certificate the ledger recorded\nagent:\n%s", agentKeys)
	}
	if list := agentList(t, sock); !strings.Contains(list, "jit-ssh:group=prod-db:serial="+c.Serial) {
		t.Errorf("ssh-add -l = %q, want the jit-ssh prod-db entry", list)
	}

	// sshd's log line for the login carries the KeyId and serial the
	// auditor sees.
	line := prodDB.WaitForLog(t, "Accepted publickey", 5*time.Second)
	if !strings.Contains(line, "ID "+c.KeyID) || !strings.Contains(line, "(serial "+c.Serial+")") {
		t.Errorf("sshd log line %q does not carry key id %q and serial %s", line, c.KeyID, c.Serial)
	}

	// ssh-keygen -L: exactly the group's principals, validity at most
	// cert_ttl plus the backdating skew.
	checkCertWithKeygen(t, c, []string{"prod-db"}, 5*time.Minute+2*time.Minute)
}

// checkCertWithKeygen runs the real ssh-keygen -L on the certificate and
// checks its type, key id, principals and validity window.
func checkCertWithKeygen(t *testing.T, c api.Certificate, principals []string, maxValidity time.Duration) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cert.pub")
	if err := os.WriteFile(path, []byte(c.Certificate+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := run(t, "", "ssh-keygen", "-L", "-f", path)
	if !strings.Contains(out, "Type: ssh-ed25519-cert-v01@openssh.com user certificate") {
		t.Errorf("ssh-keygen -L: not a user certificate:\n%s", out)
	}
	if !strings.Contains(out, fmt.Sprintf("Key ID: %q", c.KeyID)) || !strings.Contains(out, "Serial: "+c.Serial) {
		t.Errorf("ssh-keygen -L: key id or serial differ from the ledger (%s, %s):\n%s", c.KeyID, c.Serial, out)
	}
	m := regexp.MustCompile(`(?s)Principals:\s*\n(.*?)\n\s*Critical Options:`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ssh-keygen -L: no principals section:\n%s", out)
	}
	if got := strings.Fields(m[1]); strings.Join(got, ",") != strings.Join(principals, ",") {
		t.Errorf("ssh-keygen -L principals = %v, want exactly %v", got, principals)
	}
	v := regexp.MustCompile(`Valid: from (\S+) to (\S+)`).FindStringSubmatch(out)
	if v == nil {
		t.Fatalf("ssh-keygen -L: no validity:\n%s", out)
	}
	from, err1 := time.ParseInLocation("2006-01-02T15:04:05", v[1], time.Local)
	to, err2 := time.ParseInLocation("2006-01-02T15:04:05", v[2], time.Local)
	if err1 != nil || err2 != nil {
		t.Fatalf("ssh-keygen -L validity %q: %v %v", v[0], err1, err2)
	}
	if d := to.Sub(from); d <= 0 || d > maxValidity {
		t.Errorf("certificate validity %s (%s), want at most %s", d, v[0], maxValidity)
	}
}

// run runs a command with SSH_AUTH_SOCK=sock and returns its stdout.
func run(t *testing.T, sock, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testenv.RequireBinary(t, name), args...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %v: %v\n%s%s", name, args, err, out, stderr)
	}
	return string(out)
}

// agentList returns `ssh-add -l` for the agent at sock; an empty agent
// (exit 1, "no identities") gives "".
func agentList(t *testing.T, sock string) string {
	t.Helper()
	cmd := exec.Command(testenv.RequireBinary(t, "ssh-add"), "-l")
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 && strings.Contains(string(out), "no identities") {
		return ""
	}
	if err != nil {
		t.Fatalf("ssh-add -l: %v\n%s", err, out)
	}
	return string(out)
}

// TestLoginWaitsThroughServerRestart: a server restart (or any 503) while
// alice waits for approval does not end her wait; once the server is back
// and bob approves, her login completes.
func TestLoginWaitsThroughServerRestart(t *testing.T) {
	srv := startDev(t)
	sock := testenv.StartAgent(t)
	alice, bob := srv.as(t, "alice", sock), srv.as(t, "bob", "")

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	login := alice.start(ctx, "login", "prod-db", "--reason", "e2e: restart while waiting")
	waitFor(t, "login to wait for approval", 20*time.Second, func() bool {
		return strings.Contains(login.Stderr.String(), "Waiting for 1 approval(s)")
	})

	srv.Stop(t)
	waitFor(t, "login to notice the server is gone and keep waiting", 30*time.Second, func() bool {
		return strings.Contains(login.Stderr.String(), "still waiting, retrying")
	})
	select {
	case err := <-login.done:
		t.Fatalf("login ended while the server was down: %v\nstderr:\n%s", err, login.Stderr.String())
	default:
	}

	var port int
	if _, err := fmt.Sscanf(srv.URL, "http://127.0.0.1:%d", &port); err != nil {
		t.Fatal(err)
	}
	startServerOn(t, port, srv.DataDir, "--dev", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", srv.DataDir)
	pending := jsonLines[api.Request](t, bob.ok("request", "list", "--reviewable", "-o", "json").Stdout)
	if len(pending) != 1 {
		t.Fatalf("after the restart bob sees %d reviewable requests, want alice's one", len(pending))
	}
	bob.ok("review", pending[0].ID, "--approve", "-m", "ok after the restart")

	select {
	case err := <-login.done:
		if err != nil {
			t.Fatalf("login failed after the restart: %v\nstderr:\n%s", err, login.Stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("login did not finish after the approval\nstderr:\n%s", login.Stderr.String())
	}
	if list := agentList(t, sock); !strings.Contains(list, "jit-ssh:group=prod-db:") {
		t.Errorf("ssh-add -l = %q, want the prod-db certificate", list)
	}
}
