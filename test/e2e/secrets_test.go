package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	_ "modernc.org/sqlite" // to dump the ledger as text

	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/ca/vault"
	"github.com/jit-ssh/jit-ssh/test/ghstub"
	"github.com/jit-ssh/jit-ssh/test/testenv"
	"github.com/jit-ssh/jit-ssh/test/vaulttest"
)

// secretTranscript collects everything jit-ssh said: CLI output, API error
// messages, and where each piece came from.
type secretTranscript struct {
	parts []secretPart
	users []*user
}

type secretPart struct {
	where string
	data  []byte
}

func (st *secretTranscript) add(where string, data []byte) {
	st.parts = append(st.parts, secretPart{where, data})
}

// run runs the CLI as u, keeps its output and returns it.
func (st *secretTranscript) run(u *user, args ...string) result {
	u.t.Helper()
	r := u.run(args...)
	where := fmt.Sprintf("jit-ssh %s (token of %s)", strings.Join(args, " "), u.token[:4])
	st.add(where+" stdout", []byte(r.Stdout))
	st.add(where+" stderr", []byte(r.Stderr))
	return r
}

// ok is run that must succeed.
func (st *secretTranscript) ok(u *user, args ...string) result {
	u.t.Helper()
	r := st.run(u, args...)
	if r.Code != 0 {
		u.t.Fatalf("jit-ssh %s: exit %d\n%s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// fail is run that must fail.
func (st *secretTranscript) fail(u *user, args ...string) result {
	u.t.Helper()
	r := st.run(u, args...)
	if r.Code == 0 {
		u.t.Fatalf("jit-ssh %s succeeded, want an error", strings.Join(args, " "))
	}
	return r
}

// apiErr keeps an API error's message.
func (st *secretTranscript) apiErr(where string, err error) {
	if err == nil {
		return
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		st.add(where+" (API error)", fmt.Appendf(nil, "%d %s %s", ae.Status, ae.Code, ae.Message))
	}
	st.add(where+" (error)", []byte(err.Error()))
}

// server adds a server's log, the raw bytes of its data dir (except the CA
// key file, which is the one place a private key belongs) and a text dump
// of every ledger table.
func (st *secretTranscript) server(t *testing.T, name string, s *server, keyFiles ...string) {
	t.Helper()
	st.add(name+" server log", []byte(s.Log()))
	st.dir(t, name+" data dir", s.DataDir, keyFiles...)
	st.add(name+" ledger dump", ledgerDump(t, filepath.Join(s.DataDir, "ledger.db")))
}

// dir adds every file under root except the skipped ones.
func (st *secretTranscript) dir(t *testing.T, name, root string, skip ...string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || slices.Contains(skip, path) || d.Type()&fs.ModeSocket != 0 {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		st.add(name+": "+path, b)
		return nil
	})
	if err != nil {
		t.Fatalf("reading %s: %v", root, err)
	}
}

// ledgerDump prints every row of every table of the ledger as text.
func ledgerDump(t *testing.T, path string) []byte {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatalf("dumping %s: %v", path, err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	total := 0
	for _, table := range tables {
		rows, err := db.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
		if err != nil {
			t.Fatalf("dumping %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s:", table)
			for i, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, " %s=%v", cols[i], v)
			}
			b.WriteByte('\n')
			total++
		}
		rows.Close()
	}
	if total == 0 {
		t.Fatalf("the ledger %s dumped no rows", path)
	}
	return []byte(b.String())
}

// secret is something that must appear nowhere.
type secret struct {
	name  string
	value string
}

// keySecrets returns the forms an ed25519 private key could leak in: its
// seed raw, in hex, and inside base64 text at any of the three byte
// alignments (an OpenSSH key file, a PEM block or JSON bytes).
func keySecrets(t *testing.T, name, path string) []secret {
	t.Helper()
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if ek, ok := k.(*ed25519.PrivateKey); ok {
		k = *ek
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		t.Fatalf("%s is a %T, want ed25519", path, k)
	}
	seed := ek.Seed()
	out := []secret{{name + " (seed, raw)", string(seed)}, {name + " (seed, hex)", hex.EncodeToString(seed)[:24]}}
	for shift := range 3 {
		b := append(make([]byte, shift), seed...)
		// From the fifth character on, the text depends on the seed only.
		out = append(out,
			secret{fmt.Sprintf("%s (seed, base64 at offset %d)", name, shift), base64.StdEncoding.EncodeToString(b)[4:28]},
			secret{fmt.Sprintf("%s (seed, base64url at offset %d)", name, shift), base64.RawURLEncoding.EncodeToString(b)[4:28]})
	}
	return out
}

func secretToken(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// TestSecretsNeverLeak runs the flows of three servers at --log-level
// debug and searches everything they and the CLI said or wrote for the
// secrets they handled:
//   - a file-signer server with static tokens: login with and without an
//     approval, reviews, audit, a wrong token;
//   - a Vault-signer server using a Vault token, with GitHub identity:
//     login, a sealed Vault, a GitHub outage, a wrong GitHub token;
//   - a Vault-signer server that logs in with AppRole: login and audit.
func TestSecretsNeverLeak(t *testing.T) {
	var st secretTranscript
	var secrets []secret
	addSecret := func(name, v string) string { secrets = append(secrets, secret{name, v}); return v }

	// 1. File signer, static identity.
	tok := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		tok[u] = addSecret("static token of "+u, secretToken("st-"+u+"-"))
	}
	wrong := addSecret("a wrong bearer token", secretToken("wrong-"))
	srvA := secretServer(t, fmt.Sprintf(`signer:
  type: file
  file: {key_file: %%DATA%%/ca_ed25519}
identity:
  type: static
  static:
    users:
      alice: {token: %s, teams: [backend]}
      bob: {token: %s, teams: [sre-leads]}
      carol: {token: %s, teams: [security]}
`, tok["alice"], tok["bob"], tok["carol"]))
	keyA := filepath.Join(srvA.DataDir, "ca_ed25519")
	caKey := keySecrets(t, "the file CA's private key", keyA)
	secrets = append(secrets, caKey...)
	// The search must be able to find the key: its own file holds it.
	if raw, _ := os.ReadFile(keyA); !slices.ContainsFunc(caKey, func(s secret) bool { return strings.Contains(string(raw), s.value) }) {
		t.Fatal("none of the forms searched for finds the CA key in its own file")
	}
	sockA := testenv.StartAgent(t)
	as := func(s *server, login, token, sock string) *user {
		u := s.as(t, login, sock)
		u.token = token
		st.users = append(st.users, u)
		return u
	}
	alice, bob, carol := as(srvA, "alice", tok["alice"], sockA), as(srvA, "bob", tok["bob"], ""), as(srvA, "carol", tok["carol"], "")
	st.ok(alice, "login", "staging", "--duration", "30m", "--reason", "secrets check")
	created := jsonLines[api.Request](t, st.ok(alice, "request", "create", "prod-db", "--duration", "30m", "--reason", "secrets check", "-o", "json").Stdout)
	if len(created) != 1 {
		t.Fatalf("request create printed %d requests", len(created))
	}
	st.ok(bob, "request", "list", "--reviewable")
	st.ok(bob, "review", created[0].ID, "--approve", "-m", "fine")
	st.ok(alice, "login", "prod-db")
	st.ok(alice, "status")
	certs := jsonLines[api.Certificate](t, st.ok(carol, "audit", "certs", "-o", "json").Stdout)
	if len(certs) != 2 {
		t.Fatalf("audit certs lists %d certificates, want 2", len(certs))
	}
	st.ok(carol, "audit", "events")
	st.ok(carol, "audit", "show", certs[0].Serial)
	st.ok(carol, "audit", "verify")
	st.fail(as(srvA, "mallory", wrong, ""), "request", "list")
	st.fail(bob, "review", "r-doesnotexist0000", "--approve", "-m", "x")
	st.ok(alice, "logout")
	c, _ := api.NewClient(srvA.URL, wrong)
	_, err := c.CreateRequest(context.Background(), api.CreateRequest{HostGroup: "staging", Reason: "x"})
	st.apiErr("wrong token, POST /v1/requests", err)

	// 2. Vault signer with a Vault token, GitHub identity.
	v := vaulttest.Start(t)
	addSecret("the Vault root token", v.Token)
	gh := ghstub.New(t)
	ghTok := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		ghTok[u] = addSecret("GitHub token of "+u, secretToken("gho_"))
		gh.AddUser(u, ghTok[u])
	}
	serverTok := addSecret("the server's GitHub token", secretToken("ghs_"))
	gh.AddUser("jit-ssh-bot", serverTok)
	gh.SetTeam("acme", "backend", "alice")
	gh.SetTeam("acme", "sre-leads", "bob")
	gh.SetTeam("acme", "security", "carol")
	wrongGH := addSecret("a wrong GitHub token", secretToken("gho_"))
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.Token)
	t.Setenv("JIT_SSH_SECRETS_GH_TOKEN", serverTok)
	github := fmt.Sprintf(`identity:
  type: github
  github: {api_url: %q, org: acme, token_env: JIT_SSH_SECRETS_GH_TOKEN, cache_ttl: 0s}
`, gh.APIURL())
	cfgB := secretConfig(t, "signer:\n  type: vault\n  vault: {mount: ssh, role: jit-ssh, timeout: 3s}\n"+github)
	setup := exec.Command(jitBinary(t), "vault", "setup", "--config", cfgB)
	out, err := setup.CombinedOutput()
	st.add("jit-ssh vault setup", out)
	if err != nil {
		t.Fatalf("vault setup: %v\n%s", err, out)
	}
	srvB := startServer(t, "--log-level", "debug", "--config", cfgB)
	srvB.DataDir = filepath.Join(filepath.Dir(cfgB), "data")
	sockB := testenv.StartAgent(t)
	aliceB, carolB := as(srvB, "alice", ghTok["alice"], sockB), as(srvB, "carol", ghTok["carol"], "")
	st.ok(aliceB, "login", "staging", "--duration", "30m", "--reason", "secrets check")
	v.Seal()
	st.fail(aliceB, "login", "staging")
	v.Unseal()
	gh.Fail(ghstub.Fail500)
	st.fail(aliceB, "login", "staging")
	gh.Fail(ghstub.FailNone)
	st.fail(as(srvB, "mallory", wrongGH, ""), "status")
	st.ok(aliceB, "login", "staging")
	st.ok(carolB, "audit", "certs")
	st.ok(carolB, "audit", "verify")

	// 3. Vault signer through AppRole (no VAULT_TOKEN in its environment).
	roleID, secretID := v.AppRole("jit-ssh-secrets", vault.Policy("ssh", "jit-ssh"),
		"2d1c0ffe-0000-4000-8000-000000000001", addSecret("the AppRole secret ID", "7f3e9b2a-5c4d-4e1f-9a8b-6c5d4e3f2a1b"))
	dirC := testenv.TempDir(t)
	roleFile, secretFile := filepath.Join(dirC, "role_id"), filepath.Join(dirC, "secret_id")
	if err := os.WriteFile(roleFile, []byte(roleID), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte(secretID), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", "")
	srvC := secretServer(t, fmt.Sprintf(`signer:
  type: vault
  vault:
    mount: ssh
    role: jit-ssh
    approle: {role_id_file: %s, secret_id_file: %s}
%s`, roleFile, secretFile, github))
	sockC := testenv.StartAgent(t)
	st.ok(as(srvC, "alice", ghTok["alice"], sockC), "login", "staging", "--duration", "30m", "--reason", "secrets check")
	st.ok(as(srvC, "carol", ghTok["carol"], ""), "audit", "verify")

	// Everything said and written.
	// A server whose CA key is in Vault may keep a key of its own for
	// signing ledger checkpoints; like the file CA key it belongs in its
	// file and nowhere else.
	var ckKeys []string
	for _, s := range []*server{srvB, srvC} {
		if p := filepath.Join(s.DataDir, "checkpoint_ed25519"); fileExists(p) {
			ckKeys = append(ckKeys, p)
			secrets = append(secrets, keySecrets(t, "the checkpoint key "+p, p)...)
		}
	}
	st.server(t, "file-signer", srvA, keyA)
	st.server(t, "vault-token", srvB, ckKeys...)
	st.server(t, "vault-approle", srvC, ckKeys...)
	for _, u := range st.users {
		st.dir(t, "CLI home of "+u.token[:4], u.home)
	}
	if !strings.Contains(srvA.Log(), `"level":"DEBUG"`) {
		t.Errorf("the file-signer server logged nothing at debug level:\n%s", srvA.Log())
	}

	// Patterns that are secret whatever their value: PEM private keys
	// (the OpenSSH header, also base64-encoded) and Vault service and
	// batch tokens (the AppRole login's token, which the test never sees).
	patterns := []struct {
		name string
		re   *regexp.Regexp
	}{
		{"a PEM private key", regexp.MustCompile(`PRIVATE KEY`)},
		{"an OpenSSH private key body", regexp.MustCompile(`b3BlbnNzaC1rZXktdjE`)},
		{"a Vault token", regexp.MustCompile(`\bhv[sb]\.[A-Za-z0-9_-]{20,}`)},
	}
	scanned := 0
	for _, p := range st.parts {
		scanned += len(p.data)
		for _, s := range secrets {
			if s.value != "" && strings.Contains(string(p.data), s.value) {
				t.Errorf("%s appears in %s", s.name, p.where)
			}
		}
		for _, pat := range patterns {
			if pat.re.Match(p.data) {
				t.Errorf("%s appears in %s: %q", pat.name, p.where, pat.re.Find(p.data))
			}
		}
	}
	t.Logf("searched %d outputs, logs, ledger dumps and files (%d bytes) for %d secrets and %d patterns: none found",
		len(st.parts), scanned, len(secrets), len(patterns))
}

// secretServer starts `jit-ssh serve --log-level debug` on a config with the
// given signer and identity, the dev groups and carol's team as auditors.
func secretServer(t *testing.T, signerAndIdentity string) *server {
	t.Helper()
	path := secretConfig(t, signerAndIdentity)
	s := startServer(t, "--log-level", "debug", "--config", path)
	s.DataDir = filepath.Join(filepath.Dir(path), "data")
	return s
}

// secretConfig writes a config with the given signer and identity, the dev
// groups and carol's team as auditors, and returns its path; the data dir
// is "data" next to it.
func secretConfig(t *testing.T, signerAndIdentity string) string {
	t.Helper()
	dir := testenv.TempDir(t)
	path := filepath.Join(dir, "config.yaml")
	yaml := strings.ReplaceAll(`listen: 127.0.0.1:0
data_dir: %DATA%
`+signerAndIdentity+`auditors: [security]
limits:
  requests: {per_minute: 0}
  certificates: {per_minute: 0}
  writes: {per_minute: 0}
host_groups:
  staging:
    principals: [staging]
    requesters: [backend]
    approvals_required: 0
    max_duration: 1h
    cert_ttl: 5m
  prod-db:
    principals: [prod-db]
    requesters: [backend]
    approvers: [sre-leads]
    approvals_required: 1
    max_duration: 1h
    cert_ttl: 5m
`, "%DATA%", filepath.Join(dir, "data"))
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
