package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/jit-ssh/jit-ssh/ca"
)

// GitHubIssuer is the issuer of GitHub Actions' ID tokens.
const GitHubIssuer = "https://token.actions.githubusercontent.com"

// Defaults of a Verifier.
const (
	// DefaultTimeout bounds each fetch of the discovery document or JWKS.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxTokenLifetime is the longest a token may still have to live
	// (GitHub's live minutes): the replay cache holds every accepted jti
	// that long, so a longer one is refused.
	DefaultMaxTokenLifetime = time.Hour
	// DefaultReplayCapacity bounds the replay cache: with this many
	// unexpired tokens remembered, new ones are refused (503) until some
	// expire, rather than forgetting one that could then be replayed.
	DefaultReplayCapacity = 100000
	// NotBeforeLeeway is how far in the future a token's nbf may be (clock
	// skew between the issuer and the server).
	NotBeforeLeeway = time.Minute
)

// SigningAlgorithms are the only algorithms a token may be signed with:
// asymmetric ones (GitHub signs with RS256). "none" and HMAC (HS256 "signed"
// with the issuer's public key as the secret) never verify.
var SigningAlgorithms = []string{oidc.RS256, oidc.ES256}

// Verifier verifies GitHub Actions ID tokens of one issuer for one
// audience. It is safe for concurrent use.
type Verifier struct {
	issuer, audience string
	now              func() time.Time
	http             *http.Client
	maxLifetime      time.Duration
	replay           *replayCache
	accept           func(ca.Workload) bool

	mu  sync.Mutex
	idv *oidc.IDTokenVerifier // set once discovery succeeded
}

// Option configures a Verifier.
type Option func(*Verifier)

// WithClock sets the clock tokens are judged by; nil means time.Now.
func WithClock(now func() time.Time) Option { return func(v *Verifier) { v.now = now } }

// WithHTTPClient sets the HTTP client of the discovery and JWKS fetches
// (its transport and timeout are used; redirects and answers are checked
// as always).
func WithHTTPClient(h *http.Client) Option { return func(v *Verifier) { v.http = h } }

// WithReplayCapacity sets how many unexpired tokens the replay cache holds
// at most (DefaultReplayCapacity).
func WithReplayCapacity(n int) Option { return func(v *Verifier) { v.replay = newReplayCache(n) } }

// WithAccept sets which verified workloads the verifier accepts at all,
// before a token's jti enters the replay cache: the server passes whether
// any host group trusts the workload's repository. Every repository on
// GitHub can mint tokens for an audience, and they all verify; without
// this, anyone could fill the bounded cache with their own tokens and
// lock every deploy out (ErrUnavailable) for a token's lifetime. A token
// accept refuses is refused (ErrUnauthenticated). nil accepts all.
func WithAccept(accept func(ca.Workload) bool) Option { return func(v *Verifier) { v.accept = accept } }

// WithMaxTokenLifetime sets the longest a token may have left to live
// (DefaultMaxTokenLifetime).
func WithMaxTokenLifetime(d time.Duration) Option { return func(v *Verifier) { v.maxLifetime = d } }

// New returns a verifier of the tokens issuer signs for audience. Nothing
// is fetched here: the issuer is discovered on the first token, and again
// on the next one if that failed, so a server starts while the issuer is
// unreachable and refuses tokens (ca.ErrUnavailable) until it is back.
func New(issuer, audience string, opts ...Option) *Verifier {
	v := &Verifier{issuer: issuer, audience: audience, now: time.Now, maxLifetime: DefaultMaxTokenLifetime,
		replay: newReplayCache(DefaultReplayCapacity)}
	for _, o := range opts {
		o(v)
	}
	if v.now == nil {
		v.now = time.Now
	}
	base := http.DefaultTransport
	timeout := DefaultTimeout
	if v.http != nil {
		if v.http.Transport != nil {
			base = v.http.Transport
		}
		if v.http.Timeout > 0 {
			timeout = v.http.Timeout
		}
	}
	v.http = &http.Client{Transport: fetchTransport{base}, Timeout: timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if !secure(req.URL) || len(via) >= 10 {
				return fmt.Errorf("%w: refused redirect to %s", errFetch, req.URL.Redacted())
			}
			return nil
		}}
	return v
}

// Issuer returns the issuer the verifier trusts.
func (v *Verifier) Issuer() string { return v.issuer }

// errFetch marks a failed fetch of the discovery document or the JWKS
// (unreachable, an error status, an insecure URL): the issuer could not be
// asked, which is no answer about the token.
var errFetch = errors.New("oidc: fetching from the issuer failed")

// fetchTransport turns every failure of a fetch into an error wrapping
// errFetch: go-oidc reports an error status as plain text, and this keeps
// "could not ask" distinct from "the token is bad".
type fetchTransport struct{ base http.RoundTripper }

func (t fetchTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !secure(req.URL) {
		return nil, fmt.Errorf("%w: %s is plain http to a host that is not loopback; the issuer must be https", errFetch, req.URL.Redacted())
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errFetch, req.URL.Redacted(), err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s answered %s", errFetch, req.URL.Redacted(), resp.Status)
	}
	return resp, nil
}

// secure is https, or plain http to loopback only (the rule of
// api.SecureTransport, which this package cannot import).
func secure(u *url.URL) bool {
	if u.Scheme == "https" {
		return true
	}
	if u.Scheme != "http" {
		return false
	}
	h := u.Hostname()
	ip := net.ParseIP(h)
	return strings.EqualFold(h, "localhost") || (ip != nil && ip.IsLoopback())
}

// verifier returns go-oidc's verifier, discovering the issuer first if
// that has not succeeded yet.
func (v *Verifier) verifier() (*oidc.IDTokenVerifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.idv != nil {
		return v.idv, nil
	}
	// The provider's context is also the key set's, used for every later
	// JWKS fetch: it must outlive this call. The client's timeout bounds
	// each fetch.
	pctx := oidc.ClientContext(context.Background(), v.http)
	p, err := oidc.NewProvider(pctx, v.issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: discovery of %s failed: %w", ca.ErrUnavailable, v.issuer, err)
	}
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKS == "" {
		return nil, fmt.Errorf("%w: the discovery document of %s names no jwks_uri", ca.ErrUnavailable, v.issuer)
	}
	keys := keySet{oidc.NewRemoteKeySet(pctx, meta.JWKS)}
	v.idv = oidc.NewVerifier(v.issuer, keys, &oidc.Config{ClientID: v.audience, SupportedSigningAlgs: SigningAlgorithms, Now: v.now})
	return v.idv, nil
}

// keySet is go-oidc's remote key set, noting a failed JWKS fetch in the
// context (go-oidc flattens the key set's error into text).
type keySet struct{ remote *oidc.RemoteKeySet }

type fetchFailedKey struct{}

func (k keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	payload, err := k.remote.VerifySignature(ctx, jwt)
	if err != nil && (errors.Is(err, errFetch) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		if p, ok := ctx.Value(fetchFailedKey{}).(*error); ok {
			*p = err
		}
	}
	return payload, err
}

// claims are the claims of a GitHub Actions ID token jit-ssh reads, besides
// those go-oidc checks.
type claims struct {
	NotBefore   *float64 `json:"nbf"`
	JTI         string   `json:"jti"`
	Subject     string   `json:"sub"`
	Repository  string   `json:"repository"`
	Ref         string   `json:"ref"`
	Environment string   `json:"environment"`
	RunID       string   `json:"run_id"`
	RunAttempt  string   `json:"run_attempt"`
	Workflow    string   `json:"workflow"`
	SHA         string   `json:"sha"`
	Actor       string   `json:"actor"`
}

func refused(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ca.ErrUnauthenticated, fmt.Sprintf(format, args...))
}

// VerifyWorkload verifies token and returns the workload it names. A
// refused token gives an error wrapping ca.ErrUnauthenticated with the
// reason; an issuer that cannot be asked one wrapping ca.ErrUnavailable.
// An accepted token's jti is remembered until it expires: the same token
// is refused the second time.
func (v *Verifier) VerifyWorkload(ctx context.Context, token string) (ca.Workload, error) {
	idv, err := v.verifier()
	if err != nil {
		return ca.Workload{}, err
	}
	var fetchErr error
	tok, err := idv.Verify(context.WithValue(ctx, fetchFailedKey{}, &fetchErr), token)
	if fetchErr != nil {
		return ca.Workload{}, fmt.Errorf("%w: the keys of %s could not be fetched, so no token can be checked: %w", ca.ErrUnavailable, v.issuer, fetchErr)
	}
	var expired *oidc.TokenExpiredError
	switch {
	case errors.As(err, &expired):
		return ca.Workload{}, refused("the token expired at %s; a job's tokens live minutes, so fetch a fresh one for each call (jit-ssh login does)", expired.Expiry.UTC().Format(time.RFC3339))
	case err != nil:
		return ca.Workload{}, refused("%s%s", strings.TrimPrefix(err.Error(), "oidc: "), v.hint(token))
	}
	var c claims
	if err := tok.Claims(&c); err != nil {
		return ca.Workload{}, refused("unreadable claims: %v", err)
	}
	now := v.now()
	if len(tok.Audience) != 1 {
		// A token for several audiences could have been replayed here by
		// any of the others.
		return ca.Workload{}, refused("the token is for %d audiences; it must be for %q alone (ask for it with audience=%s)", len(tok.Audience), v.audience, v.audience)
	}
	if c.NotBefore != nil {
		if nbf := time.Unix(int64(*c.NotBefore), 0); nbf.After(now.Add(NotBeforeLeeway)) {
			return ca.Workload{}, refused("the token is not valid before %s; check the clocks of the runner and the jit-ssh server", nbf.UTC().Format(time.RFC3339))
		}
	}
	if tok.Expiry.After(now.Add(v.maxLifetime)) {
		return ca.Workload{}, refused("the token is valid until %s, longer than the %s a token may live", tok.Expiry.UTC().Format(time.RFC3339), v.maxLifetime)
	}
	if c.JTI == "" {
		return ca.Workload{}, refused("the token has no jti, so its reuse could not be detected")
	}
	w := ca.Workload{Repository: c.Repository, Ref: c.Ref, Environment: c.Environment, RunID: c.RunID, RunAttempt: c.RunAttempt,
		Workflow: c.Workflow, SHA: c.SHA, Actor: c.Actor, Subject: c.Subject, TokenID: c.JTI, Expiry: tok.Expiry}
	if err := ca.CheckWorkload(w); err != nil {
		return ca.Workload{}, refused("the token's claims are not usable: %v", err)
	}
	if v.accept != nil && !v.accept(w) {
		return ca.Workload{}, refused("workload %s (ref %s) may not request any host group of this server: no group's workloads name repository %s; run the job from a repository they name, or add it to a group's workloads in the server's config",
			w.Identity(), w.Ref, w.Repository)
	}
	switch v.replay.add(c.JTI, tok.Expiry, now) {
	case replaySeen:
		return ca.Workload{}, refused("the token (jti %s) was already used; each call needs a fresh token from the job", c.JTI)
	case replayFull:
		return ca.Workload{}, fmt.Errorf("%w: too many unexpired workload tokens remembered (%d); try again in a few minutes", ca.ErrUnavailable, v.replay.max)
	}
	return w, nil
}

// hint says what to do about a token go-oidc refused, from its claims read
// without verification: for the message only, never for a decision.
func (v *Verifier) hint(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Issuer   string          `json:"iss"`
		Audience json.RawMessage `json:"aud"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return ""
	}
	var auds []string
	if json.Unmarshal(c.Audience, &auds) != nil {
		var one string
		if json.Unmarshal(c.Audience, &one) == nil {
			auds = []string{one}
		}
	}
	switch {
	case c.Issuer != v.issuer:
		return fmt.Sprintf("; this server trusts only tokens of %s (workload_identity.github_actions.issuer)", v.issuer)
	case !slices.Contains(auds, v.audience):
		return fmt.Sprintf("; set JIT_SSH_AUDIENCE=%s in the job (the server's workload_identity.github_actions.audience)", v.audience)
	}
	return ""
}
