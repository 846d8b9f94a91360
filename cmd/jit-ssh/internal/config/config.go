package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

// Config is the server configuration of SPEC section 4.
type Config struct {
	Listen        string                     `yaml:"listen"`
	TLS           *TLSConfig                 `yaml:"tls"`
	DataDir       string                     `yaml:"data_dir"`
	Signer        SignerConfig               `yaml:"signer"`
	Identity      IdentityConfig             `yaml:"identity"`
	Auditors      []string                   `yaml:"auditors"`
	Admins        []string                   `yaml:"admins"` // teams that may revoke anyone's access
	HostGroups    map[string]HostGroupConfig `yaml:"host_groups"`
	TrustedCAKeys []string                   `yaml:"trusted_ca_keys"` // previous CA keys hosts keep trusting during a rotation
	PendingTTL    Duration                   `yaml:"pending_ttl"`
	Notify        NotifyConfig               `yaml:"notify"`
	Limits        LimitsConfig               `yaml:"limits"`

	hash string // SHA-256 of the file (or of the built-in default)
}

// TLSConfig names the server's certificate and key files.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// SignerConfig selects the CA signer.
type SignerConfig struct {
	Type  string             `yaml:"type"`
	Vault *VaultSignerConfig `yaml:"vault"`
	File  *FileSignerConfig  `yaml:"file"`
}

// VaultSignerConfig: the SSH secrets engine mount and role. Address and
// credentials come from Vault's own environment variables.
type VaultSignerConfig struct {
	Mount     string   `yaml:"mount"`
	Role      string   `yaml:"role"`
	Timeout   Duration `yaml:"timeout"`   // per signing call; default 5s
	Address   string   `yaml:"address"`   // default VAULT_ADDR
	Namespace string   `yaml:"namespace"` // default VAULT_NAMESPACE
	// AppRole logs the server in with AppRole instead of VAULT_TOKEN.
	AppRole *AppRoleConfig `yaml:"approle"`
}

// AppRoleConfig is an AppRole login; the IDs are read from files (or the
// JIT_SSH_VAULT_ROLE_ID / _SECRET_ID environment variables), never from
// the config itself.
type AppRoleConfig struct {
	Mount        string `yaml:"mount"`
	RoleIDFile   string `yaml:"role_id_file"`
	SecretIDFile string `yaml:"secret_id_file"`
}

// FileSignerConfig: the CA private key file.
type FileSignerConfig struct {
	KeyFile string `yaml:"key_file"`
}

// IdentityConfig selects the identity provider.
type IdentityConfig struct {
	Type   string        `yaml:"type"`
	GitHub *GitHubConfig `yaml:"github"`
	Static *StaticConfig `yaml:"static"`
}

// GitHubConfig configures GitHub (or GitHub Enterprise Server) identity.
type GitHubConfig struct {
	APIURL   string   `yaml:"api_url"`
	Org      string   `yaml:"org"`
	TokenEnv string   `yaml:"token_env"`
	CacheTTL Duration `yaml:"cache_ttl"` // 0 written out turns caching off; unset means 30s

	cacheTTLSet bool // cache_ttl was present in the file
}

// NotifyConfig configures the optional outgoing webhook (Slack-compatible
// JSON) told when a request is created, reviewed, approved, denied or
// expires.
type NotifyConfig struct {
	WebhookURL string   `yaml:"webhook_url"` // https, or http to loopback; empty = off
	Timeout    Duration `yaml:"timeout"`     // per post; default 5s
}

// LimitsConfig is the per-identity rate limiting of the calls that write
// to the ledger: token buckets keyed by the authenticated login.
type LimitsConfig struct {
	Requests     RateConfig `yaml:"requests"`     // POST /v1/requests; default 10 a minute, burst 5
	Certificates RateConfig `yaml:"certificates"` // POST /v1/certificates; default 30 a minute, burst 10
	// Writes is shared by every call that writes to the ledger, refused
	// ones included (requests, edits, cancels, reviews, certificates,
	// revocations); default 120 a minute, burst 60.
	Writes RateConfig `yaml:"writes"`
}

// RateConfig is one token bucket: per_minute calls a minute on average, at
// most burst at once. per_minute: 0 turns the limit off.
type RateConfig struct {
	PerMinute *int `yaml:"per_minute"`
	Burst     *int `yaml:"burst"`
}

// Bounds of the limits block.
const (
	maxPerMinute = 6000
	maxBurst     = 1000
)

func (r *RateConfig) applyDefaults(perMinute, burst int) {
	if r.PerMinute == nil {
		r.PerMinute = &perMinute
	}
	if r.Burst == nil {
		r.Burst = &burst
	}
}

func (r RateConfig) validate(path string) []string {
	var p []string
	if r.PerMinute != nil && (*r.PerMinute < 0 || *r.PerMinute > maxPerMinute) {
		p = append(p, fmt.Sprintf("%s.per_minute: must be between 0 (no limit) and %d", path, maxPerMinute))
	}
	if r.Burst != nil && (*r.Burst < 1 || *r.Burst > maxBurst) {
		p = append(p, fmt.Sprintf("%s.burst: must be between 1 and %d", path, maxBurst))
	}
	return p
}

// StaticConfig is a fixed directory for dev mode and tests.
type StaticConfig struct {
	Users map[string]StaticUserConfig `yaml:"users"`
}

// StaticUserConfig is one static user.
type StaticUserConfig struct {
	Token string   `yaml:"token"`
	Teams []string `yaml:"teams"`
}

// HostGroupConfig is one host group's policy.
type HostGroupConfig struct {
	Principals        []string `yaml:"principals"`
	Requesters        []string `yaml:"requesters"`
	Approvers         []string `yaml:"approvers"`
	ApprovalsRequired *int     `yaml:"approvals_required"`
	MaxDuration       Duration `yaml:"max_duration"`
	CertTTL           Duration `yaml:"cert_ttl"`
	Extensions        []string `yaml:"extensions"`
	SourceAddress     []string `yaml:"source_address"`
	AllowedHours      string   `yaml:"allowed_hours"`
}

// Duration is a time.Duration written as "30s", "5m", "2h".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string. Its errors are *yaml.TypeError
// so that decoding goes on and every problem is reported.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration like 5m or 2h", n.Line)}}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration like 5m or 2h", n.Line, s)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// knownExtensions are the OpenSSH certificate extensions a policy may grant.
var knownExtensions = []string{
	"permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding",
	"permit-pty", "permit-user-rc", "no-touch-required", "verify-required",
}

// Limits on policy values.
const (
	maxCertTTL     = 24 * time.Hour
	maxGrant       = 7 * 24 * time.Hour
	maxApprovals   = 10
	maxConfigBytes = 1 << 20
)

// Compiled on first use: only config loading needs them, and every process
// of the binary (login, version, ...) would otherwise pay for them at start.
var (
	envNameRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })
	safePathRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_./-]{0,127}$`) })
)

// LoadConfig reads, decodes and validates a config file. Every problem is
// reported at once, each with its key path.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("config %s is larger than %d bytes", path, maxConfigBytes)
	}
	return ParseConfig(data)
}

// ParseConfig decodes and validates a config document. Unknown keys, values
// of the wrong type and every validation problem are reported together,
// each with its key path; only a YAML syntax error stops at once.
func ParseConfig(data []byte) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &ConfigError{Problems: []string{strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	var c Config
	keys := newKeyChecker()
	problems := []string{}
	if doc.Kind != 0 { // not an empty document
		keys.walk(&doc, reflect.TypeFor[Config](), "")
		problems = append(problems, keys.problems...)
		if err := doc.Decode(&c); err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				return nil, &ConfigError{Problems: []string{strings.TrimPrefix(err.Error(), "yaml: ")}}
			}
			for _, msg := range te.Errors {
				if !keys.reported(msg) {
					problems = append(problems, msg)
				}
			}
		}
	}
	sum := sha256.Sum256(data)
	c.hash = hex.EncodeToString(sum[:])
	c.applyDefaults()
	var ce *ConfigError
	if err := c.Validate(); errors.As(err, &ce) {
		for _, p := range ce.Problems {
			// A key whose value could not be read is reported once.
			if path, _, _ := strings.Cut(p, ": "); !keys.paths[path] {
				problems = append(problems, p)
			}
		}
	}
	if len(problems) > 0 {
		return nil, &ConfigError{Problems: problems}
	}
	return &c, nil
}

// ConfigError lists every problem found in a config.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string {
	return fmt.Sprintf("config has %d problem(s):\n  - %s", len(e.Problems), strings.Join(e.Problems, "\n  - "))
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:7443"
	}
	if c.Signer.Type == "file" {
		if c.Signer.File == nil {
			c.Signer.File = &FileSignerConfig{}
		}
		if c.Signer.File.KeyFile == "" && c.DataDir != "" {
			c.Signer.File.KeyFile = filepath.Join(c.DataDir, "ca_ed25519")
		}
	}
	if c.Signer.Type == "vault" && c.Signer.Vault != nil {
		if c.Signer.Vault.Mount == "" {
			c.Signer.Vault.Mount = "ssh"
		}
		if c.Signer.Vault.Role == "" {
			c.Signer.Vault.Role = "jit-ssh"
		}
	}
	if c.Identity.Type == "github" && c.Identity.GitHub != nil {
		g := c.Identity.GitHub
		if g.APIURL == "" {
			g.APIURL = "https://api.github.com/"
		}
		if g.TokenEnv == "" {
			g.TokenEnv = "JIT_SSH_GITHUB_TOKEN"
		}
		if g.CacheTTL == 0 && !g.cacheTTLSet {
			g.CacheTTL = Duration(30 * time.Second)
		}
	}
	c.Limits.Requests.applyDefaults(10, 5)
	c.Limits.Certificates.applyDefaults(30, 10)
	c.Limits.Writes.applyDefaults(120, 60)
	if c.PendingTTL == 0 {
		c.PendingTTL = Duration(approval.DefaultPendingTTL)
	}
}

// isLoopback reports whether a listen address binds only loopback.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Validate returns every problem with the config, joined, each with its key
// path.
func (c *Config) Validate() error {
	var p []string
	add := func(path, format string, args ...any) { p = append(p, path+": "+fmt.Sprintf(format, args...)) }

	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		add("listen", "%q must be host:port, like 127.0.0.1:7443", c.Listen)
	}
	if c.TLS == nil && !isLoopback(c.Listen) {
		add("tls", "required when listen (%s) is not a loopback address", c.Listen)
	}
	if c.TLS != nil && (c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		add("tls", "cert_file and key_file are both required")
	}
	if c.DataDir == "" {
		add("data_dir", "required (the ledger lives there)")
	}

	switch c.Signer.Type {
	case "file":
		if c.Signer.File == nil || c.Signer.File.KeyFile == "" {
			add("signer.file.key_file", "required")
		}
	case "vault":
		if c.Signer.Vault == nil {
			add("signer.vault", "required when signer.type is vault (mount, role)")
		} else {
			v := c.Signer.Vault
			if v.Timeout < 0 || time.Duration(v.Timeout) > time.Minute {
				add("signer.vault.timeout", "must be between 0 and 1m")
			}
			if !safePathRE().MatchString(v.Mount) {
				add("signer.vault.mount", "%q is not a Vault mount path", v.Mount)
			}
			if !safePathRE().MatchString(v.Role) {
				add("signer.vault.role", "%q is not a Vault role name", v.Role)
			}
			if v.Address != "" {
				if u, err := url.Parse(v.Address); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					add("signer.vault.address", "%q is not an http(s) URL", v.Address)
				}
			}
		}
	case "":
		add("signer.type", "required: vault or file")
	default:
		add("signer.type", "%q is not vault or file", c.Signer.Type)
	}

	switch c.Identity.Type {
	case "github":
		g := c.Identity.GitHub
		if g == nil {
			add("identity.github", "required when identity.type is github (org, api_url, token_env)")
			break
		}
		if g.Org == "" {
			add("identity.github.org", "required")
		}
		if u, err := url.Parse(g.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add("identity.github.api_url", "%q is not an http(s) URL", g.APIURL)
		} else if !api.SecureTransport(u) {
			add("identity.github.api_url", "%q: plain http would send tokens in the clear; use https (http is allowed only to loopback)", g.APIURL)
		}
		if !envNameRE().MatchString(g.TokenEnv) {
			add("identity.github.token_env", "%q is not an environment variable name", g.TokenEnv)
		}
		if g.CacheTTL < 0 || time.Duration(g.CacheTTL) > 10*time.Minute {
			add("identity.github.cache_ttl", "must be between 0 and 10m")
		}
	case "static":
		if !isLoopback(c.Listen) {
			add("identity.type", "static identity is for dev and tests only and is refused on a non-loopback listener (%s)", c.Listen)
		}
		if c.Identity.Static == nil || len(c.Identity.Static.Users) == 0 {
			add("identity.static.users", "at least one user is required")
			break
		}
		tokens := map[string]string{}
		for _, login := range sortedKeys(c.Identity.Static.Users) {
			u := c.Identity.Static.Users[login]
			path := "identity.static.users." + login
			if ca.CheckLogin(login) != nil {
				add(path, "%q is not a valid login", login)
			} else if ca.IsReservedLogin(login) {
				add(path, "%q is reserved for jit-ssh's own events; pick another login", login)
			}
			if len(u.Token) < 6 {
				add(path+".token", "must be at least 6 characters")
			} else if other, dup := tokens[u.Token]; dup {
				add(path+".token", "same token as %s", other)
			}
			tokens[u.Token] = login
			for i, t := range u.Teams {
				if ca.CheckTeam(t) != nil {
					add(fmt.Sprintf("%s.teams[%d]", path, i), "%q is not a valid team slug", t)
				}
			}
		}
	case "":
		add("identity.type", "required: github or static")
	default:
		add("identity.type", "%q is not github or static", c.Identity.Type)
	}

	for i, t := range c.Auditors {
		if ca.CheckTeam(t) != nil {
			add(fmt.Sprintf("auditors[%d]", i), "%q is not a valid team slug", t)
		}
	}
	for i, t := range c.Admins {
		if ca.CheckTeam(t) != nil {
			add(fmt.Sprintf("admins[%d]", i), "%q is not a valid team slug", t)
		}
	}
	for i, k := range c.TrustedCAKeys {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			add(fmt.Sprintf("trusted_ca_keys[%d]", i), "not a public key in authorized_keys form")
		}
	}
	p = append(p, c.Notify.validate()...)
	p = append(p, c.Limits.Requests.validate("limits.requests")...)
	p = append(p, c.Limits.Certificates.validate("limits.certificates")...)
	p = append(p, c.Limits.Writes.validate("limits.writes")...)
	if c.PendingTTL <= 0 {
		add("pending_ttl", "must be positive")
	}

	if len(c.HostGroups) == 0 {
		add("host_groups", "at least one host group is required")
	}
	for _, name := range sortedKeys(c.HostGroups) {
		p = append(p, c.HostGroups[name].validate("host_groups."+name, name)...)
	}
	if len(p) > 0 {
		return &ConfigError{Problems: p}
	}
	return nil
}

func (g HostGroupConfig) validate(path, name string) []string {
	var p []string
	add := func(key, format string, args ...any) { p = append(p, path+key+": "+fmt.Sprintf(format, args...)) }
	if ca.CheckGroup(name) != nil {
		add("", "%q is not a valid host group name (lowercase letters, digits, '.', '_', '-')", name)
	}
	if len(g.Principals) == 0 {
		add(".principals", "at least one principal is required")
	}
	for i, pr := range g.Principals {
		if ca.CheckPrincipal(pr) != nil {
			add(fmt.Sprintf(".principals[%d]", i), "%q is not a valid principal (letters, digits, '.', '_', '-')", pr)
		}
	}
	if len(g.Requesters) == 0 {
		add(".requesters", "at least one team is required")
	}
	for i, t := range g.Requesters {
		if ca.CheckTeam(t) != nil {
			add(fmt.Sprintf(".requesters[%d]", i), "%q is not a valid team slug", t)
		}
	}
	for i, t := range g.Approvers {
		if ca.CheckTeam(t) != nil {
			add(fmt.Sprintf(".approvers[%d]", i), "%q is not a valid team slug", t)
		}
	}
	switch n := g.ApprovalsRequired; {
	case n == nil:
		add(".approvals_required", "required (0 auto-approves requesters)")
	case *n < 0 || *n > maxApprovals:
		add(".approvals_required", "must be between 0 and %d", maxApprovals)
	case *n > 0 && len(g.Approvers) == 0:
		add(".approvers", "at least one team is required when approvals_required is %d", *n)
	}
	ttl, maxDur := time.Duration(g.CertTTL), time.Duration(g.MaxDuration)
	if ttl <= 0 || ttl > maxCertTTL {
		add(".cert_ttl", "must be between 1s and %s", maxCertTTL)
	}
	if maxDur < time.Minute || maxDur > maxGrant {
		add(".max_duration", "must be between 1m and %s", maxGrant)
	}
	if ttl > maxDur && maxDur > 0 {
		add(".cert_ttl", "%s is longer than max_duration %s", ttl, maxDur)
	}
	for i, e := range g.Extensions {
		if !slices.Contains(knownExtensions, e) {
			add(fmt.Sprintf(".extensions[%d]", i), "%q is not one of %s", e, strings.Join(knownExtensions, ", "))
		}
	}
	for i, a := range g.SourceAddress {
		if _, err := netip.ParsePrefix(a); err != nil {
			if _, err := netip.ParseAddr(a); err != nil {
				add(fmt.Sprintf(".source_address[%d]", i), "%q is not an address or CIDR", a)
			}
		}
	}
	if g.AllowedHours != "" {
		if _, err := approval.ParseHours(g.AllowedHours); err != nil {
			add(".allowed_hours", "%v", err)
		}
	}
	return p
}

// Policies compiles the host groups into approval policies.
func (c *Config) Policies() []*approval.Policy {
	var out []*approval.Policy
	for _, name := range sortedKeys(c.HostGroups) {
		g := c.HostGroups[name]
		p := &approval.Policy{
			Group: name, Principals: g.Principals, Requesters: g.Requesters, Approvers: g.Approvers,
			ApprovalsRequired: *g.ApprovalsRequired, MaxDuration: time.Duration(g.MaxDuration), CertTTL: time.Duration(g.CertTTL),
			Extensions: g.Extensions, SourceAddress: g.SourceAddress,
		}
		if g.AllowedHours != "" {
			p.AllowedHours, _ = approval.ParseHours(g.AllowedHours) // validated
		}
		out = append(out, p)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// DevConfig is the embedded default of serve --dev: the demo users and host
// groups the README's "Try it by hand" lists.
func DevConfig(dataDir, listen string) *Config {
	one, zero := 1, 0
	users := map[string]StaticUserConfig{}
	for login, team := range map[string]string{"alice": "backend", "erin": "backend", "bob": "sre-leads", "dave": "sre-leads", "carol": "security"} {
		users[login] = StaticUserConfig{Token: "dev-" + login, Teams: []string{team}}
	}
	c := &Config{
		Listen:   listen,
		DataDir:  dataDir,
		Signer:   SignerConfig{Type: "file", File: &FileSignerConfig{KeyFile: filepath.Join(dataDir, "ca_ed25519")}},
		Identity: IdentityConfig{Type: "static", Static: &StaticConfig{Users: users}},
		Auditors: []string{"security"},
		// No rate limits in dev mode: demos and the load and crash tests
		// built on it drive many logins as one user. A config file gets
		// the limits block's defaults.
		Limits: LimitsConfig{Requests: RateConfig{PerMinute: &zero}, Certificates: RateConfig{PerMinute: &zero}, Writes: RateConfig{PerMinute: &zero}},
		HostGroups: map[string]HostGroupConfig{
			"staging": {Principals: []string{"staging"}, Requesters: []string{"backend"}, ApprovalsRequired: &zero,
				MaxDuration: Duration(time.Hour), CertTTL: Duration(5 * time.Minute), Extensions: []string{"permit-pty"}},
			"prod-db": {Principals: []string{"prod-db"}, Requesters: []string{"backend"}, Approvers: []string{"sre-leads"}, ApprovalsRequired: &one,
				MaxDuration: Duration(time.Hour), CertTTL: Duration(5 * time.Minute), Extensions: []string{"permit-pty"}},
		},
	}
	c.applyDefaults()
	if b, err := yaml.Marshal(c); err == nil {
		sum := sha256.Sum256(b)
		c.hash = hex.EncodeToString(sum[:])
	}
	return c
}
