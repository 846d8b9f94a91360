package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Defaults of a Signer.
const (
	// DefaultTimeout bounds each Signer call, retries included.
	DefaultTimeout = 5 * time.Second
	// DefaultRetries is how often a transient failure (connection refused,
	// 5xx) is retried within the timeout.
	DefaultRetries = 2
	// DefaultCacheTTL is how long PublicKeys serves the CA key it read.
	DefaultCacheTTL = time.Minute
	// firstBackoff is the wait before the first retry; it doubles, with
	// jitter, for each further one.
	firstBackoff = 100 * time.Millisecond
)

// Signer is a ca.Signer that signs with the CA key of a Vault SSH secrets
// engine mount, through one of its roles. It is safe for concurrent use.
type Signer struct {
	src     *api.Client // the caller's client: its token is read on every call
	api     *api.Client // our copy, with Vault's own retries off
	sign    *signCall   // the hot call, on plain net/http through api's *http.Client
	mount   string
	role    string
	timeout time.Duration
	retries int
	ttl     time.Duration
	now     func() time.Time
	log     *slog.Logger
	reauth  func(context.Context) error

	mu       sync.Mutex
	cached   []ssh.PublicKey
	cachedAt time.Time
}

var _ ca.Signer = (*Signer)(nil)

// Option configures a Signer.
type Option func(*Signer)

// WithTimeout bounds every call to Vault, retries included. The default is
// DefaultTimeout; d <= 0 keeps it.
func WithTimeout(d time.Duration) Option {
	return func(s *Signer) {
		if d > 0 {
			s.timeout = d
		}
	}
}

// WithRetries sets how many times a transient failure is retried (0 turns
// retries off). Retries back off from 100ms, doubling, and never outlast the
// timeout. The default is DefaultRetries.
func WithRetries(n int) Option {
	return func(s *Signer) {
		if n >= 0 {
			s.retries = n
		}
	}
}

// WithLogger sets the logger for retries and Vault warnings. The default
// discards. The Vault token is never logged.
func WithLogger(l *slog.Logger) Option {
	return func(s *Signer) {
		if l != nil {
			s.log = l
		}
	}
}

// WithClock sets the clock used to turn ValidBefore into a TTL. The default
// (nil) is time.Now.
func WithClock(now func() time.Time) Option {
	return func(s *Signer) {
		if now != nil {
			s.now = now
		}
	}
}

// WithReauth sets what the Signer does when Vault refuses its token (403):
// it calls login once, then tries again with the client's token. Pass
// (*Client).Relogin, so a server with AppRole recovers by itself from a
// revoked token or a Vault that lost its tokens. The default does nothing:
// a refused token fails closed with ErrDenied.
func WithReauth(login func(context.Context) error) Option {
	return func(s *Signer) { s.reauth = login }
}

// WithCacheTTL sets how long PublicKeys serves the CA key without asking
// Vault again. The default is DefaultCacheTTL; 0 turns caching off.
func WithCacheTTL(d time.Duration) Option {
	return func(s *Signer) {
		if d >= 0 {
			s.ttl = d
		}
	}
}

// New returns a Signer that signs through <mount>/sign/<role>. client
// supplies the address, TLS settings, namespace and token; its token is read
// again on every call, so a token renewed or replaced on client (see
// NewClient) is picked up. The Signer does its own bounded retries and
// leaves client's settings untouched.
func New(client *api.Client, mount, role string, opts ...Option) (*Signer, error) {
	if client == nil {
		return nil, errors.New("vault: no client")
	}
	mount = strings.Trim(mount, "/")
	if mount == "" || role == "" || strings.Contains(role, "/") {
		return nil, fmt.Errorf("vault: mount %q and role %q must be non-empty and the role must not contain '/'", mount, role)
	}
	s := &Signer{
		src:     client,
		mount:   mount,
		role:    role,
		timeout: DefaultTimeout,
		retries: DefaultRetries,
		ttl:     DefaultCacheTTL,
		now:     time.Now,
		log:     slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(s)
	}
	cfg := client.CloneConfig()
	cfg.MaxRetries = 0 // retries are ours: bounded, transient errors only
	cfg.Timeout = s.timeout
	cfg.HttpClient = pooled(cfg.HttpClient)
	own, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	own.SetHeaders(client.Headers()) // namespace and custom headers
	own.SetToken(client.Token())
	s.api = own
	if s.sign, err = newSignCall(own, mount+"/sign/"+role); err != nil {
		return nil, err
	}
	return s, nil
}

// maxIdleConns is how many idle connections to Vault the Signer keeps: one
// per concurrent signing in a burst.
const maxIdleConns = 64

// pooled returns a copy of hc whose transport keeps maxIdleConns idle
// connections to Vault. The Vault client's default keeps GOMAXPROCS+1, so
// under a burst of certificates most calls opened (and closed) a new
// connection. hc and its transport are left untouched.
func pooled(hc *http.Client) *http.Client {
	if hc == nil {
		return nil
	}
	t, ok := hc.Transport.(*http.Transport)
	if !ok {
		return hc
	}
	t = t.Clone()
	t.MaxIdleConns = max(t.MaxIdleConns, maxIdleConns)
	t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, maxIdleConns)
	own := *hc
	own.Transport = t
	return &own
}

// Mount returns the SSH secrets engine mount path.
func (s *Signer) Mount() string { return s.mount }

// Role returns the Vault role the Signer signs with.
func (s *Signer) Role() string { return s.role }

// Sign asks Vault to sign tmpl: exactly its principals, KeyId, extensions
// and critical options, as a user certificate that ends at tmpl.ValidBefore
// (Vault takes a TTL, so the end is rounded down to whole seconds from now).
// Vault chooses the serial and ValidAfter (its clock minus the role's
// not_before_duration). The comparison of what Vault returned with tmpl is
// ca.Issuer's (ca.Verify); a refusal names Vault and the role when the
// issuer is given ExplainMismatch (ca.WithMismatchExplainer).
func (s *Signer) Sign(ctx context.Context, tmpl *ssh.Certificate) (*ssh.Certificate, error) {
	if tmpl == nil || tmpl.Key == nil {
		return nil, errors.New("vault: no certificate template")
	}
	if tmpl.CertType != ssh.UserCert {
		return nil, fmt.Errorf("vault: jit-ssh signs user certificates only, not type %d", tmpl.CertType)
	}
	if tmpl.ValidBefore == ssh.CertTimeInfinity || tmpl.ValidBefore > 1<<62 {
		return nil, errors.New("vault: refusing to ask for a certificate that never expires")
	}
	// Vault takes a TTL in seconds from its own clock; round down so the
	// certificate never outlives what was asked, and never ask for 0 (Vault
	// would substitute the mount's default lease TTL).
	ttl := max(int64(ca.CertTime(tmpl.ValidBefore).Sub(s.now())/time.Second), 1)
	req := &signRequest{
		CertType:        "user",
		CriticalOptions: orEmpty(tmpl.CriticalOptions),
		Extensions:      orEmpty(tmpl.Extensions),
		KeyID:           tmpl.KeyId,
		PublicKey:       string(ssh.MarshalAuthorizedKey(tmpl.Key)),
		TTL:             ttl,
		ValidPrincipals: strings.Join(tmpl.ValidPrincipals, ","),
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("vault: encoding the sign request: %w", err)
	}
	path := s.mount + "/sign/" + s.role
	op := "sign with " + path
	var reply signReply
	err = s.call(ctx, op, func(ctx context.Context, c *api.Client) error {
		var err error
		reply, err = s.sign.do(ctx, c.Token(), body, func(ctx context.Context) (*api.Secret, error) {
			return c.Logical().WriteWithContext(ctx, path, req.asMap())
		})
		return err
	})
	if e := (*Error)(nil); errors.As(err, &e) && errors.Is(e.Kind, ErrRejected) {
		// jit-ssh asks only for what its configuration allows, so a
		// refusal usually means the role and the configuration drifted.
		e.hint = "the Vault role may not match the jit-ssh configuration; run jit-ssh vault setup"
	}
	if err != nil {
		return nil, err
	}
	cert, err := s.parseSigned(ctx, op, reply)
	if err != nil {
		return nil, err
	}
	// A CA key other than the cached one is looked up in Vault once, when
	// the issuer asks for PublicKeys to verify: the mount's key may have
	// been replaced.
	s.forgetUnknownCA(cert.SignatureKey)
	return cert, nil
}

// ExplainMismatch names Vault, the role and the repair, for ca.Issuer to
// put in front of a refusal of what Sign returned: pass it to
// ca.NewIssuer with ca.WithMismatchExplainer(s.ExplainMismatch).
func (s *Signer) ExplainMismatch() string {
	return fmt.Sprintf("vault: %s/sign/%s at %s returned a certificate that differs from the request (compare the role with the jit-ssh configuration; jit-ssh vault setup repairs it)",
		s.mount, s.role, s.api.Address())
}

// parseSigned extracts the certificate from a sign response and checks that
// it is a user certificate; the full comparison with the request is
// ca.Verify's.
func (s *Signer) parseSigned(ctx context.Context, op string, reply signReply) (*ssh.Certificate, error) {
	if !reply.data {
		return nil, &Error{Op: op, Addr: s.api.Address(), Kind: ErrBadResponse, Err: errors.New("empty response")}
	}
	for _, w := range reply.warnings {
		s.log.LogAttrs(ctx, slog.LevelWarn, "vault warning", slog.String("op", op), slog.String("warning", w))
	}
	signed := reply.signed
	if signed == "" {
		return nil, &Error{Op: op, Addr: s.api.Address(), Kind: ErrBadResponse, Err: errors.New("no signed_key in the response")}
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(signed))
	if err != nil {
		return nil, fmt.Errorf("%w: vault: signed_key does not parse: %v", ca.ErrSignerMismatch, err) //nolint:errorlint // the parser's errors are strings only
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return nil, fmt.Errorf("%w: vault: signed_key is a %s, not a certificate", ca.ErrSignerMismatch, pub.Type())
	}
	if cert.CertType != ssh.UserCert {
		return nil, fmt.Errorf("%w: vault: signed a certificate of type %d, not a user certificate", ca.ErrSignerMismatch, cert.CertType)
	}
	if cert.SignatureKey == nil {
		return nil, fmt.Errorf("%w: vault: certificate without a signature key", ca.ErrSignerMismatch)
	}
	return cert, nil
}

// PublicKeys returns the CA public key of the mount, read from
// <mount>/config/ca and served from memory for the cache TTL. When Vault
// cannot be asked and nothing fresh is cached, the error wraps
// ca.ErrSignerUnavailable.
func (s *Signer) PublicKeys(ctx context.Context) ([]ssh.PublicKey, error) {
	s.mu.Lock()
	if s.cached != nil && s.now().Sub(s.cachedAt) < s.ttl {
		keys := append([]ssh.PublicKey(nil), s.cached...)
		s.mu.Unlock()
		return keys, nil
	}
	s.mu.Unlock()
	key, err := readCAKey(ctx, s.mount, s.call, s.api.Address())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cached = []ssh.PublicKey{key}
	s.cachedAt = s.now()
	s.mu.Unlock()
	return []ssh.PublicKey{key}, nil
}

// forgetUnknownCA drops the cached CA key when Vault signed with another
// one (the mount's key was replaced), so the next PublicKeys asks Vault.
func (s *Signer) forgetUnknownCA(k ssh.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cached {
		if bytes.Equal(c.Marshal(), k.Marshal()) {
			return
		}
	}
	s.cached = nil
}

// caller runs one Vault operation fn, named op in errors, and returns nil
// or an *Error.
type caller func(ctx context.Context, op string, fn func(context.Context, *api.Client) error) error

// readCAKey reads and parses <mount>/config/ca through call.
func readCAKey(ctx context.Context, mount string, call caller, addr string) (ssh.PublicKey, error) {
	path := mount + "/config/ca"
	op := "read CA key from " + path
	var secret *api.Secret
	err := call(ctx, op, func(ctx context.Context, c *api.Client) error {
		var err error
		secret, err = c.Logical().ReadWithContext(ctx, path)
		return err
	})
	if err != nil {
		return nil, err
	}
	if secret == nil || secret.Data == nil {
		return nil, &Error{Op: op, Addr: addr, Kind: ErrBadResponse, Err: errors.New("no CA key; run jit-ssh vault setup")}
	}
	line, _ := secret.Data["public_key"].(string)
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, &Error{Op: op, Addr: addr, Kind: ErrBadResponse, Err: fmt.Errorf("public_key does not parse: %v", err)} //nolint:errorlint // the parser's errors are strings only
	}
	return key, nil
}

// call runs fn against Vault within the per-call timeout, retrying
// transient failures with backoff. Every error it returns is an *Error.
func (s *Signer) call(ctx context.Context, op string, fn func(context.Context, *api.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	wait := firstBackoff
	reauthed := false
	for attempt := 0; ; attempt++ {
		if tok := s.src.Token(); tok != s.api.Token() {
			s.api.SetToken(tok)
		}
		err := fn(ctx, s.api)
		if err == nil {
			return nil
		}
		e := s.classify(ctx, op, err)
		if errors.Is(e.Kind, ErrDenied) && s.reauth != nil && !reauthed {
			reauthed = true
			if rerr := s.reauth(ctx); rerr == nil {
				attempt-- // a fresh token is not a retry of a failure
				continue
			} else if !errors.Is(rerr, ErrNoAppRole) {
				s.log.LogAttrs(ctx, slog.LevelError, "vault: logging in again failed",
					slog.String("op", op), slog.String("error", rerr.Error()))
			}
			return e
		}
		if attempt >= s.retries || !transient(e) {
			return e
		}
		d := wait/2 + rand.N(wait) // jitter in [wait/2, 3*wait/2)
		wait *= 2
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return e // no time left for another attempt
		}
		s.log.LogAttrs(ctx, slog.LevelInfo, "vault call failed; retrying",
			slog.String("op", op), slog.Int("attempt", attempt+1), slog.Duration("backoff", d), slog.String("error", e.Error()))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return e
		case <-t.C:
		}
	}
}

// classify is the package classify plus one check: a 503 is asked about
// through the unauthenticated seal-status endpoint, so a sealed Vault is
// reported as such (and not retried) without matching error text.
func (s *Signer) classify(ctx context.Context, op string, err error) *Error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return classifySealed(ctx, s.api, op, err, s.timeout)
}

func classifySealed(ctx context.Context, c *api.Client, op string, err error, timeout time.Duration) *Error {
	e := classify(op, c.Address(), err, timeout)
	if e.Status == 503 {
		if st, serr := c.Sys().SealStatusWithContext(ctx); serr == nil && st.Sealed {
			e.Kind = ErrSealed
		}
	}
	return e
}

// orEmpty returns m, or an empty map for nil: Vault is sent {} (as
// vault/api sent it), not null.
func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range maps.All(m) {
		out[k] = v
	}
	return out
}
