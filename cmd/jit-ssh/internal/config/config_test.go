package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// problems returns the problems of an *Error, failing the test for any
// other error.
func problems(t *testing.T, err error) []string {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v (%T), want a *Error", err, err)
	}
	if len(ce.Problems) == 0 {
		t.Fatalf("Error with no problems")
	}
	return ce.Problems
}

// problemAt returns the problem reported at key path, or "".
func problemAt(ps []string, path string) string {
	for _, p := range ps {
		if strings.HasPrefix(p, path+": ") {
			return p
		}
	}
	return ""
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "config", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSpecExample(t *testing.T) {
	c, comp, err := Parse(readFixture(t, "spec-example.yaml"))
	if err != nil {
		t.Fatalf("the SPEC example does not parse: %v", err)
	}
	g := c.HostGroups["prod-db"]
	checks := []struct {
		key       string
		got, want any
	}{
		{"listen", c.Listen, "127.0.0.1:7443"},
		{"tls.cert_file", c.TLS.CertFile, "/etc/jit-ssh/tls.crt"},
		{"tls.key_file", c.TLS.KeyFile, "/etc/jit-ssh/tls.key"},
		{"data_dir", c.DataDir, "/var/lib/jit-ssh"},
		{"signer.type", c.Signer.Type, "vault"},
		{"signer.vault.mount", c.Signer.Vault.Mount, "ssh"},
		{"signer.vault.role", c.Signer.Vault.Role, "jit-ssh"},
		{"signer.file.key_file", c.Signer.File.KeyFile, "/var/lib/jit-ssh/ca_ed25519"},
		{"identity.type", c.Identity.Type, "github"},
		{"identity.github.api_url", c.Identity.GitHub.APIURL, "https://api.github.com/"},
		{"identity.github.org", c.Identity.GitHub.Org, "acme"},
		{"identity.github.token_env", c.Identity.GitHub.TokenEnv, "JIT_SSH_GITHUB_TOKEN"},
		{"identity.github.cache_ttl", time.Duration(c.Identity.GitHub.CacheTTL), 30 * time.Second},
		{"auditors", strings.Join(c.Auditors, ","), "security"},
		{"principals", strings.Join(g.Principals, ","), "prod-db"},
		{"requesters", strings.Join(g.Requesters, ","), "backend"},
		{"approvers", strings.Join(g.Approvers, ","), "sre-leads"},
		{"approvals_required", *g.ApprovalsRequired, 1},
		{"max_duration", time.Duration(g.MaxDuration), 2 * time.Hour},
		{"cert_ttl", time.Duration(g.CertTTL), 5 * time.Minute},
		{"extensions", strings.Join(g.Extensions, ","), "permit-pty"},
		{"source_address", strings.Join(g.SourceAddress, ","), "10.0.0.0/8"},
		{"allowed_hours", g.AllowedHours, "Mon-Fri 07:00-20:00 UTC"},
		{"pending_ttl default", time.Duration(c.PendingTTL), 24 * time.Hour},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.key, ch.got, ch.want)
		}
	}

	ps := comp.Policies
	if len(ps) != 1 {
		t.Fatalf("Policies = %d policies, want 1", len(ps))
	}
	p := ps[0]
	if p.Group != "prod-db" || p.ApprovalsRequired != 1 || p.MaxDuration != 2*time.Hour || p.CertTTL != 5*time.Minute || p.AllowedHours == nil {
		t.Errorf("policy = %+v", p)
	}
	if p.AllowedHours != nil && (!p.AllowedHours.Contains(time.Date(2025, 6, 2, 12, 0, 0, 0, time.UTC)) || p.AllowedHours.Contains(time.Date(2025, 6, 7, 12, 0, 0, 0, time.UTC))) {
		t.Errorf("allowed_hours compiled wrong: Monday noon / Saturday noon")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, readFixture(t, "spec-example.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(good, Overrides{}); err != nil {
		t.Errorf("Load(spec example) = %v", err)
	}
	if _, _, err := Load(filepath.Join(dir, "missing.yaml"), Overrides{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing file) = %v, want an error wrapping os.ErrNotExist", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(strings.Repeat("# padding\n", 200_000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(big, Overrides{}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(2 MB file) = %v, want a size error", err)
	}
}

func TestDev(t *testing.T) {
	dir := t.TempDir()
	c := Dev(dir, "127.0.0.1:7443")
	if _, err := c.Validate(); err != nil {
		t.Fatalf("Dev does not validate: %v", err)
	}
	if c.Signer.Type != "file" || c.Signer.File.KeyFile != filepath.Join(dir, "ca_ed25519") {
		t.Errorf("dev signer = %+v, want a file key under the data dir", c.Signer)
	}
	wantUsers := map[string]string{"alice": "backend", "erin": "backend", "bob": "sre-leads", "dave": "sre-leads", "carol": "security"}
	if len(c.Identity.Static.Users) != len(wantUsers) {
		t.Errorf("dev directory has %d users, want %d", len(c.Identity.Static.Users), len(wantUsers))
	}
	for login, team := range wantUsers {
		u := c.Identity.Static.Users[login]
		if u.Token != "dev-"+login || !slices.Equal(u.Teams, []string{team}) {
			t.Errorf("dev user %s = %+v, want token dev-%s, team %s", login, u, login, team)
		}
	}
	if !slices.Equal(c.Auditors, []string{"security"}) {
		t.Errorf("dev auditors = %q, want [security]", c.Auditors)
	}
	for name, want := range map[string]int{"staging": 0, "prod-db": 1} {
		g, ok := c.HostGroups[name]
		if !ok {
			t.Errorf("dev host group %s missing", name)
			continue
		}
		if *g.ApprovalsRequired != want || time.Duration(g.CertTTL) != 5*time.Minute || time.Duration(g.MaxDuration) != time.Hour ||
			!slices.Equal(g.Principals, []string{name}) || !slices.Equal(g.Requesters, []string{"backend"}) {
			t.Errorf("dev host group %s = %+v", name, g)
		}
	}
	if g := c.HostGroups["prod-db"]; !slices.Equal(g.Approvers, []string{"sre-leads"}) {
		t.Errorf("dev prod-db approvers = %q, want [sre-leads]", g.Approvers)
	}

	// The same directory on a public listener is refused.
	_, err := Dev(dir, "0.0.0.0:7443").Validate()
	ps := problems(t, err)
	if p := problemAt(ps, "identity.type"); !strings.Contains(p, "loopback") {
		t.Errorf("dev config on 0.0.0.0: problems %q, want identity.type refused on a non-loopback listener", ps)
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	ps := problems(t, parseErr(t, readFixture(t, "many-problems.yaml")))
	want := []string{
		"tls",
		"data_dir",
		"signer.type",
		"identity.type",
		"identity.static.users.alice.token",
		"identity.static.users.alice.teams[0]",
		"identity.static.users.bob smith",
		"auditors[0]",
		"host_groups.prod-db.principals[0]",
		"host_groups.prod-db.requesters",
		"host_groups.prod-db.approvals_required",
		"host_groups.prod-db.cert_ttl",
		"host_groups.prod-db.extensions[0]",
		"host_groups.prod-db.source_address[0]",
		"host_groups.prod-db.allowed_hours",
		"host_groups.Bad_Group",
		"host_groups.Bad_Group.approvals_required",
	}
	for _, path := range want {
		if problemAt(ps, path) == "" {
			t.Errorf("no problem reported at %s", path)
		}
	}
	if len(ps) < len(want) {
		t.Errorf("%d problems reported, want at least %d:\n%s", len(ps), len(want), strings.Join(ps, "\n"))
	}
	if p := problemAt(ps, "identity.type"); !strings.Contains(p, "0.0.0.0:7443") {
		t.Errorf("identity.type problem %q should name the listener", p)
	}
	// cert_ttl is both too long and longer than max_duration.
	n := 0
	for _, p := range ps {
		if strings.HasPrefix(p, "host_groups.prod-db.cert_ttl: ") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d problems at host_groups.prod-db.cert_ttl, want 2 (over 24h, longer than max_duration)", n)
	}
	if t.Failed() {
		t.Logf("problems:\n%s", strings.Join(ps, "\n"))
	}
}

// parseErr returns Parse's error, failing if the config was accepted.
func parseErr(t *testing.T, data []byte) error {
	t.Helper()
	c, comp, err := Parse(data)
	if err == nil {
		t.Fatalf("Parse accepted %+v", c)
	}
	if c != nil || comp != nil {
		t.Errorf("Parse returned a config alongside an error")
	}
	return err
}

func TestConfigReportsUnknownKeysAndBadDurationsWithEverythingElse(t *testing.T) {
	ps := problems(t, parseErr(t, readFixture(t, "decode-problems.yaml")))
	for _, c := range []struct{ path, mention string }{
		{"lisen", "unknown"},
		{"signer.fiel", "unknown"},
		{"identity.static.users.alice.admin", "unknown"},
		{"host_groups.prod-db.certttl", "unknown"},
		{"host_groups.prod-db.max_duration", "2 hours"},
		{"host_groups.staging.cert_ttl", "duration"},
		{"auditors[0]", "team"}, // a validation problem, reported alongside
	} {
		p := problemAt(ps, c.path)
		if p == "" {
			t.Errorf("no problem reported at %s", c.path)
		} else if !strings.Contains(p, c.mention) {
			t.Errorf("problem %q does not mention %q", p, c.mention)
		}
	}
	// A bad duration is one problem, not also "must be between".
	for _, path := range []string{"host_groups.prod-db.max_duration", "host_groups.staging.cert_ttl"} {
		n := 0
		for _, p := range ps {
			if strings.HasPrefix(p, path+": ") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d problems at %s, want 1", n, path)
		}
	}
	if t.Failed() {
		t.Logf("problems:\n%s", strings.Join(ps, "\n"))
	}
}

// base is a valid config the table below breaks one key at a time.
const base = `
listen: 127.0.0.1:7443
data_dir: /var/lib/jit-ssh
signer: {type: file}
identity:
  type: static
  static: {users: {alice: {token: dev-alice, teams: [backend]}}}
host_groups:
  prod-db:
    principals: [prod-db]
    requesters: [backend]
    approvers: [sre-leads]
    approvals_required: 1
    max_duration: 1h
    cert_ttl: 5m
`

func TestConfigProblems(t *testing.T) {
	if _, _, err := Parse([]byte(base)); err != nil {
		t.Fatalf("base config: %v", err)
	}
	tests := []struct {
		name     string
		old, new string // replace old with new in base
		path     string
		mention  string
	}{
		{"duration with a bad unit", "cert_ttl: 5m", "cert_ttl: 5x", "host_groups.prod-db.cert_ttl", "5x"},
		{"duration without a unit", "cert_ttl: 5m", "cert_ttl: 300", "host_groups.prod-db.cert_ttl", "300"},
		{"duration as a list", "cert_ttl: 5m", "cert_ttl: [5m]", "host_groups.prod-db.cert_ttl", "duration"},
		{"negative duration", "cert_ttl: 5m", "cert_ttl: -5m", "host_groups.prod-db.cert_ttl", "between"},
		{"grant too long", "max_duration: 1h", "max_duration: 200h", "host_groups.prod-db.max_duration", "between"},
		{"grant too short", "max_duration: 1h", "max_duration: 30s", "host_groups.prod-db.max_duration", "between"},
		{"cert outlives grant", "cert_ttl: 5m", "cert_ttl: 2h", "host_groups.prod-db.cert_ttl", "max_duration"},
		{"approvals missing", "    approvals_required: 1\n", "", "host_groups.prod-db.approvals_required", "required"},
		{"approvals not a number", "approvals_required: 1", "approvals_required: one", "host_groups.prod-db.approvals_required", "one"},
		{"approvals negative", "approvals_required: 1", "approvals_required: -1", "host_groups.prod-db.approvals_required", "between"},
		{"approvals without approvers", "    approvers: [sre-leads]\n", "", "host_groups.prod-db.approvers", "required"},
		{"no principals", "principals: [prod-db]", "principals: []", "host_groups.prod-db.principals", "principal"},
		{"principal injection", "principals: [prod-db]", `principals: [prod-db, "root\nAuthorizedKeysFile /tmp/x"]`, "host_groups.prod-db.principals[1]", "principal"},
		{"bad group name", "  prod-db:", "  prod db:", "host_groups.prod db", "host group"},
		{"bad requester team", "requesters: [backend]", "requesters: [Back End]", "host_groups.prod-db.requesters[0]", "team"},
		{"bad approver team", "approvers: [sre-leads]", "approvers: [sre-leads, ../x]", "host_groups.prod-db.approvers[1]", "team"},
		{"unknown extension", "cert_ttl: 5m", "cert_ttl: 5m\n    extensions: [permit-pty, permit-root]", "host_groups.prod-db.extensions[1]", "permit-root"},
		{"bad source address", "cert_ttl: 5m", "cert_ttl: 5m\n    source_address: [10.0.0.0/8, example.com]", "host_groups.prod-db.source_address[1]", "example.com"},
		{"bad allowed hours", "cert_ttl: 5m", "cert_ttl: 5m\n    allowed_hours: \"weekdays\"", "host_groups.prod-db.allowed_hours", "weekdays"},
		{"no host groups", "host_groups:", "other_groups:", "host_groups", "at least one"},
		{"listen without port", "listen: 127.0.0.1:7443", "listen: 127.0.0.1", "listen", "host:port"},
		{"tls missing on a public listener", "listen: 127.0.0.1:7443", "listen: 10.1.2.3:7443", "tls", "loopback"},
		{"static identity on a public listener", "listen: 127.0.0.1:7443", "listen: \"[::]:7443\"\ntls: {cert_file: a, key_file: b}", "identity.type", "loopback"},
		{"tls half configured", "listen: 127.0.0.1:7443", "listen: 127.0.0.1:7443\ntls: {cert_file: a}", "tls", "key_file"},
		{"signer type missing", "signer: {type: file}", "signer: {}", "signer.type", "required"},
		{"signer type unknown", "signer: {type: file}", "signer: {type: kms}", "signer.type", "kms"},
		{"file signer without a key", "data_dir: /var/lib/jit-ssh\nsigner: {type: file}", "data_dir: /var/lib/jit-ssh\nsigner: {type: file, file: {key_file: \"\"}}\n", "", ""},
		{"vault signer without settings", "signer: {type: file}", "signer: {type: vault}", "signer.vault", "required"},
		{"identity type unknown", "type: static", "type: ldap", "identity.type", "ldap"},
		{"github without org", "  type: static\n  static: {users: {alice: {token: dev-alice, teams: [backend]}}}", "  type: github\n  github: {api_url: https://ghe.example.com/api/v3/}", "identity.github.org", "required"},
		{"github bad url", "  type: static\n  static: {users: {alice: {token: dev-alice, teams: [backend]}}}", "  type: github\n  github: {org: acme, api_url: \"ftp://x\"}", "identity.github.api_url", "ftp://x"},
		{"github cache too long", "  type: static\n  static: {users: {alice: {token: dev-alice, teams: [backend]}}}", "  type: github\n  github: {org: acme, cache_ttl: 1h}", "identity.github.cache_ttl", "10m"},
		{"github token env", "  type: static\n  static: {users: {alice: {token: dev-alice, teams: [backend]}}}", "  type: github\n  github: {org: acme, token_env: \"A-B\"}", "identity.github.token_env", "A-B"},
		{"static without users", "static: {users: {alice: {token: dev-alice, teams: [backend]}}}", "static: {users: {}}", "identity.static.users", "at least one"},
		{"static user named like the server", "alice: {token: dev-alice, teams: [backend]}", "alice: {token: dev-alice, teams: [backend]}, jit-ssh: {token: dev-jit-ssh}", "identity.static.users.jit-ssh", "reserved"},
		{"static user named like the server, in capitals", "alice: {token: dev-alice, teams: [backend]}", "alice: {token: dev-alice, teams: [backend]}, JIT-SSH: {token: dev-jit-ssh}", "identity.static.users.JIT-SSH", "reserved"},
		{"duplicate static tokens", "alice: {token: dev-alice, teams: [backend]}", "alice: {token: dev-alice, teams: [backend]}, erin: {token: dev-alice}", "identity.static.users.erin.token", "alice"},
		{"bad trusted CA key", "data_dir: /var/lib/jit-ssh", "data_dir: /var/lib/jit-ssh\ntrusted_ca_keys: [\"ssh-ed25519 nope\"]", "trusted_ca_keys[0]", "public key"},
		{"bad pending_ttl", "data_dir: /var/lib/jit-ssh", "data_dir: /var/lib/jit-ssh\npending_ttl: -1h", "pending_ttl", "positive"},
		{"unknown top-level key", "data_dir: /var/lib/jit-ssh", "data_dir: /var/lib/jit-ssh\ndatadir: /tmp", "datadir", "unknown"},
		{"unknown host group key", "cert_ttl: 5m", "cert_ttl: 5m\n    principal: [root]", "host_groups.prod-db.principal", "unknown"},
		{"unknown key in a merged mapping", "  prod-db:\n", "  base: &base\n    principals: [x]\n    principles: [y]\n  prod-db:\n    <<: *base\n", "host_groups.base.principles", "unknown"},
		{"principals not a list", "principals: [prod-db]", "principals: {a: b}", "host_groups.prod-db.principals", "list"},
		{"listen as a list", "listen: 127.0.0.1:7443", "listen: [127.0.0.1:7443]", "listen", "single value"},
		{"host group not a mapping", "host_groups:\n", "host_groups:\n  staging: yes\n", "host_groups.staging", "mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(base, tt.old) {
				t.Fatalf("base config has no %q", tt.old)
			}
			doc := strings.Replace(base, tt.old, tt.new, 1)
			if tt.path == "" {
				// Defaults fill the key file from data_dir.
				c, _, err := Parse([]byte(doc))
				if err != nil {
					t.Fatal(err)
				}
				if c.Signer.File.KeyFile != "/var/lib/jit-ssh/ca_ed25519" {
					t.Errorf("signer.file.key_file = %q, want the data_dir default", c.Signer.File.KeyFile)
				}
				return
			}
			ps := problems(t, parseErr(t, []byte(doc)))
			p := problemAt(ps, tt.path)
			if p == "" {
				t.Fatalf("no problem at %s; problems:\n%s", tt.path, strings.Join(ps, "\n"))
			}
			if !strings.Contains(p, tt.mention) {
				t.Errorf("problem %q does not mention %q", p, tt.mention)
			}
		})
	}
}

func TestConfigEmptyAndMalformed(t *testing.T) {
	t.Run("empty document lists the required keys", func(t *testing.T) {
		ps := problems(t, parseErr(t, []byte("")))
		for _, path := range []string{"data_dir", "signer.type", "identity.type", "host_groups"} {
			if problemAt(ps, path) == "" {
				t.Errorf("no problem at %s; problems:\n%s", path, strings.Join(ps, "\n"))
			}
		}
	})
	t.Run("syntax error names the line", func(t *testing.T) {
		ps := problems(t, parseErr(t, []byte("listen: 127.0.0.1:7443\nhost_groups: [\n")))
		if !strings.Contains(strings.Join(ps, "\n"), "line") {
			t.Errorf("syntax error %q does not name a line", ps)
		}
	})
	t.Run("error message lists every problem", func(t *testing.T) {
		err := parseErr(t, readFixture(t, "many-problems.yaml"))
		ps := problems(t, err)
		for _, p := range ps {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("Error() lacks problem %q", p)
			}
		}
	})
}

func TestConfigMergeKeys(t *testing.T) {
	doc := strings.Replace(base, "host_groups:\n", `host_groups:
  staging: &defaults
    principals: [staging]
    requesters: [backend]
    approvals_required: 0
    max_duration: 1h
    cert_ttl: 5m
`, 1)
	doc = strings.Replace(doc, "  prod-db:\n", "  prod-db:\n    <<: *defaults\n", 1)
	c, _, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("config with a YAML merge key: %v", err)
	}
	if g := c.HostGroups["prod-db"]; *g.ApprovalsRequired != 1 || !slices.Equal(g.Principals, []string{"prod-db"}) {
		t.Errorf("prod-db = %+v; want its own keys to win over the merged defaults", g)
	}
}
