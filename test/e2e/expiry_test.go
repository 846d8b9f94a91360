package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// shortTTLConfig: certificates live 8 seconds, so expiry is observed with a
// short wait instead of a long sleep.
const shortTTLConfig = `
listen: 127.0.0.1:0
data_dir: %DATA%
signer: {type: file}
identity:
  type: static
  static:
    users:
      alice: {token: dev-alice, teams: [backend]}
      carol: {token: dev-carol, teams: [security]}
auditors: [security]
host_groups:
  quick:
    principals: [quick]
    requesters: [backend]
    approvals_required: 0
    max_duration: 10m
    cert_ttl: 8s
    extensions: [permit-pty]
` + testLimits

// TestCertificateExpires shows that a certificate stops working when it
// expires: the agent drops the login key at the certificate's end, and
// sshd refuses the certificate itself once it is past ValidBefore, even
// from an agent that still offers it.
func TestCertificateExpires(t *testing.T) {
	srv := startWithConfig(t, shortTTLConfig)
	sock := testenv.StartAgent(t)
	alice := srv.as(t, "alice", sock)
	host := hostFor(t, alice, "quick")

	// 1. jit-ssh login: the agent holds the key only for the cert's lifetime.
	alice.ok("login", "quick")
	if list := agentList(t, sock); !strings.Contains(list, "jit-ssh:group=quick") {
		t.Fatalf("after login the agent holds %q, want the quick certificate", list)
	}

	// 2. A certificate for a key the test holds itself, in a second agent
	// that keeps it forever: only sshd stands between it and a login.
	keepSock := testenv.StartAgent(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	c, err := api.NewClient(srv.URL, "dev-alice")
	if err != nil {
		t.Fatal(err)
	}
	mine, err := c.ListRequests(context.Background(), api.ListRequestsOptions{Mine: true, State: "approved"})
	if err != nil || len(mine) != 1 {
		t.Fatalf("alice's grants: %v, %v", mine, err)
	}
	rec, err := c.IssueCertificate(context.Background(), mine[0].ID, string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(sshPub))))
	if err != nil {
		t.Fatal(err)
	}
	parsed, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rec.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	cert := parsed.(*ssh.Certificate)
	conn, err := net.Dial("unix", keepSock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sshagent.NewClient(conn).Add(sshagent.AddedKey{PrivateKey: priv, Certificate: cert}); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := testenv.SSH(t, keepSock, host.Port, testenv.Login(t), "true"); err != nil {
		t.Fatalf("ssh with a fresh certificate failed: %v %s\n%s", err, stderr, host.Log())
	}

	// Wait for the end of the certificate's validity.
	end := time.Unix(int64(cert.ValidBefore), 0)
	if d := time.Until(end); d > 8*time.Second+time.Second {
		t.Fatalf("certificate valid for %s, want at most cert_ttl 8s", d)
	}
	time.Sleep(time.Until(end) + 1500*time.Millisecond)

	if list := agentList(t, sock); strings.Contains(list, "jit-ssh:") {
		t.Errorf("the agent still holds the jit-ssh key after its certificate expired: %q", list)
	}
	if _, _, err := testenv.SSH(t, keepSock, host.Port, testenv.Login(t), "true"); err == nil {
		t.Fatalf("sshd accepted an expired certificate")
	}
	if log := host.Log(); !strings.Contains(log, "expired") {
		t.Errorf("sshd log does not say the certificate expired:\n%s", log)
	}
}

// TestExitCodes checks the CLI's exit statuses of SPEC section 3.
func TestExitCodes(t *testing.T) {
	srv := startDev(t)
	sock := testenv.StartAgent(t)
	tests := []struct {
		name  string
		login string
		args  []string
		code  int
		says  string
	}{
		{"no group", "alice", []string{"login"}, 2, "missing GROUP; usage: jit-ssh login GROUP"},
		{"unknown command", "alice", []string{"lgoin", "prod-db"}, 2, `did you mean "login"?`},
		{"no reason for a group that needs approval", "alice", []string{"login", "prod-db", "--no-wait"}, 2, "a reason is required: prod-db needs approval"},
		{"bad output", "alice", []string{"status", "-o", "xml"}, 2, "--output must be table or json"},
		{"bad group name", "alice", []string{"login", "Prod DB"}, 2, "is not a host group name"},
		{"unknown group", "alice", []string{"login", "nosuch"}, 1, `unknown host group "nosuch"`},
		{"not a requester", "carol", []string{"login", "prod-db", "--no-wait"}, 3, "may not request prod-db"},
		{"bad token", "mallory", []string{"login", "staging"}, 3, "token was not accepted"},
		{"approval times out", "erin", []string{"login", "prod-db", "--reason", "INC-7", "--timeout", "1s"}, 4, "timed out waiting for approval"},
		{"self review", "alice", []string{"review", "r-aaaaaaaaaaaaaaaa", "--approve"}, 1, "no request r-aaaaaaaaaaaaaaaa"},
		{"two review kinds", "bob", []string{"review", "r-aaaaaaaaaaaaaaaa", "--approve", "--deny", "-m", "x"}, 2, "exactly one of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := srv.as(t, tt.login, sock).run(tt.args...)
			if r.Code != tt.code || !strings.Contains(r.Stderr, tt.says) {
				t.Errorf("jit-ssh %v: exit %d, stderr %q; want exit %d saying %q", tt.args, r.Code, r.Stderr, tt.code, tt.says)
			}
		})
	}
}
