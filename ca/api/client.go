package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to a jit-ssh server.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client

	// scheme and credential, when set, authenticate each call instead of
	// token (WithCredential).
	scheme     string
	credential func(ctx context.Context) (string, error)
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithHTTPClient sets the HTTP client (for TLS settings or tests). The
// Client uses a copy whose redirects are checked like the server URL (see
// ServerURL); h itself is not changed.
func WithHTTPClient(h *http.Client) ClientOption { return func(c *Client) { c.http = h } }

// WithCredential makes the client authenticate every call with a fresh
// credential from fetch, sent as "Authorization: <scheme> <credential>",
// instead of the bearer token: a CI job's OIDC ID token, which the server
// accepts once (approval.WorkloadScheme). A failed fetch fails the call
// before anything is sent.
func WithCredential(scheme string, fetch func(ctx context.Context) (string, error)) ClientOption {
	return func(c *Client) { c.scheme, c.credential = scheme, fetch }
}

// ErrInsecureServer means a server URL (or a redirect) is plain http to a
// host that is not loopback: the caller's token, or a host's trust in a CA
// key, would cross the network in clear and could be changed on the way.
var ErrInsecureServer = errors.New("api: plain http to a server that is not on loopback")

// NewClient returns a client for the server at base, authenticating with
// token (which may be empty for unauthenticated endpoints). base must pass
// ServerURL: https, or http only to loopback. Nothing is sent here.
func NewClient(base, token string, opts ...ClientOption) (*Client, error) {
	u, err := ServerURL(base)
	if err != nil {
		return nil, err
	}
	c := &Client{base: u, token: token, http: &http.Client{Timeout: MaxWait + 30*time.Second}}
	for _, o := range opts {
		o(c)
	}
	c.http = SafeRedirects(c.http)
	return c, nil
}

// ServerURL parses a jit-ssh server URL and refuses one the client must not
// talk to: anything but http or https with a host, and plain http to a host
// that is not loopback (127.0.0.0/8, ::1 or localhost), which wraps
// ErrInsecureServer. Every caller that reaches the server (the API client,
// `jit-ssh doctor`) checks its URL here before it sends anything.
func ServerURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api: server URL %q must look like https://jit-ssh.example.com", raw)
	}
	if u.User != nil {
		// The token goes in a header; a password in the URL would be
		// printed by every error that names the server.
		return nil, fmt.Errorf("api: server URL %s must not hold a user name or password: the token is sent in a header (JIT_SSH_TOKEN or 'jit-ssh auth login')", u.Redacted())
	}
	if err := checkScheme(u); err != nil {
		host := u.Host
		if u.Port() == "80" {
			host = strings.TrimSuffix(u.Host, ":80")
		}
		return nil, fmt.Errorf("%w (%s) would carry tokens and the server's answers (CA keys, KRL, certificates) in clear and open to change: use https://%s instead (plain http is only for 127.0.0.1, ::1 or localhost)", ErrInsecureServer, u.Redacted(), host)
	}
	return u, nil
}

func checkScheme(u *url.URL) error {
	if SecureTransport(u) {
		return nil
	}
	return ErrInsecureServer
}

// SecureTransport is the one rule for every URL jit-ssh sends a token or
// trusts an answer over (its server, GitHub, a webhook): https, or plain
// http only to the loopback interface.
func SecureTransport(u *url.URL) bool {
	return u.Scheme == "https" || (u.Scheme == "http" && IsLoopbackHost(u.Hostname()))
}

// IsLoopbackHost reports whether host (a name or an address, without a
// port) is the loopback interface: localhost, 127.0.0.0/8 or ::1.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}

// maxRedirects is net/http's own default limit.
const maxRedirects = 10

// SafeRedirects returns a copy of h (nil: a zero http.Client) whose
// redirects follow the rule of ServerURL: a redirect to plain http on a
// host that is not loopback (an https server sending the client to http,
// where the token would go in clear) is refused before it is followed.
// h's own CheckRedirect, if any, still runs after that check.
func SafeRedirects(h *http.Client) *http.Client {
	var hc http.Client
	if h != nil {
		hc = *h
	}
	next := hc.CheckRedirect
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := checkScheme(req.URL); err != nil {
			return fmt.Errorf("%w: refused to follow the server's redirect to %s; point --server at the https address it should have", ErrInsecureServer, req.URL.Redacted())
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("api: stopped after %d redirects", maxRedirects)
		}
		return nil
	}
	return &hc
}

// Error is an error answer from the server.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// IsStatus reports whether err is a server answer with the given status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, in any) (*http.Response, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case c.credential != nil:
		cred, err := c.credential(ctx)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", c.scheme+" "+cred)
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("api: cannot reach the jit-ssh server at %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var eb ErrorBody
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(raw, &eb) != nil || eb.Error.Message == "" {
			return nil, &Error{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode),
				Message: fmt.Sprintf("server answered %s", resp.Status)}
		}
		return nil, &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	return resp, nil
}

// MaxPublicAnswerBytes bounds the answers the host commands read (GET
// /v1/ca and GET /v1/host-groups/{name}): a few keys and principals, far
// below this. Like the KRL download's own bound, it keeps whatever answers
// in the server's place from making a host's sync hold a huge answer.
const MaxPublicAnswerBytes = 1 << 20

func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	resp, err := c.do(ctx, method, path, query, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("api: reading the server's answer: %w", err)
	}
	return nil
}

// callLimited is call with the answer bounded to max bytes: a longer one
// is an error, read no further than max+1 bytes.
func (c *Client) callLimited(ctx context.Context, method, path string, query url.Values, in, out any, max int64) error {
	resp, err := c.do(ctx, method, path, query, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return fmt.Errorf("api: reading the server's answer: %w", err)
	}
	if int64(len(data)) > max {
		return fmt.Errorf("api: the server's answer to %s %s is larger than %d bytes, far more than a jit-ssh server sends; check that %s is your jit-ssh server", method, path, max, c.base.Redacted())
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("api: reading the server's answer: %w", err)
	}
	return nil
}

// CA returns the CA keys hosts should trust; an answer over
// MaxPublicAnswerBytes is an error.
func (c *Client) CA(ctx context.Context) (*CAResponse, error) {
	var out CAResponse
	return &out, c.callLimited(ctx, http.MethodGet, "/v1/ca", nil, nil, &out, MaxPublicAnswerBytes)
}

// HostGroup returns a host group's public description; an answer over
// MaxPublicAnswerBytes is an error.
func (c *Client) HostGroup(ctx context.Context, name string) (*HostGroup, error) {
	var out HostGroup
	return &out, c.callLimited(ctx, http.MethodGet, "/v1/host-groups/"+url.PathEscape(name), nil, nil, &out, MaxPublicAnswerBytes)
}

// Health returns the server's health.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var out Health
	return &out, c.call(ctx, http.MethodGet, "/healthz", nil, nil, &out)
}

// CreateRequest files a request.
func (c *Client) CreateRequest(ctx context.Context, in CreateRequest) (*Request, error) {
	var out Request
	return &out, c.call(ctx, http.MethodPost, "/v1/requests", nil, in, &out)
}

// GetRequest returns a request. With wait > 0 it long-polls until the
// request's version differs from version (or wait passes).
func (c *Client) GetRequest(ctx context.Context, id string, wait time.Duration, version int64) (*Request, error) {
	q := url.Values{}
	if wait > 0 {
		q.Set("wait", wait.String())
		q.Set("version", strconv.FormatInt(version, 10))
	}
	var out Request
	return &out, c.call(ctx, http.MethodGet, "/v1/requests/"+url.PathEscape(id), q, nil, &out)
}

// ListRequestsOptions filters ListRequests.
type ListRequestsOptions struct {
	Mine, Reviewable bool
	State            string
}

// ListRequests lists requests.
func (c *Client) ListRequests(ctx context.Context, o ListRequestsOptions) ([]Request, error) {
	q := url.Values{}
	if o.Mine {
		q.Set("mine", "true")
	}
	if o.Reviewable {
		q.Set("reviewable", "true")
	}
	if o.State != "" {
		q.Set("state", o.State)
	}
	var out struct {
		Requests []Request `json:"requests"`
	}
	return out.Requests, c.call(ctx, http.MethodGet, "/v1/requests", q, nil, &out)
}

// EditRequest narrows a pending request or changes its reason.
func (c *Client) EditRequest(ctx context.Context, id string, in EditRequest) (*Request, error) {
	var out Request
	return &out, c.call(ctx, http.MethodPatch, "/v1/requests/"+url.PathEscape(id), nil, in, &out)
}

// CancelRequest cancels a pending request or ends an open grant.
func (c *Client) CancelRequest(ctx context.Context, id string) (*Request, error) {
	var out Request
	return &out, c.call(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/cancel", nil, struct{}{}, &out)
}

// Review submits a review.
func (c *Client) Review(ctx context.Context, id string, in ReviewRequest) (*Request, error) {
	var out Request
	return &out, c.call(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/reviews", nil, in, &out)
}

// IssueCertificate asks for a certificate for publicKey under request id.
func (c *Client) IssueCertificate(ctx context.Context, id, publicKey string) (*Certificate, error) {
	var out Certificate
	return &out, c.call(ctx, http.MethodPost, "/v1/certificates", nil, IssueRequest{RequestID: id, PublicKey: publicKey}, &out)
}

// CertificateFilter filters ListCertificates; zero fields match everything.
type CertificateFilter struct {
	User, Group           string
	Since, Until, ValidAt time.Time
	Serial                uint64
	KeyID                 string
	Limit                 int
}

func (f CertificateFilter) values() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	set("user", f.User)
	set("group", f.Group)
	set("since", ts(f.Since))
	set("until", ts(f.Until))
	set("valid_at", ts(f.ValidAt))
	set("key_id", f.KeyID)
	if f.Serial != 0 {
		q.Set("serial", strconv.FormatUint(f.Serial, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// ListCertificates streams matching certificates to fn.
func (c *Client) ListCertificates(ctx context.Context, f CertificateFilter, fn func(Certificate) error) error {
	return streamNDJSON(ctx, c, "/v1/certificates", f.values(), fn)
}

// ListCertificatesJSON streams the matching certificates to fn as the
// server encoded them, one JSON object per line (without the newline), for
// exports: a million rows skip a decode and an encode each. Lines are
// checked to be objects, not decoded; the slice is valid only during the
// call.
func (c *Client) ListCertificatesJSON(ctx context.Context, f CertificateFilter, fn func(line []byte) error) error {
	return streamLines(ctx, c, "/v1/certificates", f.values(), func(line []byte) error {
		if len(line) < 2 || line[0] != '{' || line[len(line)-1] != '}' {
			return errGarbled
		}
		return fn(line)
	})
}

// GetCertificate returns one certificate by serial.
func (c *Client) GetCertificate(ctx context.Context, serial uint64) (*Certificate, error) {
	var out Certificate
	return &out, c.call(ctx, http.MethodGet, "/v1/certificates/"+strconv.FormatUint(serial, 10), nil, nil, &out)
}

// ListEvents streams matching audit events to fn.
func (c *Client) ListEvents(ctx context.Context, q url.Values, fn func(Event) error) error {
	return streamNDJSON(ctx, c, "/v1/events", q, fn)
}

// Verify asks the server to verify the ledger's event chain.
func (c *Client) Verify(ctx context.Context) (*VerifyResult, error) {
	var out VerifyResult
	return &out, c.call(ctx, http.MethodGet, "/v1/audit/verify", nil, nil, &out)
}

// Report returns the JIT figures since since (zero: all time).
func (c *Client) Report(ctx context.Context, since time.Time) (*Report, error) {
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339))
	}
	var out Report
	return &out, c.call(ctx, http.MethodGet, "/v1/audit/report", q, nil, &out)
}

// Revoke revokes certificates and ends the grants involved.
func (c *Client) Revoke(ctx context.Context, in RevokeRequest) (*RevokeResult, error) {
	var out RevokeResult
	return &out, c.call(ctx, http.MethodPost, "/v1/revocations", nil, in, &out)
}

// KRL fetches the binary OpenSSH KRL, at most max bytes.
func (c *Client) KRL(ctx context.Context, max int64) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/krl", nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("api: reading the KRL: %w", err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("api: the KRL is larger than %d bytes", max)
	}
	return data, nil
}

func streamNDJSON[T any](ctx context.Context, c *Client, path string, q url.Values, fn func(T) error) error {
	return streamLines(ctx, c, path, q, func(line []byte) error {
		var v T
		if err := json.Unmarshal(line, &v); err != nil {
			return fmt.Errorf("api: the listing was cut off or garbled: %w", err)
		}
		return fn(v)
	})
}

// errGarbled: a listing line that is not a JSON object.
var errGarbled = errors.New("api: the listing was cut off or garbled: a line is not a JSON object")

// streamLines calls fn with each line of an NDJSON listing, as the server
// sent it. The slice is valid only during the call. A stream the server
// aborted (a failure mid-listing) is an error, never a short listing.
func streamLines(ctx context.Context, c *Client, path string, q url.Values, fn func([]byte) error) error {
	resp, err := c.do(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("api: the listing was cut off: %w", err)
	}
	return nil
}
