package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"unicode"

	"github.com/hashicorp/vault/api"
)

// signCall is the hot call of a Signer, PUT /v1/<mount>/sign/<role>, on
// plain net/http: the request is built once by the Vault client (address,
// unix socket, namespace and custom headers, X-Vault-Request) and only its
// token and body change per call; it goes through the Vault client's own
// *http.Client, so VAULT_CACERT and the other TLS settings, the proxy and
// the kept connection pool are the same; the answer is decoded into a
// struct. Set-up, AppRole login, renewal and PublicKeys stay on vault/api.
//
// Failures read as through vault/api: a transport error is the error
// vault/api returns for it (the context's error once the context is done),
// an HTTP error is the *api.ResponseError vault/api builds, a 404 is
// treated as Logical().Write treats it, a failed attempt drops the idle
// connections as vault/api's retry layer did, and a redirect or an answer
// that is not a plain sign response goes the vault/api way.
type signCall struct {
	hc   *http.Client
	tmpl *http.Request // no token, no body, no context
	wait func(context.Context) error
}

// newSignCall prepares the call of path on c, which must be the Signer's
// own client (no retries, the Signer's timeout).
func newSignCall(c *api.Client, path string) (*signCall, error) {
	cfg := c.CloneConfig()
	r := c.NewRequest(http.MethodPut, "/v1/"+path)
	r.ClientToken = "" // read per call
	tmpl, err := r.ToHTTP()
	if err != nil {
		return nil, fmt.Errorf("vault: preparing the sign request: %w", err)
	}
	sc := &signCall{hc: cfg.HttpClient, tmpl: tmpl}
	if cfg.Limiter != nil { // VAULT_RATE_LIMIT
		sc.wait = cfg.Limiter.Wait
	}
	return sc, nil
}

// signRequest is the body of a sign call. Its fields are in the order
// encoding/json writes a map's keys, so the body is byte for byte what
// vault/api sent for the same values as a map[string]any.
type signRequest struct {
	CertType        string            `json:"cert_type"`
	CriticalOptions map[string]string `json:"critical_options"`
	Extensions      map[string]string `json:"extensions"`
	KeyID           string            `json:"key_id"`
	PublicKey       string            `json:"public_key"`
	TTL             int64             `json:"ttl"`
	ValidPrincipals string            `json:"valid_principals"`
}

// asMap is the request as vault/api takes it, for the vault/api way.
func (r *signRequest) asMap() map[string]any {
	return map[string]any{
		"cert_type":        r.CertType,
		"critical_options": stringMap(r.CriticalOptions),
		"extensions":       stringMap(r.Extensions),
		"key_id":           r.KeyID,
		"public_key":       r.PublicKey,
		"ttl":              r.TTL,
		"valid_principals": r.ValidPrincipals,
	}
}

// signResponse is what a sign call's answer is decoded into.
type signResponse struct {
	Data *struct {
		SignedKey any `json:"signed_key"`
	} `json:"data"`
	Warnings []string `json:"warnings"`
}

// signReply is the part of a sign answer the Signer uses.
type signReply struct {
	data     bool // the answer had a data object
	signed   string
	warnings []string
}

// replyOf takes a signReply from a secret vault/api parsed (nil: none).
func replyOf(secret *api.Secret) signReply {
	if secret == nil {
		return signReply{}
	}
	r := signReply{data: secret.Data != nil, warnings: secret.Warnings}
	r.signed, _ = secret.Data["signed_key"].(string)
	return r
}

var bodyBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// do sends body with token. slow is the same call through vault/api, for a
// redirect (an HA standby pointing at the active node).
func (sc *signCall) do(ctx context.Context, token string, body []byte, slow func(context.Context) (*api.Secret, error)) (signReply, error) {
	if sc.wait != nil {
		_ = sc.wait(ctx) // as vault/api: the limiter's error is not the call's
	}
	if strings.IndexFunc(token, func(c rune) bool { return !unicode.IsPrint(c) }) != -1 {
		return signReply{}, fmt.Errorf("configured Vault token contains non-printable characters and cannot be used")
	}
	req := sc.tmpl.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	req.ContentLength = int64(len(body))
	if token != "" {
		req.Header.Set(api.AuthHeaderName, token)
	}
	resp, err := sc.hc.Do(req)
	if err != nil {
		sc.hc.CloseIdleConnections()
		if cerr := ctx.Err(); cerr != nil {
			return signReply{}, cerr // what vault/api's retry policy returns
		}
		if strings.Contains(err.Error(), "tls: oversized") {
			err = fmt.Errorf("%w\n\n%s", err, api.TLSErrorString)
		}
		return signReply{}, err
	}
	defer resp.Body.Close()
	if dropsIdle(resp.StatusCode) {
		defer sc.hc.CloseIdleConnections()
	}
	switch {
	case resp.StatusCode == 301 || resp.StatusCode == 302 || resp.StatusCode == 307:
		_, _ = io.Copy(io.Discard, resp.Body)
		secret, err := slow(ctx)
		return replyOf(secret), err
	case resp.StatusCode >= 400:
		return signReply{}, failed(resp)
	}
	buf := bodyBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			bodyBufs.Put(buf)
		}
	}()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return signReply{}, err
	}
	var out signResponse
	if buf.Len() > 0 && json.Unmarshal(buf.Bytes(), &out) == nil && out.Data != nil {
		r := signReply{data: true, warnings: out.Warnings}
		r.signed, _ = out.Data.SignedKey.(string)
		return r, nil
	}
	// Empty, not JSON, or no data object: what vault/api makes of it.
	secret, err := api.ParseSecret(bytes.NewReader(buf.Bytes()))
	return replyOf(secret), err
}

// dropsIdle reports whether vault/api's retry policy counts an answer as
// a failed attempt, after which it closes the idle connections (so the
// Signer's retry dials afresh rather than reusing a connection to a Vault
// that went away): 412, 429 and 5xx other than 501. A transport error
// closes them too.
func dropsIdle(status int) bool {
	return status == 412 || status == 429 || (status >= 500 && status != 501)
}

// failed is the error of an HTTP error answer, as (*api.Logical).Write
// returns it: the *api.ResponseError, except that a 404 whose body parses
// as no secret at all is an empty answer (nil), and one whose body does
// not parse is the parse error.
func failed(resp *http.Response) error {
	err := (&api.Response{Response: resp}).Error()
	if resp.StatusCode == 404 {
		secret, perr := api.ParseSecret(resp.Body)
		switch {
		case perr == nil:
		case errors.Is(perr, io.EOF):
			return nil
		default:
			return perr
		}
		if secret != nil && (len(secret.Warnings) > 0 || len(secret.Data) > 0) {
			return err
		}
	}
	return err
}
