package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadOverrides(t *testing.T) {
	path := writeConfig(t, base)
	c, _, err := Load(path, Overrides{Listen: "127.0.0.1:0", DataDir: "/srv/jit"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:0" || c.DataDir != "/srv/jit" {
		t.Errorf("listen %q, data_dir %q; want the overrides", c.Listen, c.DataDir)
	}
	// The default CA key moves with the data dir ...
	if got, want := c.Signer.File.KeyFile, filepath.Join("/srv/jit", CAKeyFile); got != want {
		t.Errorf("signer.file.key_file = %q, want %q", got, want)
	}
	if got, want := c.LedgerPath(), filepath.Join("/srv/jit", "ledger.db"); got != want {
		t.Errorf("LedgerPath = %q, want %q", got, want)
	}
	if got, want := c.CheckpointKeyPath(), filepath.Join("/srv/jit", "checkpoint_ed25519"); got != want {
		t.Errorf("CheckpointKeyPath = %q, want %q", got, want)
	}
	// ... a key written elsewhere stays.
	own := strings.Replace(base, "signer: {type: file}", "signer: {type: file, file: {key_file: /etc/jit-ssh/ca}}", 1)
	c, _, err = Load(writeConfig(t, own), Overrides{DataDir: "/srv/jit"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Signer.File.KeyFile != "/etc/jit-ssh/ca" {
		t.Errorf("signer.file.key_file = %q, want the file's own", c.Signer.File.KeyFile)
	}
	// The overridden config is validated again.
	_, _, err = Load(path, Overrides{Listen: "0.0.0.0:7443"})
	if p := problemAt(problems(t, err), "tls"); !strings.Contains(p, "0.0.0.0:7443") {
		t.Errorf("--listen 0.0.0.0:7443 without tls: problems %v", err)
	}
	// The file as written is validated too.
	public := strings.Replace(base, "listen: 127.0.0.1:7443", "listen: 10.1.2.3:7443", 1)
	if _, _, err := Load(writeConfig(t, public), Overrides{Listen: "127.0.0.1:0"}); problemAt(problems(t, err), "tls") == "" {
		t.Errorf("a file listening in public without tls: %v, want a tls problem", err)
	}
}

func TestLoadDev(t *testing.T) {
	c, comp, err := LoadDev(Overrides{}, "/state", "/home/alice")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7443" || c.DataDir != filepath.Join("/state", "jit-ssh", "dev") {
		t.Errorf("dev listen %q, data dir %q", c.Listen, c.DataDir)
	}
	if len(comp.Policies) != 2 || comp.Policies[0].Group != "prod-db" || comp.Policies[1].Group != "staging" {
		t.Errorf("dev policies %+v, want prod-db and staging", comp.Policies)
	}
	if c.Hash() == "" {
		t.Errorf("dev config has no hash")
	}
	c, _, err = LoadDev(Overrides{Listen: "127.0.0.1:0", DataDir: "/tmp/d"}, "/state", "/home/alice")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:0" || c.DataDir != "/tmp/d" || c.Signer.File.KeyFile != filepath.Join("/tmp/d", CAKeyFile) {
		t.Errorf("dev with overrides: listen %q, data dir %q, key %q", c.Listen, c.DataDir, c.Signer.File.KeyFile)
	}
	if _, _, err := LoadDev(Overrides{Listen: "0.0.0.0:7443"}, "", "/home/alice"); problemAt(problems(t, err), "identity.type") == "" {
		t.Errorf("dev on 0.0.0.0: %v, want identity.type refused", err)
	}
}

func TestDevDataDir(t *testing.T) {
	for _, tt := range []struct{ xdg, home, want string }{
		{"/state", "/home/alice", filepath.Join("/state", "jit-ssh", "dev")},
		{"", "/home/alice", filepath.Join("/home/alice", ".local", "state", "jit-ssh", "dev")},
		{"", "", filepath.Join(os.TempDir(), "jit-ssh-dev")},
	} {
		if got := DevDataDir(tt.xdg, tt.home); got != tt.want {
			t.Errorf("DevDataDir(%q, %q) = %q, want %q", tt.xdg, tt.home, got, tt.want)
		}
	}
}

func TestGitHubToken(t *testing.T) {
	g := &GitHub{TokenEnv: "JIT_TEST_TOKEN"}
	env := map[string]string{"JIT_TEST_TOKEN": "  ghp_x \n"}
	if tok, err := g.Token(func(k string) string { return env[k] }); err != nil || tok != "ghp_x" {
		t.Errorf("Token = %q, %v; want the trimmed value", tok, err)
	}
	_, err := g.Token(func(string) string { return " " })
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("empty token: %v (%T), want an *Error", err, err)
	}
	want := "identity.github.token_env: the environment variable JIT_TEST_TOKEN is empty or unset; " +
		"set it to the server's GitHub token (read:org) before starting jit-ssh serve"
	if !slices.Equal(ce.Problems, []string{want}) {
		t.Errorf("problems %q, want %q", ce.Problems, want)
	}
}

func TestCompiledTrustedKeys(t *testing.T) {
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl old-ca"
	doc := strings.Replace(base, "data_dir: /var/lib/jit-ssh", "data_dir: /var/lib/jit-ssh\ntrusted_ca_keys: [\""+key+"\"]", 1)
	_, comp, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	if len(comp.TrustedCAKeys) != 1 || ca.Fingerprint(comp.TrustedCAKeys[0]) != ca.Fingerprint(want) {
		t.Errorf("trusted CA keys %v, want the one configured", comp.TrustedCAKeys)
	}
}

// TestProblemMessages pins the exact wording of the problems whose bound
// comes from a constant.
func TestProblemMessages(t *testing.T) {
	vault := strings.Replace(base, "signer: {type: file}", "signer: {type: vault, vault: {timeout: 2m}}", 1)
	github := strings.Replace(base, "  type: static\n  static: {users: {alice: {token: dev-alice, teams: [backend]}}}",
		"  type: github\n  github: {org: acme, cache_ttl: 1h}", 1)
	for _, tt := range []struct{ doc, path, want string }{
		{vault, "signer.vault.timeout", "signer.vault.timeout: must be between 0 and 1m"},
		{github, "identity.github.cache_ttl", "identity.github.cache_ttl: must be between 0 and 10m"},
		{base + "notify: {timeout: 2m}\n", "notify.timeout", "notify.timeout: must be between 0 (default 5s) and 1m0s"},
		{strings.Replace(base, "listen: 127.0.0.1:7443", "listen: x", 1), "listen", `listen: "x" must be host:port, like 127.0.0.1:7443`},
		{strings.Replace(base, "dev-alice", "short", 1), "identity.static.users.alice.token", "identity.static.users.alice.token: must be at least 6 characters"},
		{strings.Replace(base, "cert_ttl: 5m", "cert_ttl: 25h", 1), "host_groups.prod-db.cert_ttl", "host_groups.prod-db.cert_ttl: must be between 1s and 24h0m0s"},
		{strings.Replace(base, "max_duration: 1h", "max_duration: 169h", 1), "host_groups.prod-db.max_duration", "host_groups.prod-db.max_duration: must be between 1m and 168h0m0s"},
		{strings.Replace(base, "approvals_required: 1", "approvals_required: 11", 1), "host_groups.prod-db.approvals_required", "host_groups.prod-db.approvals_required: must be between 0 and 10"},
		{strings.Replace(base, "cert_ttl: 5m", "cert_ttl: 5m\n    extensions: [x]", 1), "host_groups.prod-db.extensions[0]",
			`host_groups.prod-db.extensions[0]: "x" is not one of permit-X11-forwarding, permit-agent-forwarding, permit-port-forwarding, permit-pty, permit-user-rc, no-touch-required, verify-required`},
	} {
		_, _, err := Parse([]byte(tt.doc))
		if got := problemAt(problems(t, err), tt.path); got != tt.want {
			t.Errorf("problem at %s = %q, want %q", tt.path, got, tt.want)
		}
	}
}

// TestAllowedHoursOnce: a bad allowed_hours is one problem, and a good one
// is compiled into the policy.
func TestAllowedHoursOnce(t *testing.T) {
	_, _, err := Parse([]byte(strings.Replace(base, "cert_ttl: 5m", "cert_ttl: 5m\n    allowed_hours: \"weekdays\"", 1)))
	n := 0
	for _, p := range problems(t, err) {
		if strings.HasPrefix(p, "host_groups.prod-db.allowed_hours: ") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d problems at allowed_hours, want 1: %v", n, err)
	}
	_, comp, err := Parse([]byte(strings.Replace(base, "cert_ttl: 5m", "cert_ttl: 5m\n    allowed_hours: \"Mon-Fri 07:00-20:00 UTC\"", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if comp.Policies[0].AllowedHours == nil {
		t.Errorf("allowed_hours not compiled into the policy")
	}
}
