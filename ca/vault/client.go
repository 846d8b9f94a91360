package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
)

// Environment variables for AppRole login, read by NewClient through
// ClientConfig.Getenv when the corresponding ClientConfig fields are empty. The *_FILE variants name a
// file holding the value (as Vault Agent's role_id_file_path does); the
// secret ID file is read again at every login, so it can be rotated.
const (
	EnvRoleID       = "JIT_SSH_VAULT_ROLE_ID"
	EnvRoleIDFile   = "JIT_SSH_VAULT_ROLE_ID_FILE"
	EnvSecretID     = "JIT_SSH_VAULT_SECRET_ID"
	EnvSecretIDFile = "JIT_SSH_VAULT_SECRET_ID_FILE"
)

// ClientConfig says how to reach and authenticate to Vault. Empty fields
// follow Vault's conventions: VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT,
// VAULT_NAMESPACE and the other VAULT_* variables the Vault CLI reads.
type ClientConfig struct {
	// Address overrides VAULT_ADDR.
	Address string
	// Namespace overrides VAULT_NAMESPACE (Vault Enterprise).
	Namespace string
	// Timeout bounds each request of the returned client; 0 keeps Vault's
	// default (60s, or VAULT_CLIENT_TIMEOUT). Signer has its own timeout.
	Timeout time.Duration
	// AppRole, when a role ID is configured (here or, through Getenv, in
	// EnvRoleID or EnvRoleIDFile), logs in with AppRole instead of using VAULT_TOKEN.
	AppRole AppRole
	// Logger receives token renewal and re-login records. The default
	// discards. Tokens are never logged.
	Logger *slog.Logger
	// TokenOnly ignores AppRole (here and in the JIT_SSH_VAULT_* variables)
	// and uses VAULT_TOKEN: `jit-ssh vault setup` runs as an operator whose
	// token may manage mounts, not with the server's narrow AppRole.
	TokenOnly bool
	// Getenv looks up the JIT_SSH_VAULT_* variables (EnvRoleID and the
	// others) for the AppRole fields left empty: the caller's environment,
	// injected (cmd/jit-ssh passes its own). nil reads none. The VAULT_*
	// variables are read by Vault's api package itself (api.DefaultConfig,
	// api.NewClient), as the Vault CLI reads them.
	Getenv func(string) string
}

// AppRole is an AppRole login. Either the value or the file of each ID is
// used; files are trimmed of surrounding whitespace.
type AppRole struct {
	// Mount is the auth method's path; the default is "approle".
	Mount        string
	RoleID       string
	RoleIDFile   string
	SecretID     string
	SecretIDFile string
}

// withEnv fills the empty IDs from getenv (nil: none) and defaults Mount.
func (a AppRole) withEnv(getenv func(string) string) AppRole {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if a.RoleID == "" && a.RoleIDFile == "" {
		a.RoleID = getenv(EnvRoleID)
		a.RoleIDFile = getenv(EnvRoleIDFile)
	}
	if a.SecretID == "" && a.SecretIDFile == "" {
		a.SecretID = getenv(EnvSecretID)
		a.SecretIDFile = getenv(EnvSecretIDFile)
	}
	if a.Mount = strings.Trim(a.Mount, "/"); a.Mount == "" {
		a.Mount = "approle"
	}
	return a
}

func (a AppRole) enabled() bool { return a.RoleID != "" || a.RoleIDFile != "" }

func readValue(value, file, what string) (string, error) {
	if value != "" {
		return value, nil
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("vault: reading AppRole %s: %w", what, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Client is a Vault client and, with AppRole, the goroutine that keeps its
// token alive: it renews the token and logs in again when the token reaches
// its maximum TTL or cannot be renewed. Close stops it.
type Client struct {
	api     *api.Client
	appRole AppRole
	log     *slog.Logger

	stop  context.CancelFunc
	done  chan struct{}
	once  sync.Once
	fresh chan *api.Secret // tokens of forced logins, for keepAlive

	reloginMu sync.Mutex // one forced login at a time
	logins    atomic.Int64
}

// ErrNoAppRole is returned by Relogin when the client uses a fixed token
// (VAULT_TOKEN), which it cannot replace by itself.
var ErrNoAppRole = errors.New("vault: no AppRole login configured; replace VAULT_TOKEN and restart")

// API returns the Vault client, for New and Setup. Its token is replaced in
// place on re-login.
func (c *Client) API() *api.Client { return c.api }

// Close stops token renewal. It does not revoke the token.
func (c *Client) Close() error {
	c.once.Do(func() {
		if c.stop != nil {
			c.stop()
			<-c.done
		}
	})
	return nil
}

// NewClient returns a Vault client configured from cfg and Vault's
// environment. With a token (VAULT_TOKEN) it does no I/O. With AppRole it
// logs in before returning and keeps the token alive until Close.
func NewClient(cfg ClientConfig) (*Client, error) {
	conf := api.DefaultConfig() // reads VAULT_ADDR, VAULT_CACERT, ... (ReadEnvironment)
	if conf.Error != nil {
		return nil, fmt.Errorf("vault: reading the VAULT_* environment: %w", conf.Error)
	}
	if cfg.Address != "" {
		conf.Address = cfg.Address
	}
	if cfg.Timeout > 0 {
		conf.Timeout = cfg.Timeout
	}
	ac, err := api.NewClient(conf) // takes VAULT_TOKEN and VAULT_NAMESPACE
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	if cfg.Namespace != "" {
		ac.SetNamespace(cfg.Namespace)
	}
	c := &Client{api: ac, log: cfg.Logger, fresh: make(chan *api.Secret, 1)}
	if !cfg.TokenOnly {
		c.appRole = cfg.AppRole.withEnv(cfg.Getenv)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if !c.appRole.enabled() {
		if ac.Token() == "" {
			return nil, errors.New("vault: no token: set VAULT_TOKEN or configure an AppRole login")
		}
		return c, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), loginTimeout(conf.Timeout))
	secret, err := c.login(ctx)
	cancel()
	if err != nil {
		return nil, err
	}
	ctx, c.stop = context.WithCancel(context.Background())
	c.done = make(chan struct{})
	go c.keepAlive(ctx, secret)
	return c, nil
}

func loginTimeout(d time.Duration) time.Duration {
	if d <= 0 || d > 30*time.Second {
		return 30 * time.Second
	}
	return d
}

// login performs an AppRole login and installs the new token.
func (c *Client) login(ctx context.Context) (*api.Secret, error) {
	roleID, err := readValue(c.appRole.RoleID, c.appRole.RoleIDFile, "role ID")
	if err != nil {
		return nil, err
	}
	secretID, err := readValue(c.appRole.SecretID, c.appRole.SecretIDFile, "secret ID")
	if err != nil {
		return nil, err
	}
	// Log in without the old token: it may be expired.
	lc, err := c.api.CloneWithHeaders()
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	lc.ClearToken()
	path := "auth/" + c.appRole.Mount + "/login"
	data := map[string]any{"role_id": roleID}
	if secretID != "" {
		data["secret_id"] = secretID
	}
	secret, err := lc.Logical().WriteWithContext(ctx, path, data)
	if err != nil {
		return nil, classifySealed(ctx, lc, "AppRole login at "+path, err, lc.ClientTimeout())
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return nil, &Error{Op: "AppRole login at " + path, Addr: lc.Address(), Kind: ErrBadResponse, Err: errors.New("no token in the response")}
	}
	c.api.SetToken(secret.Auth.ClientToken)
	c.logins.Add(1)
	c.log.LogAttrs(ctx, slog.LevelInfo, "vault: logged in with AppRole",
		slog.String("mount", c.appRole.Mount),
		slog.Duration("ttl", time.Duration(secret.Auth.LeaseDuration)*time.Second),
		slog.Bool("renewable", secret.Auth.Renewable))
	return secret, nil
}

// Relogin logs in with AppRole now. The Signer calls it when Vault refuses
// the token (403): the token was revoked, or Vault lost it (a restored or
// rebuilt Vault), long before the renewal watcher would notice. Concurrent
// callers share one login: a caller that waited while another logged in
// returns at once, so a burst of 403s costs one login. Without AppRole it
// returns ErrNoAppRole.
func (c *Client) Relogin(ctx context.Context) error {
	if !c.appRole.enabled() {
		return ErrNoAppRole
	}
	before := c.logins.Load()
	c.reloginMu.Lock()
	defer c.reloginMu.Unlock()
	if c.logins.Load() != before {
		return nil // logged in while this caller waited
	}
	ctx, cancel := context.WithTimeout(ctx, loginTimeout(c.api.ClientTimeout()))
	defer cancel()
	c.log.LogAttrs(ctx, slog.LevelWarn, "vault: token refused; logging in again with AppRole")
	secret, err := c.login(ctx)
	if err != nil {
		return err
	}
	// Hand the new token to keepAlive, replacing one it has not taken yet.
	select {
	case <-c.fresh:
	default:
	}
	select {
	case c.fresh <- secret:
	default:
	}
	return nil
}

// keepAlive renews the token while Vault allows it and logs in again when
// the watcher gives up (max TTL reached, not renewable, renewal failing).
// A token from Relogin replaces the one being watched.
func (c *Client) keepAlive(ctx context.Context, secret *api.Secret) {
	defer close(c.done)
	for {
		next, ok := c.watch(ctx, secret)
		if !ok {
			return
		}
		if next == nil {
			if next = c.relogin(ctx); next == nil {
				return
			}
		}
		secret = next
	}
}

// watch runs a lifetime watcher on secret until it is done. It returns the
// token of a forced login when one arrives, nil when the watcher is done
// (log in again), and false when ctx ends.
func (c *Client) watch(ctx context.Context, secret *api.Secret) (*api.Secret, bool) {
	if secret == nil || secret.Auth == nil || secret.Auth.LeaseDuration <= 0 {
		// A token without a TTL never expires; wait for a replacement.
		select {
		case <-ctx.Done():
			return nil, false
		case s := <-c.fresh:
			return s, true
		}
	}
	w, err := c.api.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: secret})
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "vault: cannot watch the token", slog.String("error", err.Error()))
		return nil, true
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, false
		case s := <-c.fresh:
			return s, true
		case err := <-w.DoneCh():
			if err != nil {
				c.log.LogAttrs(ctx, slog.LevelWarn, "vault: token renewal failed; logging in again", slog.String("error", err.Error()))
			} else {
				c.log.LogAttrs(ctx, slog.LevelInfo, "vault: token at the end of its lifetime; logging in again")
			}
			return nil, true
		case r := <-w.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				c.log.LogAttrs(ctx, slog.LevelDebug, "vault: token renewed",
					slog.Duration("ttl", time.Duration(r.Secret.Auth.LeaseDuration)*time.Second))
			}
		}
	}
}

// relogin logs in until it succeeds, backing off from 1s to 1m. It returns
// nil when ctx ends.
func (c *Client) relogin(ctx context.Context) *api.Secret {
	wait := time.Second
	for {
		lctx, cancel := context.WithTimeout(ctx, loginTimeout(c.api.ClientTimeout()))
		secret, err := c.login(lctx)
		cancel()
		if err == nil {
			return secret
		}
		c.log.LogAttrs(ctx, slog.LevelError, "vault: AppRole login failed; retrying",
			slog.String("error", err.Error()), slog.Duration("backoff", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case s := <-c.fresh: // a forced login succeeded meanwhile
			t.Stop()
			return s
		case <-t.C:
		}
		wait = min(2*wait, time.Minute)
	}
}
