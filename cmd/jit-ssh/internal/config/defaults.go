package config

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/github"
	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/ca/vault"
	"github.com/jit-ssh/jit-ssh/store/postgres"
)

// DefaultGitHubTokenEnv is the environment variable the server's GitHub
// token is read from when identity.github.token_env names none.
const DefaultGitHubTokenEnv = "JIT_SSH_GITHUB_TOKEN"

// DefaultPostgresDSNEnv is the environment variable the PostgreSQL
// ledger's DSN is read from when ledger.postgres.dsn_env names none.
const DefaultPostgresDSNEnv = "JIT_SSH_POSTGRES_DSN"

// applyDefaults fills what the config leaves out. Each default is the one
// its owning package declares.
func (c *Server) applyDefaults() {
	if c.Listen == "" {
		c.Listen = api.DefaultListen
	}
	if c.Signer.Type == "file" {
		if c.Signer.File == nil {
			c.Signer.File = &FileSigner{}
		}
		if c.Signer.File.KeyFile == "" && c.DataDir != "" {
			c.Signer.File.KeyFile = CAKeyPath(c.DataDir)
		}
	}
	if c.Signer.Type == "vault" && c.Signer.Vault != nil {
		if c.Signer.Vault.Mount == "" {
			c.Signer.Vault.Mount = vault.DefaultMount
		}
		if c.Signer.Vault.Role == "" {
			c.Signer.Vault.Role = vault.DefaultRole
		}
	}
	if c.Identity.Type == "github" && c.Identity.GitHub != nil {
		g := c.Identity.GitHub
		if g.APIURL == "" {
			g.APIURL = github.DefaultAPIURL
		}
		if g.TokenEnv == "" {
			g.TokenEnv = DefaultGitHubTokenEnv
		}
		if g.CacheTTL == 0 && !g.cacheTTLSet {
			g.CacheTTL = Duration(github.DefaultCacheTTL)
		}
	}
	c.WorkloadIdentity.applyDefaults()
	if c.Ledger.Type == "" {
		c.Ledger.Type = LedgerSQLite
	}
	if c.Ledger.Type == LedgerPostgres {
		if c.Ledger.Postgres == nil {
			c.Ledger.Postgres = &PostgresLedger{}
		}
		if c.Ledger.Postgres.DSNEnv == "" {
			c.Ledger.Postgres.DSNEnv = DefaultPostgresDSNEnv
		}
		if c.Ledger.Postgres.MaxConns == 0 {
			c.Ledger.Postgres.MaxConns = postgres.DefaultMaxConns
		}
	}
	d := api.DefaultLimits()
	c.Limits.Requests.applyDefaults(d.Requests)
	c.Limits.Certificates.applyDefaults(d.Certificates)
	c.Limits.Writes.applyDefaults(d.Writes)
	if c.PendingTTL == 0 {
		c.PendingTTL = Duration(approval.DefaultPendingTTL)
	}
}

func (r *Rate) applyDefaults(d api.Rate) {
	if r.PerMinute == nil {
		perMinute := int(d.PerMinute)
		r.PerMinute = &perMinute
	}
	if r.Burst == nil {
		burst := d.Burst
		r.Burst = &burst
	}
}

// DevDataDir is the data directory of serve --dev without --data-dir:
// $XDG_STATE_HOME/jit-ssh/dev, else ~/.local/state/jit-ssh/dev, else
// (no home directory) jit-ssh-dev in the temporary directory. The caller
// passes XDG_STATE_HOME and the home directory ("" when unknown).
func DevDataDir(xdgStateHome, home string) string {
	if xdgStateHome != "" {
		return filepath.Join(xdgStateHome, "jit-ssh", "dev")
	}
	if home == "" {
		return filepath.Join(os.TempDir(), "jit-ssh-dev")
	}
	return filepath.Join(home, ".local", "state", "jit-ssh", "dev")
}

// LoadDev is the config of serve --dev: the embedded default (Dev) on the
// overrides' listener and data directory, by default api.DefaultListen and
// DevDataDir(xdgStateHome, home), validated.
func LoadDev(o Overrides, xdgStateHome, home string) (*Server, *Compiled, error) {
	listen, dir := o.Listen, o.DataDir
	if listen == "" {
		listen = api.DefaultListen
	}
	if dir == "" {
		dir = DevDataDir(xdgStateHome, home)
	}
	c := Dev(dir, listen)
	comp, err := c.Validate()
	if err != nil {
		return nil, nil, err
	}
	return c, comp, nil
}

// Dev is the embedded default of serve --dev: the demo users and host
// groups the README's "Try it by hand" lists.
func Dev(dataDir, listen string) *Server {
	one, zero := 1, 0
	users := map[string]StaticUser{}
	for login, team := range map[string]string{"alice": "backend", "erin": "backend", "bob": "sre-leads", "dave": "sre-leads", "carol": "security"} {
		users[login] = StaticUser{Token: "dev-" + login, Teams: []string{team}}
	}
	c := &Server{
		Listen:   listen,
		DataDir:  dataDir,
		Signer:   Signer{Type: "file", File: &FileSigner{KeyFile: CAKeyPath(dataDir)}},
		Identity: Identity{Type: "static", Static: &Static{Users: users}},
		Auditors: []string{"security"},
		// No rate limits in dev mode: demos and the load and crash tests
		// built on it drive many logins as one user. A config file gets
		// the limits block's defaults.
		Limits: Limits{Requests: Rate{PerMinute: &zero}, Certificates: Rate{PerMinute: &zero}, Writes: Rate{PerMinute: &zero}},
		HostGroups: map[string]HostGroup{
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
