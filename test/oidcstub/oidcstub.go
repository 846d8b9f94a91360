// Package oidcstub is a stand-in for GitHub Actions' OIDC issuer in tests
// and the CI demo: an HTTP server with the issuer's discovery document and
// JWKS, and the job-side token endpoint a runner offers
// (ACTIONS_ID_TOKEN_REQUEST_URL). It signs real tokens (RS256 by default,
// ES256 on request) with keys it generates, rotates keys on demand, and
// mints tokens with whatever claims a test chooses, including the broken
// ones a verifier must refuse (alg none, HS256 keyed with the public key,
// an unknown kid).
//
// Endpoints:
//
//	GET /.well-known/openid-configuration   discovery: issuer, jwks_uri, algorithms
//	GET /.well-known/jwks                   the signing keys (current first, then kept old ones)
//	GET /actions/id-token?api-version=2.0&audience=A
//	                                        a runner's token endpoint: {"value": JWT} for
//	                                        "Authorization: Bearer <ActionsRequestToken>"
//
// It does not depend on go-oidc or go-jose: the tokens are built by hand,
// so the verifier is checked against an independent implementation.
package oidcstub

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"

	"sync"
	"testing"
	"time"
)

// Endpoint paths.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	JWKSPath      = "/.well-known/jwks"
	ActionsPath   = "/actions/id-token"
)

// DefaultAudience is the audience of Token and of the job's tokens unless
// set otherwise.
const DefaultAudience = "jit-ssh"

// key is one signing key.
type key struct {
	kid string
	rsa *rsa.PrivateKey   // RS256
	ec  *ecdsa.PrivateKey // ES256
}

func (k *key) alg() string {
	if k.ec != nil {
		return "ES256"
	}
	return "RS256"
}

// Server is a running stand-in issuer.
type Server struct {
	// URL is the issuer (no trailing slash): the workload_identity
	// github_actions issuer to configure.
	URL string
	// ActionsRequestToken is the runner's request token the token endpoint
	// wants (ACTIONS_ID_TOKEN_REQUEST_TOKEN).
	ActionsRequestToken string

	srv *http.Server
	ln  net.Listener

	mu        sync.Mutex
	now       func() time.Time
	keys      []*key // keys[0] signs; all are published
	nextKid   int
	failJWKS  bool
	failDisco bool
	job       map[string]any // claims of the job's tokens (over the defaults)
	counts    map[string]int
}

// New starts a stub on a loopback port and stops it at the end of the test.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a stub listening on addr (host:port, port 0 for any).
func Start(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("oidcstub: %w", err)
	}
	s := &Server{URL: "http://" + ln.Addr().String(), ln: ln, now: time.Now, counts: map[string]int{}, job: map[string]any{}}
	s.ActionsRequestToken = "actions-request-" + randomHex(8)
	if err := s.Rotate(false); err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+DiscoveryPath, s.discovery)
	mux.HandleFunc("GET "+JWKSPath, s.jwks)
	mux.HandleFunc("GET "+ActionsPath, s.actionsToken)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the stub.
func (s *Server) Close() { _ = s.srv.Close() }

// ActionsRequestURL is the runner's token endpoint
// (ACTIONS_ID_TOKEN_REQUEST_URL), with a query of its own as GitHub's has.
func (s *Server) ActionsRequestURL() string { return s.URL + ActionsPath + "?api-version=2.0" }

// SetClock sets the clock of iat, nbf and exp; nil means time.Now.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now == nil {
		now = time.Now
	}
	s.now = now
}

// Rotate makes a new RS256 key the signing key. With keepOld the earlier
// keys stay in the JWKS (a rotation's overlap); without, only the new one
// is published.
func (s *Server) Rotate(keepOld bool) error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("oidcstub: %w", err)
	}
	s.addKey(&key{rsa: k}, keepOld)
	return nil
}

// RotateES256 is Rotate with a P-256 key (tokens then say alg ES256).
func (s *Server) RotateES256(keepOld bool) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("oidcstub: %w", err)
	}
	s.addKey(&key{ec: k}, keepOld)
	return nil
}

func (s *Server) addKey(k *key, keepOld bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextKid++
	k.kid = fmt.Sprintf("stub-key-%d", s.nextKid)
	if keepOld {
		s.keys = append([]*key{k}, s.keys...)
	} else {
		s.keys = []*key{k}
	}
}

// KeyIDs lists the published key IDs, the signing key first.
func (s *Server) KeyIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range s.keys {
		out = append(out, k.kid)
	}
	return out
}

// FailJWKS makes the JWKS answer 503 (on) or normally (off).
func (s *Server) FailJWKS(on bool) { s.mu.Lock(); s.failJWKS = on; s.mu.Unlock() }

// FailDiscovery makes the discovery document answer 503 (on) or normally.
func (s *Server) FailDiscovery(on bool) { s.mu.Lock(); s.failDisco = on; s.mu.Unlock() }

// SetJob sets the claims of the tokens the job's token endpoint mints,
// over the defaults (see Claims); a nil value removes a claim.
func (s *Server) SetJob(claims map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.job = claims
}

// Count returns how many requests path (one of the *Path constants) has
// had.
func (s *Server) Count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[path]
}

// Claims returns a deploy job's claims as GitHub writes them, at the
// stub's clock: repository acme/web, ref refs/heads/main, environment
// production, run 4242, a fresh jti, valid from now for five minutes; then
// over sets or (with a nil value) removes claims.
func (s *Server) Claims(over map[string]any) map[string]any {
	s.mu.Lock()
	now := s.now()
	s.mu.Unlock()
	c := map[string]any{
		"iss": s.URL, "aud": DefaultAudience,
		"sub":        "repo:acme/web:environment:production",
		"repository": "acme/web", "repository_owner": "acme", "repository_id": "1296269",
		"ref": "refs/heads/main", "ref_type": "branch", "environment": "production",
		"run_id": "4242", "run_number": "17", "run_attempt": "1",
		"workflow": "deploy", "workflow_ref": "acme/web/.github/workflows/deploy.yml@refs/heads/main",
		"job_workflow_ref": "acme/web/.github/workflows/deploy.yml@refs/heads/main",
		"sha":              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4", "actor": "alice", "event_name": "push",
		"runner_environment": "github-hosted",
		"jti":                randomHex(16),
		"iat":                now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// Token returns a token with Claims(over), signed with the signing key.
func (s *Server) Token(over map[string]any) string {
	s.mu.Lock()
	k := s.keys[0]
	s.mu.Unlock()
	return sign(k, map[string]any{"typ": "JWT", "alg": k.alg(), "kid": k.kid}, s.Claims(over))
}

// TokenNone returns Claims(over) unsigned, with alg "none".
func (s *Server) TokenNone(over map[string]any) string {
	return encodeSegments(map[string]any{"typ": "JWT", "alg": "none"}, s.Claims(over)) + "."
}

// TokenHS256WithPublicKey returns Claims(over) "signed" with HS256 keyed
// by the signing key's public key (PEM), the classic algorithm-confusion
// forgery: anyone can make it, since the key is public.
func (s *Server) TokenHS256WithPublicKey(over map[string]any) string {
	s.mu.Lock()
	k := s.keys[0]
	s.mu.Unlock()
	var pub any = &k.rsa.PublicKey
	if k.ec != nil {
		pub = &k.ec.PublicKey
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	in := encodeSegments(map[string]any{"typ": "JWT", "alg": "HS256", "kid": k.kid}, s.Claims(over))
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + b64(m.Sum(nil))
}

// TokenUnknownKey returns Claims(over) signed by a key the JWKS does not
// publish, under a kid it does not know.
func (s *Server) TokenUnknownKey(over map[string]any) string {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return sign(&key{kid: "not-published", rsa: k}, map[string]any{"typ": "JWT", "alg": "RS256", "kid": "not-published"}, s.Claims(over))
}

func (s *Server) count(path string) {
	s.mu.Lock()
	s.counts[path]++
	s.mu.Unlock()
}

func (s *Server) discovery(w http.ResponseWriter, _ *http.Request) {
	s.count(DiscoveryPath)
	s.mu.Lock()
	fail := s.failDisco
	s.mu.Unlock()
	if fail {
		http.Error(w, "discovery unavailable", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, map[string]any{
		"issuer": s.URL, "jwks_uri": s.URL + JWKSPath,
		"subject_types_supported":               []string{"public", "pairwise"},
		"response_types_supported":              []string{"id_token"},
		"claims_supported":                      []string{"sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository", "environment", "run_id"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid"},
	})
}

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	s.count(JWKSPath)
	s.mu.Lock()
	fail, keys := s.failJWKS, s.keys
	s.mu.Unlock()
	if fail {
		http.Error(w, "jwks unavailable", http.StatusServiceUnavailable)
		return
	}
	var out []map[string]any
	for _, k := range keys {
		if k.ec != nil {
			out = append(out, map[string]any{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": k.kid,
				"x": b64(pad32(k.ec.X)), "y": b64(pad32(k.ec.Y))})
			continue
		}
		out = append(out, map[string]any{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": k.kid,
			"n": b64(k.rsa.N.Bytes()), "e": b64(big.NewInt(int64(k.rsa.E)).Bytes())})
	}
	writeJSON(w, map[string]any{"keys": out})
}

// actionsToken is a runner's token endpoint: a fresh token with the job's
// claims for the audience asked.
func (s *Server) actionsToken(w http.ResponseWriter, r *http.Request) {
	s.count(ActionsPath)
	if r.Header.Get("Authorization") != "Bearer "+s.ActionsRequestToken {
		http.Error(w, `{"message":"bad request token"}`, http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	over := map[string]any{}
	for k, v := range s.job {
		over[k] = v
	}
	s.mu.Unlock()
	if aud := r.URL.Query().Get("audience"); aud != "" {
		over["aud"] = aud
	}
	writeJSON(w, map[string]any{"count": 1, "value": s.Token(over)})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func sign(k *key, header, claims map[string]any) string {
	in := encodeSegments(header, claims)
	h := sha256.Sum256([]byte(in))
	var sig []byte
	if k.ec != nil {
		r, ss, err := ecdsa.Sign(rand.Reader, k.ec, h[:])
		if err != nil {
			panic(err)
		}
		sig = append(pad32(r), pad32(ss)...)
	} else {
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k.rsa, crypto.SHA256, h[:]); err != nil {
			panic(err)
		}
	}
	return in + "." + b64(sig)
}

func encodeSegments(header, claims map[string]any) string {
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	return b64(hb) + "." + b64(cb)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func pad32(n *big.Int) []byte {
	b := make([]byte, 32)
	return n.FillBytes(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
