package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// revokeConfig: prod-db needs one approval from sre-leads (bob); sam is an
// admin; carol audits.
const revokeConfig = `
listen: 127.0.0.1:0
data_dir: %DATA%
signer: {type: file}
identity:
  type: static
  static:
    users:
      alice: {token: dev-alice, teams: [backend]}
      erin:  {token: dev-erin,  teams: [backend]}
      frank: {token: dev-frank, teams: [backend]}
      bob:   {token: dev-bob,   teams: [sre-leads]}
      carol: {token: dev-carol, teams: [security]}
      sam:   {token: dev-sam,   teams: [ops]}
auditors: [security]
admins: [ops]
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

// hostDir writes host files for group into a fresh directory with
// `jit-ssh host config` and starts a real sshd on them.
func hostDir(t *testing.T, u *user, group string) (string, *testenv.SSHD) {
	t.Helper()
	dir := testenv.TempDir(t)
	u.ok("host", "config", "--group", group, "--user", testenv.Login(t), "--dir", dir)
	return dir, testenv.StartSSHD(t, testenv.SSHDOptions{DropIn: filepath.Join(dir, "jit-ssh.conf")})
}

// grantAndLogin files a request for u, has approver approve it, and runs
// `jit-ssh login` so u's agent holds a certificate. It returns the request
// id and the certificate's serial.
func grantAndLogin(t *testing.T, u, approver *user, group string) (string, string) {
	t.Helper()
	r := u.ok("request", "create", group, "--duration", "30m", "--reason", "e2e revoke", "-o", "json")
	req := jsonLines[api.Request](t, r.Stdout)
	if len(req) != 1 || req[0].ID == "" {
		t.Fatalf("request create printed %q, want one request", r.Stdout)
	}
	approver.ok("review", req[0].ID, "--approve", "-m", "ok")
	u.ok("login", group)
	var serial string
	for _, c := range auditCerts(t, u.srv, "--user", strings.TrimPrefix(u.token, "dev-")) {
		if c.RequestID == req[0].ID {
			serial = c.Serial
		}
	}
	if serial == "" {
		t.Fatalf("no certificate in the ledger for request %s", req[0].ID)
	}
	return req[0].ID, serial
}

// sshWorks reports whether the agent at sock gets into the host.
func sshWorks(t *testing.T, sock string, host *testenv.SSHD) bool {
	t.Helper()
	out, stderr, err := testenv.SSH(t, sock, host.Port, testenv.Login(t), "echo", "in")
	if err == nil && strings.TrimSpace(out) == "in" {
		return true
	}
	if !strings.Contains(stderr, "Permission denied") {
		t.Fatalf("ssh failed for another reason than a refusal: %v %q\nsshd log:\n%s", err, stderr, host.Log())
	}
	return false
}

// checkKRLAgreesWithLedger runs ssh-keygen -Q against the host's KRL for
// every certificate in the ledger and compares with its revoked_at.
func checkKRLAgreesWithLedger(t *testing.T, srv *server, krlPath string) (revoked, live int) {
	t.Helper()
	keygen := testenv.RequireBinary(t, "ssh-keygen")
	dir := t.TempDir()
	for _, c := range auditCerts(t, srv) {
		path := filepath.Join(dir, c.Serial+"-cert.pub")
		if err := os.WriteFile(path, []byte(c.Certificate+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(keygen, "-Q", "-f", krlPath, path).CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("ssh-keygen -Q: %v", err)
		}
		gotRevoked := err != nil && strings.Contains(string(out), "REVOKED")
		if err != nil && !gotRevoked {
			t.Fatalf("ssh-keygen -Q %s: %v\n%s", path, err, out)
		}
		if wantRevoked := c.RevokedAt != nil; gotRevoked != wantRevoked {
			t.Errorf("certificate %s of %s: ssh-keygen -Q says revoked=%v (%q), the ledger says revoked=%v", c.Serial, c.Requester, gotRevoked, strings.TrimSpace(string(out)), wantRevoked)
		}
		if gotRevoked {
			revoked++
		} else {
			live++
		}
	}
	return revoked, live
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRevokeThenHostSync: a revoked certificate that is still valid is
// refused by a real sshd once the host syncs, while other users' keep
// working; each form of revoke and who may use it; the host's KRL agrees
// with the ledger; and host sync keeps the last good files when the server
// is down, answers garbage or offers an older KRL.
func TestRevokeThenHostSync(t *testing.T) {
	srv := startWithConfig(t, revokeConfig)
	sockA, sockE, sockF := testenv.StartAgent(t), testenv.StartAgent(t), testenv.StartAgent(t)
	alice, erin, frank := srv.as(t, "alice", sockA), srv.as(t, "erin", sockE), srv.as(t, "frank", sockF)
	bob, sam := srv.as(t, "bob", ""), srv.as(t, "sam", "")
	operator := srv.as(t, "nobody", "") // host commands need no token
	dir, host := hostDir(t, operator, "prod-db")
	krlPath, caPath := filepath.Join(dir, "revoked.krl"), filepath.Join(dir, "ca.pub")

	aliceReq, aliceSerial := grantAndLogin(t, alice, bob, "prod-db")
	erinReq, erinSerial := grantAndLogin(t, erin, bob, "prod-db")
	if !sshWorks(t, sockA, host) || !sshWorks(t, sockE, host) {
		t.Fatal("alice and erin cannot log in before any revocation")
	}

	// A requester may not revoke someone else's certificate.
	r := erin.run("revoke", "--serial", aliceSerial, "--reason", "prank")
	if r.Code != 3 || !strings.Contains(r.Stderr, "may not revoke") {
		t.Fatalf("erin revoking alice's cert: exit %d, stderr %q; want exit 3 and a refusal", r.Code, r.Stderr)
	}
	// Bad input changes nothing either.
	for _, args := range [][]string{
		{"revoke", "--serial", aliceSerial},
		{"revoke", "--serial", aliceSerial, "--user", "alice", "--reason", "x"},
		{"revoke", "--serial", "abc", "--reason", "x"},
	} {
		if r := bob.run(args...); r.Code != 2 {
			t.Errorf("jit-ssh %v: exit %d (%q), want 2", args, r.Code, r.Stderr)
		}
	}
	if r := bob.run("revoke", "--serial", "12345", "--reason", "x"); r.Code != 1 || !strings.Contains(r.Stderr, "12345") {
		t.Errorf("revoking an unknown serial: exit %d, stderr %q; want exit 1 naming it", r.Code, r.Stderr)
	}
	for _, c := range auditCerts(t, srv) {
		if c.RevokedAt != nil {
			t.Fatalf("certificate %s was revoked by a refused or invalid revoke", c.Serial)
		}
	}

	// bob approves prod-db, so he may revoke alice's certificate.
	r = bob.ok("revoke", "--serial", aliceSerial, "--reason", "laptop stolen", "-o", "json")
	res := jsonLines[api.RevokeResult](t, r.Stdout)
	if len(res) != 1 || strings.Join(res[0].Revoked, ",") != aliceSerial || strings.Join(res[0].EndedGrants, ",") != aliceReq {
		t.Fatalf("revoke answered %q; want serial %s revoked and grant %s ended", r.Stdout, aliceSerial, aliceReq)
	}
	// The grant is over: no new certificate under it.
	c, err := api.NewClient(srv.URL, "dev-alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.IssueCertificate(t.Context(), aliceReq, newPublicKey(t)); !api.IsStatus(err, http.StatusConflict) {
		t.Errorf("issuing under the revoked grant: %v, want 409", err)
	}

	// The KRL is on the server at once; the host applies it on sync, so
	// until then alice's certificate still works there.
	if !sshWorks(t, sockA, host) {
		t.Fatalf("the host refused alice before it synced the KRL: the test would not show what host sync does\nsshd log:\n%s", host.Log())
	}
	before := fileBytes(t, krlPath)
	r = operator.ok("host", "sync", "--dir", dir)
	if !strings.Contains(r.Stdout, "Synced "+dir) {
		t.Errorf("host sync printed %q", r.Stdout)
	}
	if bytes.Equal(before, fileBytes(t, krlPath)) {
		t.Fatal("host sync did not change the KRL after a revocation")
	}
	if sshWorks(t, sockA, host) {
		t.Fatalf("sshd accepted alice's revoked certificate (serial %s) after host sync\nsshd log:\n%s", aliceSerial, host.Log())
	}
	if !strings.Contains(host.Log(), "revoked by file "+krlPath) {
		t.Errorf("sshd did not log the refusal as a revocation:\n%s", host.Log())
	}
	if list := agentList(t, sockA); !strings.Contains(list, "serial="+aliceSerial) {
		t.Errorf("the refused certificate is no longer in alice's agent (%q): the test would not show that sshd refuses it", list)
	}
	if !sshWorks(t, sockE, host) {
		t.Fatalf("erin's certificate stopped working when alice's was revoked\nsshd log:\n%s", host.Log())
	}
	if rev, live := checkKRLAgreesWithLedger(t, srv, krlPath); rev != 1 || live != 1 {
		t.Errorf("ssh-keygen -Q: %d revoked, %d live; want 1 and 1", rev, live)
	}

	// host sync against a misbehaving server keeps the last good files.
	t.Run("sync against a bad server", func(t *testing.T) {
		lastKRL, lastCA := fileBytes(t, krlPath), fileBytes(t, caPath)
		krlVersion, err := ca.ParseKRLHeader(lastKRL)
		if err != nil || krlVersion.Version == 0 {
			t.Fatalf("the synced KRL has version %+v (%v), want > 0", krlVersion, err)
		}
		tests := []struct {
			name    string
			handler http.HandlerFunc // nil: nothing listens
			says    string
		}{
			{"server down", nil, "cannot reach the jit-ssh server"},
			{"garbage everywhere", func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, "<html>hello from a captive portal</html>")
			}, "reading the server's answer"},
			{"garbage KRL", proxyCA(srv, func(w http.ResponseWriter) {
				_, _ = io.WriteString(w, "<html>502 Bad Gateway</html>")
			}), "KRL is unusable"},
			{"KRL error status", proxyCA(srv, func(w http.ResponseWriter) {
				w.WriteHeader(http.StatusServiceUnavailable)
			}), "503"},
			{"older KRL", proxyCA(srv, func(w http.ResponseWriter) {
				_, _ = w.Write(ca.MarshalKRL(krlVersion.Version-1, time.Now(), "jit-ssh", nil))
			}), fmt.Sprintf("offers version %d, this host has %d", krlVersion.Version-1, krlVersion.Version)},
			// Newer and well framed, but not a KRL OpenSSH parses: sshd
			// would refuse every certificate with it in place.
			{"garbage in a certificates section", proxyCA(srv, func(w http.ResponseWriter) {
				_, _ = w.Write(append(ca.MarshalKRL(krlVersion.Version+1, time.Now(), "jit-ssh", nil), 1, 0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef))
			}), "KRL is unusable"},
			{"garbage in a SHA256 section", proxyCA(srv, func(w http.ResponseWriter) {
				_, _ = w.Write(append(ca.MarshalKRL(krlVersion.Version+1, time.Now(), "jit-ssh", nil), 5, 0, 0, 0, 5, 0, 0, 0, 1, 0xde))
			}), "KRL is unusable"},
			{"no CA keys", func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/ca" {
					_, _ = io.WriteString(w, `{"keys":[]}`)
					return
				}
				_, _ = w.Write(ca.MarshalKRL(krlVersion.Version+1, time.Now(), "jit-ssh", nil))
			}, "no CA key"},
			{"huge CA answer", func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/ca" {
					// Well-formed JSON, over the bound: read no further.
					_, _ = io.WriteString(w, `{"keys":[{"public_key":"`+strings.Repeat("A", api.MaxPublicAnswerBytes+1)+`"}]}`)
					return
				}
				_, _ = w.Write(ca.MarshalKRL(krlVersion.Version+1, time.Now(), "jit-ssh", nil))
			}, "larger than 1048576 bytes"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				url := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
				if tt.handler != nil {
					// host sync reads public endpoints only: the operator's
					// token must never reach the server (or whoever answers).
					peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if a := r.Header.Get("Authorization"); a != "" {
							t.Errorf("host sync sent an Authorization header to %s", r.URL.Path)
						}
						tt.handler(w, r)
					}))
					t.Cleanup(peer.Close)
					url = peer.URL
				}
				r := operator.run("--server", url, "host", "sync", "--dir", dir)
				if r.Code == 0 || !strings.Contains(r.Stderr, "host sync failed") || !strings.Contains(r.Stderr, tt.says) {
					t.Errorf("host sync against %s: exit %d, stderr %q; want a failure saying %q", tt.name, r.Code, r.Stderr, tt.says)
				}
				if !bytes.Equal(fileBytes(t, krlPath), lastKRL) || !bytes.Equal(fileBytes(t, caPath), lastCA) {
					t.Errorf("host sync against %s changed the host files", tt.name)
				}
				if sshWorks(t, sockA, host) {
					t.Errorf("after a failed sync (%s) sshd accepts alice's revoked certificate", tt.name)
				}
				if !sshWorks(t, sockE, host) {
					t.Errorf("after a failed sync (%s) sshd refuses erin's certificate\nsshd log:\n%s", tt.name, host.Log())
				}
			})
		}
	})

	// erin ends her own grant with --request.
	r = erin.ok("revoke", "--request", erinReq, "--reason", "done early", "-o", "json")
	if res := jsonLines[api.RevokeResult](t, r.Stdout); len(res) != 1 || strings.Join(res[0].Revoked, ",") != erinSerial || strings.Join(res[0].EndedGrants, ",") != erinReq {
		t.Errorf("erin revoking her own request answered %q; want serial %s and grant %s", r.Stdout, erinSerial, erinReq)
	}

	// alice gets a new grant; frank one too.
	_, aliceSerial2 := grantAndLogin(t, alice, bob, "prod-db")
	_, frankSerial := grantAndLogin(t, frank, bob, "prod-db")
	operator.ok("host", "sync", "--dir", dir)
	if sshWorks(t, sockE, host) {
		t.Errorf("sshd accepts erin's certificate after she revoked her request")
	}
	if !sshWorks(t, sockA, host) || !sshWorks(t, sockF, host) {
		t.Fatalf("alice's new certificate or frank's does not work\nsshd log:\n%s", host.Log())
	}

	// --user: everything of alice's. Only admins may; bob approves prod-db
	// but not alice's other groups.
	if r := bob.run("revoke", "--user", "alice", "--reason", "offboarding"); r.Code != 3 {
		t.Errorf("bob revoking all of alice's access: exit %d, stderr %q; want 3", r.Code, r.Stderr)
	}
	r = sam.ok("revoke", "--user", "alice", "--reason", "offboarding", "-o", "json")
	if res := jsonLines[api.RevokeResult](t, r.Stdout); len(res) != 1 || strings.Join(res[0].Revoked, ",") != aliceSerial2 || len(res[0].EndedGrants) != 1 {
		t.Errorf("sam revoking alice answered %q; want serial %s and her open grant", r.Stdout, aliceSerial2)
	}
	operator.ok("host", "sync", "--dir", dir)
	if sshWorks(t, sockA, host) {
		t.Errorf("sshd accepts alice's certificate after revoke --user alice")
	}
	if !sshWorks(t, sockF, host) {
		t.Errorf("frank's certificate stopped working\nsshd log:\n%s", host.Log())
	}
	rev, live := checkKRLAgreesWithLedger(t, srv, krlPath)
	if rev != 3 || live != 1 {
		t.Errorf("ssh-keygen -Q: %d revoked, %d live; want 3 and 1 (frank's serial %s)", rev, live, frankSerial)
	}
}

// proxyCA answers GET /v1/ca from the real server (so the CA keys are
// right) and everything else with krl: a misbehaving KRL endpoint.
func proxyCA(srv *server, krl func(w http.ResponseWriter)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/ca" {
			krl(w)
			return
		}
		resp, err := http.Get(srv.URL + "/v1/ca")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}
}

// newPublicKey returns a fresh ed25519 public key in authorized_keys form.
func newPublicKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(k)))
}
