package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/testenv"
	"github.com/jit-ssh/jit-ssh/test/vaulttest"
)

// vaultConfigTmpl is a server config that signs through Vault with an
// AppRole login, as a production server would. %MOUNT%, %VAULT%, %ROLEID%,
// %SECRETID%, %TRUSTED% and %DATA% are filled in by vaultEnv.config.
const vaultConfigTmpl = `
listen: 127.0.0.1:0
data_dir: %DATA%
signer:
  type: vault
  vault:
    address: %VAULT%
    mount: %MOUNT%
    role: jit-ssh
    timeout: 1s
    approle: {role_id_file: %ROLEID%, secret_id_file: %SECRETID%}
trusted_ca_keys: [%TRUSTED%]
identity:
  type: static
  static:
    users:
      alice: {token: dev-alice, teams: [backend]}
      carol: {token: dev-carol, teams: [security]}
auditors: [security]
host_groups:
  staging:
    principals: [staging]
    requesters: [backend]
    approvals_required: 0
    max_duration: 1h
    cert_ttl: 5m
    extensions: [permit-pty]
` + testLimits

// Fixed AppRole IDs, so a rebuilt (empty) dev Vault can be given the
// credentials the running jit-ssh server already holds.
const (
	vaultRoleID   = "5f0c7a64-3b1e-4f0a-9c2d-8e7b6a5d4c3b"
	vaultSecretID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
)

// vaultEnv is a dev Vault plus the AppRole files a jit-ssh server logs in
// with.
type vaultEnv struct {
	t   *testing.T
	vs  *vaulttest.Server
	dir string
}

func newVaultEnv(t *testing.T) *vaultEnv {
	t.Helper()
	e := &vaultEnv{t: t, vs: vaulttest.Start(t), dir: testenv.TempDir(t)}
	for name, v := range map[string]string{"role-id": vaultRoleID, "secret-id": vaultSecretID} {
		if err := os.WriteFile(filepath.Join(e.dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// config writes a server config for mount, trusting the extra CA keys, and
// returns its path.
func (e *vaultEnv) config(name, mount string, trusted ...string) string {
	e.t.Helper()
	quoted := make([]string, len(trusted))
	for i, k := range trusted {
		quoted[i] = `"` + strings.TrimSpace(k) + `"`
	}
	r := strings.NewReplacer("%VAULT%", e.vs.Addr, "%MOUNT%", mount,
		"%ROLEID%", filepath.Join(e.dir, "role-id"), "%SECRETID%", filepath.Join(e.dir, "secret-id"),
		"%TRUSTED%", strings.Join(quoted, ", "), "%DATA%", filepath.Join(e.dir, name+"-data"))
	path := filepath.Join(e.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(r.Replace(vaultConfigTmpl)), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// cli runs the jit-ssh binary as a Vault operator (VAULT_ADDR, VAULT_TOKEN
// of the dev server's root token) and fails the test unless it exits 0.
func (e *vaultEnv) cli(args ...string) string {
	e.t.Helper()
	cmd := exec.Command(jitBinary(e.t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.dir, "VAULT_ADDR=" + e.vs.Addr, "VAULT_TOKEN=" + e.vs.Token}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("jit-ssh %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	if strings.Contains(out.String()+errb.String(), e.vs.Token) {
		e.t.Fatalf("jit-ssh %s printed the Vault token", strings.Join(args, " "))
	}
	return out.String()
}

// vaultSetupResult is the JSON output of `jit-ssh vault setup -o json`.
type vaultSetupResult struct {
	Mounted      bool     `json:"mounted"`
	GeneratedKey bool     `json:"generated_key"`
	WroteRole    bool     `json:"wrote_role"`
	RoleChanges  []string `json:"role_changes"`
	CAPublicKey  string   `json:"ca_public_key"`
	Fingerprint  string   `json:"ca_fingerprint"`
}

func (r vaultSetupResult) changed() bool { return r.Mounted || r.GeneratedKey || r.WroteRole }

// setup runs the real `jit-ssh vault setup` for cfg, then gives the server's
// AppRole the policy `vault setup --print-policy` prints for every config in
// policyFor (all mounts the AppRole must sign with).
func (e *vaultEnv) setup(cfg string, policyFor ...string) vaultSetupResult {
	e.t.Helper()
	var res vaultSetupResult
	if err := json.Unmarshal([]byte(e.cli("vault", "setup", "--config", cfg, "-o", "json")), &res); err != nil {
		e.t.Fatal(err)
	}
	var policy strings.Builder
	for _, c := range append([]string{cfg}, policyFor...) {
		policy.WriteString(e.cli("vault", "setup", "--config", c, "--print-policy"))
	}
	e.vs.AppRole("jit-ssh", policy.String(), vaultRoleID, vaultSecretID)
	return res
}

// publicKey reads what Vault itself publishes as the CA key of mount
// (GET /v1/<mount>/public_key, unauthenticated).
func (e *vaultEnv) publicKey(mount string) ssh.PublicKey {
	e.t.Helper()
	resp, err := http.Get(e.vs.Addr + "/v1/" + mount + "/public_key")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s/public_key: %d %s %v", mount, resp.StatusCode, body, err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(body)
	if err != nil {
		e.t.Fatalf("Vault's public_key %q: %v", body, err)
	}
	return k
}

// hostDir writes host files for staging with `jit-ssh host config` and
// starts an sshd on them; it returns the directory, for `host sync`.
func vaultHost(t *testing.T, u *user) (string, *testenv.SSHD) {
	t.Helper()
	dir := testenv.TempDir(t)
	u.ok("host", "config", "--group", "staging", "--user", testenv.Login(t), "--dir", dir)
	return dir, testenv.StartSSHD(t, testenv.SSHDOptions{DropIn: filepath.Join(dir, "jit-ssh.conf")})
}

func vaultSSHWorks(t *testing.T, sock string, host *testenv.SSHD) bool {
	t.Helper()
	out, _, err := testenv.SSH(t, sock, host.Port, testenv.Login(t), "echo", "vault-ok")
	return err == nil && strings.TrimSpace(out) == "vault-ok"
}

func vaultMustSSH(t *testing.T, sock string, host *testenv.SSHD, when string) {
	t.Helper()
	if !vaultSSHWorks(t, sock, host) {
		t.Fatalf("%s: ssh into the host failed\nsshd log:\n%s", when, host.Log())
	}
}

// vaultLastCert returns the newest certificate in the ledger, parsed.
func vaultLastCert(t *testing.T, s *server) (api.Certificate, *ssh.Certificate) {
	t.Helper()
	certs := auditCerts(t, s)
	if len(certs) == 0 {
		t.Fatal("no certificate in the ledger")
	}
	newest := certs[0]
	for _, c := range certs {
		if c.ValidAfter.After(newest.ValidAfter) || (c.ValidAfter.Equal(newest.ValidAfter) && c.Serial > newest.Serial) {
			newest = c
		}
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(newest.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	return newest, pub.(*ssh.Certificate)
}

func vaultSameKey(a, b ssh.PublicKey) bool { return bytes.Equal(a.Marshal(), b.Marshal()) }

func vaultRefusals(t *testing.T, s *server) []api.Event {
	t.Helper()
	carol := s.as(t, "carol", "")
	var out []api.Event
	for _, ev := range jsonLines[api.Event](t, carol.ok("audit", "events", "-o", "json").Stdout) {
		if ev.Type == ca.EventIssueRefused {
			out = append(out, ev)
		}
	}
	return out
}

// expectVaultRefusal checks one failure of Vault: `jit-ssh login` fails
// naming Vault, the API answers 503 naming Vault (want is what the message
// must contain, e.g. "vault: sealed"), no certificate is added to the
// ledger, and the refusals are on the record: the first of its kind (login,
// request, code) within a minute is an event at once, naming Vault; the
// others are counted into it and written when the count is flushed
// (vaultRefusalTotal checks the sum at the end). It returns how many
// refusals it caused (2).
func expectVaultRefusal(t *testing.T, s *server, alice *user, grantID, want string) int {
	t.Helper()
	before := len(auditCerts(t, s))

	r := alice.run("login", "staging")
	if r.Code == 0 || !strings.Contains(r.Stderr, want) {
		t.Fatalf("login: exit %d, stderr %q; want a failure saying %q", r.Code, r.Stderr, want)
	}
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	t.Logf("login refused (exit %d): %s", r.Code, lines[len(lines)-1])

	c, err := api.NewClient(s.URL, "dev-alice")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	cert, err := c.IssueCertificate(context.Background(), grantID, string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(sshPub))))
	var ae *api.Error
	if err == nil || !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || !strings.Contains(ae.Message, want) {
		t.Fatalf("POST /v1/certificates: cert %+v, err %v; want a 503 saying %q", cert, err, want)
	}

	if after := len(auditCerts(t, s)); after != before {
		t.Fatalf("ledger has %d certificates after the refusals, had %d", after, before)
	}
	var kind []api.Event
	for _, ev := range vaultRefusals(t, s) {
		if code, _ := ev.Data["code"].(string); code == ae.Code && ev.Actor == "alice" {
			kind = append(kind, ev)
		}
	}
	if len(kind) == 0 {
		t.Fatalf("no %s event of alice with code %s in the ledger", ca.EventIssueRefused, ae.Code)
	}
	if reason, _ := kind[0].Data["reason"].(string); !strings.Contains(reason, "vault") {
		t.Errorf("refusal event %+v does not name Vault", kind[0])
	}
	return 2
}

// vaultRefusalTotal is how many refusals of alice the ledger accounts for:
// one per certificate.refused event, or its count when it stands for
// several.
func vaultRefusalTotal(t *testing.T, s *server) int {
	t.Helper()
	n := 0
	for _, ev := range vaultRefusals(t, s) {
		if ev.Actor != "alice" {
			continue
		}
		if c, ok := ev.Data["count"].(float64); ok {
			n += int(c)
		} else {
			n++
		}
	}
	return n
}

// TestVaultSignerEndToEnd: jit-ssh signing through a real Vault, into a real
// sshd, and failing closed and recovering (without a restart of jit-ssh)
// when Vault is sealed, hung, or stopped and rebuilt.
func TestVaultSignerEndToEnd(t *testing.T) {
	ve := newVaultEnv(t)
	cfg := ve.config("main", "ssh")

	// vault setup configures Vault; a second run changes nothing.
	first := ve.setup(cfg)
	if !first.Mounted || !first.GeneratedKey || !first.WroteRole {
		t.Fatalf("first vault setup = %+v, want mount, key and role created", first)
	}
	second := ve.setup(cfg)
	if second.changed() || len(second.RoleChanges) != 0 || second.CAPublicKey != first.CAPublicKey {
		t.Fatalf("second vault setup = %+v, want nothing changed and the same CA key", second)
	}
	vaultCA := ve.publicKey("ssh")
	if got := ca.Fingerprint(vaultCA); got != first.Fingerprint {
		t.Fatalf("vault setup printed CA %s, Vault publishes %s", first.Fingerprint, got)
	}

	srv := startServer(t, "--config", cfg)
	sock := testenv.StartAgent(t)
	alice := srv.as(t, "alice", sock)
	if out := alice.ok("ca", "pubkey").Stdout; strings.TrimSpace(out) != strings.TrimSpace(string(ssh.MarshalAuthorizedKey(vaultCA))) {
		t.Fatalf("jit-ssh ca pubkey = %q, want Vault's CA key", out)
	}
	hostDir, host := vaultHost(t, alice)

	// Login through Vault, then plain ssh.
	alice.ok("login", "staging")
	vaultMustSSH(t, sock, host, "after login through Vault")
	rec, cert := vaultLastCert(t, srv)
	if !vaultSameKey(cert.SignatureKey, vaultCA) || rec.Serial != strconv.FormatUint(cert.Serial, 10) {
		t.Fatalf("ledger record %+v: not Vault's certificate", rec)
	}
	certFile := filepath.Join(testenv.TempDir(t), "cert.pub")
	if err := os.WriteFile(certFile, []byte(rec.Certificate+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listing, err := exec.Command(testenv.RequireBinary(t, "ssh-keygen"), "-L", "-f", certFile).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -L: %v\n%s", err, listing)
	}
	if !strings.Contains(string(listing), "Signing CA: ED25519 "+ca.Fingerprint(vaultCA)) {
		t.Fatalf("ssh-keygen -L does not show Vault's CA %s:\n%s", ca.Fingerprint(vaultCA), listing)
	}
	if !strings.Contains(string(listing), "Serial: "+strconv.FormatUint(cert.Serial, 10)) {
		t.Fatalf("ssh-keygen -L does not show the serial %d the ledger recorded:\n%s", cert.Serial, listing)
	}
	grantID := rec.RequestID
	refusals := 0 // caused by expectVaultRefusal; checked against the ledger at the end

	// A role that makes Vault sign something other than what was asked
	// (extra extensions, backdated further than the skew): refused with a
	// 503 naming Vault and the role, nothing issued; vault setup repairs it.
	root := ve.vs.Client()
	role, err := root.Logical().Read("ssh/roles/jit-ssh")
	if err != nil || role == nil {
		t.Fatalf("reading the role: %v", err)
	}
	role.Data["default_extensions"] = map[string]any{"permit-X11-forwarding": ""}
	role.Data["not_before_duration"] = 3600
	if _, err := root.Logical().Write("ssh/roles/jit-ssh", role.Data); err != nil {
		t.Fatal(err)
	}
	refusals += expectVaultRefusal(t, srv, alice, grantID, "vault: ssh/sign/jit-ssh at "+ve.vs.Addr+" returned a certificate that differs from the request")
	if repaired := ve.setup(cfg); !repaired.WroteRole || repaired.GeneratedKey || !slices.Contains(repaired.RoleChanges, "default_extensions") {
		t.Fatalf("vault setup on the misconfigured role = %+v, want the role rewritten", repaired)
	}
	alice.ok("login", "staging")
	vaultMustSSH(t, sock, host, "after vault setup repaired the role")

	// (a) Outages that keep Vault's state: sealed, hung. The host is
	// untouched and works again as soon as Vault does.
	ve.vs.Seal()
	refusals += expectVaultRefusal(t, srv, alice, grantID, "vault: sealed at "+ve.vs.Addr)
	ve.vs.Unseal()
	alice.ok("login", "staging")
	vaultMustSSH(t, sock, host, "after unseal")

	ve.vs.Pause()
	refusals += expectVaultRefusal(t, srv, alice, grantID, "vault: timed out at "+ve.vs.Addr)
	ve.vs.Resume()
	alice.ok("login", "staging")
	vaultMustSSH(t, sock, host, "after Vault resumed")

	// (b) Vault stopped, then rebuilt empty (dev mode keeps nothing): setup
	// again makes a new CA key. The running server logs in again and signs
	// with it; hosts pick the new key up with host sync.
	ve.vs.Stop()
	refusals += expectVaultRefusal(t, srv, alice, grantID, "vault: unreachable at "+ve.vs.Addr)
	ve.vs.Restart()
	rebuilt := ve.setup(cfg)
	if !rebuilt.GeneratedKey || rebuilt.CAPublicKey == first.CAPublicKey {
		t.Fatalf("setup on the rebuilt Vault = %+v, want a new CA key", rebuilt)
	}
	newCA := ve.publicKey("ssh")
	alice.ok("login", "staging")
	if _, cert := vaultLastCert(t, srv); !vaultSameKey(cert.SignatureKey, newCA) {
		t.Fatal("after the rebuild the certificate is not signed by Vault's new CA key")
	}
	if vaultSSHWorks(t, sock, host) {
		t.Fatal("a host that trusts only the old CA key accepted a certificate of the new one")
	}
	alice.ok("host", "sync", "--dir", hostDir)
	caFile, err := os.ReadFile(filepath.Join(hostDir, "ca.pub"))
	if err != nil || !strings.Contains(string(caFile), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newCA)))) {
		t.Fatalf("after host sync ca.pub = %q (%v), want Vault's new CA key", caFile, err)
	}
	vaultMustSSH(t, sock, host, "after the rebuild and host sync")
	if log := srv.Log(); strings.Contains(log, ve.vs.Token) || strings.Contains(log, vaultSecretID) {
		t.Fatal("the server log contains the Vault token or the AppRole secret ID")
	}

	// Every refusal is on the record once the counts are flushed (at the
	// latest when the server stops): restart it on the same ledger.
	srv.Stop(t)
	again := startServer(t, "--config", cfg)
	if got := vaultRefusalTotal(t, again); got != refusals {
		t.Errorf("the ledger accounts for %d of alice's refused certificates, want %d", got, refusals)
	}
}

// TestVaultCARotation: a rotation to a new Vault mount (new CA key) never
// locks anyone out. The new key is published first (trusted_ca_keys), hosts
// pick it up, then the server signs with it while publishing the old one,
// and a host that trusts both accepts certificates of either.
func TestVaultCARotation(t *testing.T) {
	ve := newVaultEnv(t)
	oldCfg, newCfg := ve.config("old", "ssh"), ve.config("new", "ssh-v2")
	ve.setup(oldCfg)
	ve.setup(newCfg, oldCfg)
	oldCA, newCA := ve.publicKey("ssh"), ve.publicKey("ssh-v2")
	line := func(k ssh.PublicKey) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) }

	// Step 1: the server signs with the old key and publishes the new one.
	before := startServer(t, "--config", ve.config("before", "ssh", line(newCA)))
	sock := testenv.StartAgent(t)
	alice := before.as(t, "alice", sock)
	if got, want := alice.ok("ca", "pubkey").Stdout, line(oldCA)+"\n"+line(newCA)+"\n"; got != want {
		t.Fatalf("ca pubkey before the rotation:\n%s\nwant the current key, then the next:\n%s", got, want)
	}
	hostDir, host := vaultHost(t, alice)
	caBefore, err := os.ReadFile(filepath.Join(hostDir, "ca.pub"))
	if err != nil {
		t.Fatal(err)
	}
	alice.ok("login", "staging")
	vaultMustSSH(t, sock, host, "with a certificate of the old key")

	// Step 2: the server signs with the new key and still publishes the old
	// one. The certificate in the agent keeps working, so does a new one,
	// and the host's files are unchanged by a sync.
	after := startServer(t, "--config", ve.config("after", "ssh-v2", line(oldCA)))
	alice2 := after.as(t, "alice", sock)
	if got, want := alice2.ok("ca", "pubkey").Stdout, line(newCA)+"\n"+line(oldCA)+"\n"; got != want {
		t.Fatalf("ca pubkey after the rotation:\n%s\nwant the current key, then the previous:\n%s", got, want)
	}
	vaultMustSSH(t, sock, host, "after the rotation, with the old key's certificate")
	alice2.ok("login", "staging")
	if _, cert := vaultLastCert(t, after); !vaultSameKey(cert.SignatureKey, newCA) {
		t.Fatal("after the rotation the certificate is not signed by the new key")
	}
	vaultMustSSH(t, sock, host, "after the rotation, with the new key's certificate")
	host.WaitForLog(t, "CA ED25519 "+ca.Fingerprint(newCA), 5*time.Second)
	alice2.ok("host", "sync", "--dir", hostDir)
	caAfter, err := os.ReadFile(filepath.Join(hostDir, "ca.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if vaultKeySet(caAfter) != vaultKeySet(caBefore) {
		t.Fatalf("host sync changed the trusted keys during the rotation:\nbefore:\n%s\nafter:\n%s", caBefore, caAfter)
	}
}

// vaultKeySet returns the non-comment lines of a TrustedUserCAKeys file, sorted
// and joined, to compare two files as sets of keys.
func vaultKeySet(file []byte) string {
	var keys []string
	for l := range strings.Lines(string(file)) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			keys = append(keys, l)
		}
	}
	slices.Sort(keys)
	return strings.Join(keys, "\n")
}
