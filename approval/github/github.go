package github

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	gogithub "github.com/google/go-github/v60/github"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Defaults of the GitHub directory.
const (
	// DefaultAPIURL is the API of github.com.
	DefaultAPIURL = "https://api.github.com/"
	// DefaultCacheTTL is how long answers from GitHub are reused.
	DefaultCacheTTL = 30 * time.Second
	// DefaultTimeout bounds one call to GitHub.
	DefaultTimeout = 5 * time.Second
	// maxCacheEntries bounds each cache, so tokens nobody knows cannot
	// grow it without limit.
	maxCacheEntries = 10000
)

// Directory is an identity provider (it implements approval.Directory)
// backed by the GitHub REST API (github.com or GitHub Enterprise Server).
// Callers are identified with their own token
// (GET /user); team membership is read with the server's token
// (GET /orgs/{org}/teams/{team}/memberships/{user}, state active).
// Answers, including negative ones, are cached for the cache TTL; errors
// never are. Every failure to get an answer fails closed with an error
// wrapping ca.ErrUnavailable.
type Directory struct {
	base    *gogithub.Client // no credentials; copied per caller token
	server  *gogithub.Client // with the server's token
	org     string
	ttl     time.Duration
	timeout time.Duration
	now     func() time.Time
	hc      *http.Client

	logins  *ttlCache[[32]byte, string] // token hash -> login; "" = token refused
	members *ttlCache[memberKey, bool]
}

type memberKey struct{ login, team string }

// Option configures a Directory.
type Option func(*Directory)

// WithClock sets the clock the caches expire by; nil means time.Now.
func WithClock(now func() time.Time) Option { return func(g *Directory) { g.now = now } }

// WithCacheTTL sets how long logins and memberships are reused
// (default DefaultCacheTTL); 0 turns caching off.
func WithCacheTTL(d time.Duration) Option { return func(g *Directory) { g.ttl = d } }

// WithHTTPClient sets the HTTP client that reaches GitHub; nil means
// a plain client with the default transport (which honours HTTPS_PROXY).
func WithHTTPClient(c *http.Client) Option { return func(g *Directory) { g.hc = c } }

// WithTimeout bounds each call to GitHub (default
// DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(g *Directory) { g.timeout = d } }

// New returns a directory for the organisation org, reaching the API
// at apiURL (DefaultAPIURL, or a GitHub Enterprise Server URL such as
// https://ghe.example.com/api/v3/) and reading team membership with
// serverToken.
func New(apiURL, org, serverToken string, opts ...Option) (*Directory, error) {
	if org == "" || strings.ContainsAny(org, "/?#% ") {
		return nil, fmt.Errorf("approval: github organisation %q is not valid", org)
	}
	if serverToken == "" {
		return nil, errors.New("approval: github: the server token is empty")
	}
	g := &Directory{org: org, ttl: DefaultCacheTTL, timeout: DefaultTimeout}
	for _, o := range opts {
		o(g)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.timeout <= 0 {
		g.timeout = DefaultTimeout
	}
	base, err := newClient(apiURL, g.hc)
	if err != nil {
		return nil, err
	}
	g.base = base
	g.server = base.WithAuthToken(serverToken)
	g.logins = newTTLCache[[32]byte, string](maxCacheEntries)
	g.members = newTTLCache[memberKey, bool](maxCacheEntries)
	return g, nil
}

// newClient returns a go-github client for apiURL: the public API for
// api.github.com, enterprise URLs (base + "api/v3/") for anything else.
func newClient(apiURL string, hc *http.Client) (*gogithub.Client, error) {
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("approval: github API URL %q must look like https://api.github.com/", apiURL)
	}
	if hc == nil {
		hc = &http.Client{}
	}
	c := gogithub.NewClient(hc)
	c.UserAgent = "jit-ssh"
	if strings.EqualFold(u.Host, "api.github.com") {
		return c, nil
	}
	c, err = c.WithEnterpriseURLs(apiURL, apiURL)
	if err != nil {
		return nil, fmt.Errorf("approval: github API URL %q: %w", apiURL, err)
	}
	return c, nil
}

// Authenticate resolves the caller's token to a GitHub login with
// GET /user, asked with that token. The answer is cached by the token's
// SHA-256, never the token itself.
func (g *Directory) Authenticate(ctx context.Context, token string) (string, error) {
	key := sha256.Sum256([]byte(token))
	now := g.now()
	if login, ok := g.logins.get(key, now); ok {
		if login == "" {
			return "", fmt.Errorf("%w: github did not accept the token (cached)", ca.ErrUnauthenticated)
		}
		return login, nil
	}
	login, err := userLogin(ctx, g.base, secret(token), g.timeout)
	switch {
	case err == nil:
		g.logins.put(key, login, now, g.ttl)
		return login, nil
	case errors.Is(err, ca.ErrUnauthenticated):
		g.logins.put(key, "", now, g.ttl)
		return "", err
	default:
		return "", err
	}
}

// IsMember reports whether login is an active member of team in the
// organisation. A pending invitation and a 404 are "no".
func (g *Directory) IsMember(ctx context.Context, login, team string) (bool, error) {
	key := memberKey{strings.ToLower(login), strings.ToLower(team)}
	now := g.now()
	if ok, hit := g.members.get(key, now); hit {
		return ok, nil
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	m, _, err := g.server.Teams.GetTeamMembershipBySlug(ctx, url.PathEscape(g.org), url.PathEscape(team), url.PathEscape(login))
	var member bool
	switch {
	case err == nil:
		member = m.GetState() == "active"
	case status(err) == http.StatusNotFound:
		member = false
	default:
		what := fmt.Sprintf("membership of %s in %s/%s", login, g.org, team)
		return false, classify(ctx, err, what, g.timeout, false)
	}
	g.members.put(key, member, now, g.ttl)
	return member, nil
}

// Login resolves token to its GitHub login with one GET /user against
// apiURL, without caching. hc may be nil. Errors wrap ca.ErrUnauthenticated or
// ca.ErrUnavailable like the directory's.
func Login(ctx context.Context, apiURL, token string, hc *http.Client) (string, error) {
	c, err := newClient(apiURL, hc)
	if err != nil {
		return "", err
	}
	return userLogin(ctx, c, secret(token), DefaultTimeout)
}

func userLogin(ctx context.Context, base *gogithub.Client, token secret, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u, _, err := base.WithAuthToken(string(token)).Users.Get(ctx, "")
	if err != nil {
		return "", classify(ctx, err, "GET /user", timeout, true)
	}
	if u.GetLogin() == "" {
		return "", &githubError{kind: ca.ErrUnavailable, msg: "github: GET /user answered without a login"}
	}
	return u.GetLogin(), nil
}

// githubError is a failure to get an answer from GitHub: its message says
// what happened for people, and it wraps both its kind (ca.ErrUnavailable or
// ca.ErrUnauthenticated) and the underlying cause.
type githubError struct {
	kind  error
	msg   string
	cause error
}

func (e *githubError) Error() string { return e.msg }

func (e *githubError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func status(err error) int {
	var er *gogithub.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return er.Response.StatusCode
	}
	return 0
}

// classify turns a go-github error into a githubError. callerToken says
// whether the token was the caller's (a 401 means they are not signed in)
// or the server's (a 401 means jit-ssh is misconfigured: unavailable).
func classify(ctx context.Context, err error, what string, timeout time.Duration, callerToken bool) error {
	unavailable := func(format string, args ...any) error {
		return &githubError{kind: ca.ErrUnavailable, msg: "github: " + fmt.Sprintf(format, args...), cause: err}
	}
	var rle *gogithub.RateLimitError
	var arle *gogithub.AbuseRateLimitError
	var er *gogithub.ErrorResponse
	var ue *url.Error
	switch {
	case errors.As(err, &rle):
		if rle.Rate.Reset.IsZero() {
			return unavailable("rate limited (%s)", what)
		}
		return unavailable("rate limited until %s (%s)", rle.Rate.Reset.UTC().Format("15:04:05Z07:00"), what)
	case errors.As(err, &arle):
		if arle.RetryAfter != nil {
			return unavailable("secondary rate limit, retry after %s (%s)", arle.RetryAfter.Round(time.Second), what)
		}
		return unavailable("secondary rate limit (%s)", what)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return unavailable("no answer within %s (%s)", timeout, what)
	case errors.Is(err, context.Canceled):
		return unavailable("call cancelled (%s)", what)
	case errors.As(err, &er) && er.Response != nil:
		code := er.Response.StatusCode
		switch {
		case code == http.StatusTooManyRequests:
			if reset := er.Response.Header.Get("X-RateLimit-Reset"); reset != "" {
				return unavailable("rate limited (429) until %s (%s)", resetTime(reset), what)
			}
			return unavailable("rate limited (429) (%s)", what)
		case code == http.StatusUnauthorized && callerToken:
			return &githubError{kind: ca.ErrUnauthenticated, msg: "github: token not accepted: " + er.Message, cause: err}
		case code == http.StatusUnauthorized:
			return unavailable("the server token was not accepted (401 %s); check identity.github.token_env", er.Message)
		case code == http.StatusForbidden && callerToken:
			return &githubError{kind: ca.ErrUnauthenticated, msg: "github: token refused: " + er.Message, cause: err}
		case code == http.StatusForbidden:
			return unavailable("403 %s on %s; the server token needs read:org", er.Message, what)
		case code >= 500:
			return unavailable("server error %d %s (%s)", code, http.StatusText(code), what)
		default:
			return unavailable("unexpected answer %d %s (%s)", code, er.Message, what)
		}
	case errors.As(err, &ue):
		return unavailable("unreachable: %v (%s)", ue.Err, what)
	default:
		return unavailable("%v (%s)", err, what)
	}
}

func resetTime(epoch string) string {
	var sec int64
	if _, err := fmt.Sscan(epoch, &sec); err != nil {
		return epoch
	}
	return time.Unix(sec, 0).UTC().Format("15:04:05Z07:00")
}

// secret is a token: it never shows in logs or formatted output.
type secret string

// LogValue redacts the token.
func (secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// String redacts the token.
func (secret) String() string { return "REDACTED" }

// ttlCache is a small map whose entries expire. It holds at most max
// entries: when full, expired entries go first, then arbitrary ones.
type ttlCache[K comparable, V any] struct {
	mu  sync.Mutex
	m   map[K]ttlEntry[V]
	max int
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[K comparable, V any](maxEntries int) *ttlCache[K, V] {
	return &ttlCache[K, V]{m: map[K]ttlEntry[V]{}, max: maxEntries}
}

func (c *ttlCache[K, V]) get(k K, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[K, V]) put(k K, v V, now time.Time, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		for key, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, key)
			}
		}
		for key := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, key)
		}
	}
	c.m[k] = ttlEntry[V]{v: v, expires: now.Add(ttl)}
}
