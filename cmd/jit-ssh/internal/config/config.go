package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Server is the server configuration of SPEC section 4.
type Server struct {
	Listen        string               `yaml:"listen"`
	TLS           *TLS                 `yaml:"tls"`
	DataDir       string               `yaml:"data_dir"`
	Signer        Signer               `yaml:"signer"`
	Identity      Identity             `yaml:"identity"`
	Auditors      []string             `yaml:"auditors"`
	Admins        []string             `yaml:"admins"` // teams that may revoke anyone's access
	HostGroups    map[string]HostGroup `yaml:"host_groups"`
	TrustedCAKeys []string             `yaml:"trusted_ca_keys"` // previous CA keys hosts keep trusting during a rotation
	PendingTTL    Duration             `yaml:"pending_ttl"`
	Notify        Notify               `yaml:"notify"`
	Limits        Limits               `yaml:"limits"`
	// WorkloadIdentity lets CI jobs request host groups with their OIDC
	// tokens (workloads.go).
	WorkloadIdentity WorkloadIdentity `yaml:"workload_identity,omitempty"`
	Ledger           Ledger           `yaml:"ledger"`

	hash string // SHA-256 of the file (or of the built-in default)
}

// TLS names the server's certificate and key files.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Signer selects the CA signer.
type Signer struct {
	Type  string       `yaml:"type"`
	Vault *VaultSigner `yaml:"vault"`
	File  *FileSigner  `yaml:"file"`
}

// VaultSigner is the SSH secrets engine mount and role. Address and
// credentials come from Vault's own environment variables.
type VaultSigner struct {
	Mount     string   `yaml:"mount"`
	Role      string   `yaml:"role"`
	Timeout   Duration `yaml:"timeout"`   // per signing call; default vault.DefaultTimeout
	Address   string   `yaml:"address"`   // default VAULT_ADDR
	Namespace string   `yaml:"namespace"` // default VAULT_NAMESPACE
	// AppRole logs the server in with AppRole instead of VAULT_TOKEN.
	AppRole *AppRole `yaml:"approle"`
}

// AppRole is an AppRole login; the IDs are read from files (or the
// JIT_SSH_VAULT_ROLE_ID / _SECRET_ID environment variables), never from
// the config itself.
type AppRole struct {
	Mount        string `yaml:"mount"`
	RoleIDFile   string `yaml:"role_id_file"`
	SecretIDFile string `yaml:"secret_id_file"`
}

// FileSigner is the CA private key file.
type FileSigner struct {
	KeyFile string `yaml:"key_file"`
}

// Identity selects the identity provider.
type Identity struct {
	Type   string  `yaml:"type"`
	GitHub *GitHub `yaml:"github"`
	Static *Static `yaml:"static"`
}

// GitHub configures GitHub (or GitHub Enterprise Server) identity.
type GitHub struct {
	APIURL   string   `yaml:"api_url"`
	Org      string   `yaml:"org"`
	TokenEnv string   `yaml:"token_env"`
	CacheTTL Duration `yaml:"cache_ttl"` // 0 written out turns caching off; unset means github.DefaultCacheTTL

	cacheTTLSet bool // cache_ttl was present in the file
}

// Notify configures the optional outgoing webhook (Slack-compatible JSON)
// told when a request is created, reviewed, approved, denied or expires.
type Notify struct {
	WebhookURL string   `yaml:"webhook_url"` // https, or http to loopback; empty = off
	Timeout    Duration `yaml:"timeout"`     // per post; default notify.DefaultTimeout
}

// Limits is the per-identity rate limiting of the calls that write to the
// ledger: token buckets keyed by the authenticated login. The defaults are
// api.DefaultLimits.
type Limits struct {
	Requests     Rate `yaml:"requests"`     // POST /v1/requests
	Certificates Rate `yaml:"certificates"` // POST /v1/certificates
	// Writes is shared by every call that writes to the ledger, refused
	// ones included (requests, edits, cancels, reviews, certificates,
	// revocations).
	Writes Rate `yaml:"writes"`
}

// Rate is one token bucket: per_minute calls a minute on average, at most
// burst at once. per_minute: 0 turns the limit off.
type Rate struct {
	PerMinute *int `yaml:"per_minute"`
	Burst     *int `yaml:"burst"`
}

// Ledger selects the ledger backend (SPEC section 4b).
type Ledger struct {
	// Type is sqlite (the default: LedgerFile in data_dir, one server per
	// file) or postgres.
	Type     string          `yaml:"type"`
	Postgres *PostgresLedger `yaml:"postgres"`
}

// PostgresLedger is the PostgreSQL ledger. The DSN, which may hold a
// password, is read from the environment variable dsn_env, never from the
// config itself.
type PostgresLedger struct {
	DSNEnv   string `yaml:"dsn_env"`   // default DefaultPostgresDSNEnv
	MaxConns int    `yaml:"max_conns"` // connection pool size; default postgres.DefaultMaxConns
}

// The ledger types.
const (
	LedgerSQLite   = "sqlite"
	LedgerPostgres = "postgres"
)

// DSN returns the ledger's PostgreSQL DSN from the environment variable
// dsn_env, read through getenv. An empty or unset variable is an *Error at
// ledger.postgres.dsn_env saying what to set.
func (p *PostgresLedger) DSN(getenv func(string) string) (string, error) {
	dsn := strings.TrimSpace(getenv(p.DSNEnv))
	if dsn == "" {
		return "", &Error{Problems: []string{"ledger.postgres.dsn_env: the environment variable " + p.DSNEnv +
			" is empty or unset; set it to the ledger database's URL (postgres://user@host:5432/db?sslmode=verify-full) before starting jit-ssh serve"}}
	}
	return dsn, nil
}

// Static is a fixed directory for dev mode and tests.
type Static struct {
	Users map[string]StaticUser `yaml:"users"`
}

// StaticUser is one static user.
type StaticUser struct {
	Token string   `yaml:"token"`
	Teams []string `yaml:"teams"`
}

// HostGroup is one host group's policy.
type HostGroup struct {
	Principals        []string `yaml:"principals"`
	Requesters        []string `yaml:"requesters"`
	Approvers         []string `yaml:"approvers"`
	ApprovalsRequired *int     `yaml:"approvals_required"`
	MaxDuration       Duration `yaml:"max_duration"`
	CertTTL           Duration `yaml:"cert_ttl"`
	Extensions        []string `yaml:"extensions"`
	SourceAddress     []string `yaml:"source_address"`
	AllowedHours      string   `yaml:"allowed_hours"`
	// Workloads are the CI jobs that may request the group (workloads.go).
	Workloads []Workload `yaml:"workloads,omitempty"`
	// BreakGlass, when present, lets its teams take a grant without an
	// approver in an emergency (SPEC section 4c).
	BreakGlass *BreakGlass `yaml:"break_glass"`
}

// BreakGlass is a host group's break-glass policy.
type BreakGlass struct {
	Teams         []string `yaml:"teams"`          // who may break glass; each must be a requester team
	MaxDuration   Duration `yaml:"max_duration"`   // grant length cap, at most the group's max_duration
	ReviewWithin  Duration `yaml:"review_within"`  // the follow-up review is due within this
	ReasonPattern string   `yaml:"reason_pattern"` // optional regular expression the reason must match
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

// UnmarshalYAML decodes the github block and notes whether cache_ttl was
// written, so that an explicit 0 (no caching) differs from unset (the
// default). Unknown keys are reported by the key checker.
func (g *GitHub) UnmarshalYAML(n *yaml.Node) error {
	type plain GitHub
	err := n.Decode((*plain)(g))
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "cache_ttl" {
			g.cacheTTLSet = true
		}
	}
	return err
}

// Token returns the server's GitHub token from the environment variable
// token_env, read through getenv. An empty or unset variable is an *Error
// at identity.github.token_env saying what to set.
func (g *GitHub) Token(getenv func(string) string) (string, error) {
	token := strings.TrimSpace(getenv(g.TokenEnv))
	if token == "" {
		return "", &Error{Problems: []string{"identity.github.token_env: the environment variable " + g.TokenEnv +
			" is empty or unset; set it to the server's GitHub token (read:org) before starting jit-ssh serve"}}
	}
	return token, nil
}

// Hash is the hex SHA-256 of the config file, or of the built-in default
// written out as YAML: what the config.loaded event records.
func (c *Server) Hash() string { return c.hash }

// Error lists every problem found in a config, each with its key path.
type Error struct{ Problems []string }

// Error lists the problems, one a line.
func (e *Error) Error() string {
	return fmt.Sprintf("config has %d problem(s):\n  - %s", len(e.Problems), strings.Join(e.Problems, "\n  - "))
}

// MaxBytes bounds the size of a config file.
const MaxBytes = 1 << 20

// Overrides are the settings the command line gives over the config (flags
// win over the file). Empty fields override nothing.
type Overrides struct {
	Listen  string // --listen
	DataDir string // --data-dir
}

// Load reads, decodes and validates a config file, then applies the
// overrides and validates again if they changed anything. Every problem is
// reported at once, each with its key path.
func Load(path string, o Overrides) (*Server, *Compiled, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading config: %w", err)
	}
	if len(data) > MaxBytes {
		return nil, nil, fmt.Errorf("config %s is larger than %d bytes", path, MaxBytes)
	}
	c, comp, err := Parse(data)
	if err != nil {
		return nil, nil, err
	}
	if o == (Overrides{}) {
		return c, comp, nil
	}
	c.Override(o)
	if comp, err = c.Validate(); err != nil {
		return nil, nil, err
	}
	return c, comp, nil
}

// Override applies the command line's settings over the config. A file CA
// key at its default place under data_dir moves with --data-dir. The caller
// validates again.
func (c *Server) Override(o Overrides) {
	if o.Listen != "" {
		c.Listen = o.Listen
	}
	if o.DataDir != "" {
		if c.Signer.Type == "file" && c.Signer.File != nil && c.Signer.File.KeyFile == CAKeyPath(c.DataDir) {
			c.Signer.File.KeyFile = CAKeyPath(o.DataDir)
		}
		c.DataDir = o.DataDir
	}
}

// Parse decodes and validates a config document. Unknown keys, values of
// the wrong type and every validation problem are reported together, each
// with its key path; only a YAML syntax error stops at once.
func Parse(data []byte) (*Server, *Compiled, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, &Error{Problems: []string{strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	var c Server
	keys := newKeyChecker()
	problems := []string{}
	if doc.Kind != 0 { // not an empty document
		keys.walk(&doc, reflect.TypeFor[Server](), "")
		problems = append(problems, keys.problems...)
		if err := doc.Decode(&c); err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				return nil, nil, &Error{Problems: []string{strings.TrimPrefix(err.Error(), "yaml: ")}}
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
	comp, err := c.Validate()
	var ce *Error
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			// A key whose value could not be read is reported once.
			if path, _, _ := strings.Cut(p, ": "); !keys.paths[path] {
				problems = append(problems, p)
			}
		}
	}
	if len(problems) > 0 {
		return nil, nil, &Error{Problems: problems}
	}
	return &c, comp, nil
}
