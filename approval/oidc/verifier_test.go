package oidc_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/approval/oidc"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/test/oidcstub"
)

// clock is a settable clock shared by the stub and the verifier.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func setup(t *testing.T, opts ...oidc.Option) (*oidcstub.Server, *oidc.Verifier, *clock) {
	t.Helper()
	stub := oidcstub.New(t)
	clk := &clock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	stub.SetClock(clk.now)
	v := oidc.New(stub.URL, "jit-ssh", append([]oidc.Option{oidc.WithClock(clk.now)}, opts...)...)
	return stub, v, clk
}

func TestVerifyAcceptsAJobToken(t *testing.T) {
	stub, v, _ := setup(t)
	w, err := v.VerifyWorkload(context.Background(), stub.Token(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := ca.Workload{Repository: "acme/web", Ref: "refs/heads/main", Environment: "production", RunID: "4242", RunAttempt: "1",
		Workflow: "deploy", SHA: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4", Actor: "alice", Subject: "repo:acme/web:environment:production"}
	w.TokenID, w.Expiry = "", time.Time{}
	if w != want {
		t.Errorf("got %+v\nwant %+v", w, want)
	}
	if got := w.Identity(); got != "repo:acme/web:environment:production" {
		t.Errorf("identity %q", got)
	}
	if got := w.Requester(); got != "gha:acme/web:run=4242" {
		t.Errorf("requester %q", got)
	}
}

func TestVerifyES256(t *testing.T) {
	stub, v, _ := setup(t)
	if err := stub.RotateES256(false); err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyWorkload(context.Background(), stub.Token(nil)); err != nil {
		t.Fatal(err)
	}
}

// Each refusal names its reason and is an authentication failure, never a
// dependency failure.
func TestVerifyRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		token func(s *oidcstub.Server, c *clock) string
		want  string
	}{
		{"wrong audience", func(s *oidcstub.Server, _ *clock) string { return s.Token(map[string]any{"aud": "other"}) }, `expected audience "jit-ssh"`},
		{"two audiences", func(s *oidcstub.Server, _ *clock) string {
			return s.Token(map[string]any{"aud": []string{"jit-ssh", "other"}})
		}, "2 audiences"},
		{"wrong issuer", func(s *oidcstub.Server, _ *clock) string {
			return s.Token(map[string]any{"iss": "https://token.actions.githubusercontent.com"})
		}, "issued by a different provider"},
		{"expired", func(s *oidcstub.Server, c *clock) string {
			return s.Token(map[string]any{"exp": c.now().Add(-time.Second).Unix()})
		}, "expired at"},
		{"not yet valid", func(s *oidcstub.Server, c *clock) string {
			// Within go-oidc's own 5 minute leeway: only our check refuses it.
			return s.Token(map[string]any{"nbf": c.now().Add(3 * time.Minute).Unix()})
		}, "not valid before"},
		{"lives too long", func(s *oidcstub.Server, c *clock) string {
			return s.Token(map[string]any{"exp": c.now().Add(2 * time.Hour).Unix()})
		}, "longer than the 1h0m0s"},
		{"no jti", func(s *oidcstub.Server, _ *clock) string { return s.Token(map[string]any{"jti": nil}) }, "no jti"},
		{"alg none", func(s *oidcstub.Server, _ *clock) string { return s.TokenNone(nil) }, "malformed jwt"},
		{"HS256 keyed with the public key", func(s *oidcstub.Server, _ *clock) string { return s.TokenHS256WithPublicKey(nil) }, "malformed jwt"},
		{"unknown kid", func(s *oidcstub.Server, _ *clock) string { return s.TokenUnknownKey(nil) }, "failed to verify"},
		{"tampered claims", func(s *oidcstub.Server, _ *clock) string {
			parts := strings.Split(s.Token(nil), ".")
			other := strings.Split(s.Token(map[string]any{"repository": "acme/ops"}), ".")
			return parts[0] + "." + other[1] + "." + parts[2]
		}, "failed to verify"},
		{"repository with a colon", func(s *oidcstub.Server, _ *clock) string {
			return s.Token(map[string]any{"repository": "acme/web:run=1"})
		}, "claims are not usable"},
		{"run id not decimal", func(s *oidcstub.Server, _ *clock) string { return s.Token(map[string]any{"run_id": "12:group=x"}) }, "run id"},
		{"ref with a newline", func(s *oidcstub.Server, _ *clock) string { return s.Token(map[string]any{"ref": "refs/heads/a\nb"}) }, "ref claim"},
		{"no ref", func(s *oidcstub.Server, _ *clock) string { return s.Token(map[string]any{"ref": nil}) }, "empty ref"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub, v, clk := setup(t)
			_, err := v.VerifyWorkload(context.Background(), tc.token(stub, clk))
			if !errors.Is(err, ca.ErrUnauthenticated) || errors.Is(err, ca.ErrUnavailable) {
				t.Fatalf("got %v, want an ErrUnauthenticated refusal", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestVerifyRefusesAReplayedToken(t *testing.T) {
	stub, v, clk := setup(t)
	tok := stub.Token(nil)
	if _, err := v.VerifyWorkload(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute)
	_, err := v.VerifyWorkload(context.Background(), tok)
	if !errors.Is(err, ca.ErrUnauthenticated) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("second use: got %v, want a replay refusal", err)
	}
	// Another token of the same job is fine.
	if _, err := v.VerifyWorkload(context.Background(), stub.Token(nil)); err != nil {
		t.Fatal(err)
	}
}

// A full replay cache refuses new tokens (fail closed) until the ones it
// holds expire.
func TestVerifyReplayCacheBound(t *testing.T) {
	stub, v, clk := setup(t, oidc.WithReplayCapacity(2))
	for range 2 {
		if _, err := v.VerifyWorkload(context.Background(), stub.Token(nil)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.VerifyWorkload(context.Background(), stub.Token(nil)); !errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("full cache: got %v, want ErrUnavailable", err)
	}
	clk.add(6 * time.Minute) // the remembered tokens have expired
	if _, err := v.VerifyWorkload(context.Background(), stub.Token(nil)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

// The issuer rotates its key: a token under the new kid makes the verifier
// fetch the JWKS again (once) and verify; tokens under a key it holds need
// no fetch.
func TestVerifyFollowsKeyRotation(t *testing.T) {
	stub, v, _ := setup(t)
	if _, err := v.VerifyWorkload(context.Background(), stub.Token(nil)); err != nil {
		t.Fatal(err)
	}
	fetches := stub.Count(oidcstub.JWKSPath)
	if err := stub.Rotate(false); err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyWorkload(context.Background(), stub.Token(nil)); err != nil {
		t.Fatalf("token under the rotated key: %v", err)
	}
	if got := stub.Count(oidcstub.JWKSPath); got != fetches+1 {
		t.Errorf("JWKS fetched %d times after the rotation, want %d", got, fetches+1)
	}
	// Tokens under a known key need no fetch.
	if _, err := v.VerifyWorkload(context.Background(), stub.Token(nil)); err != nil {
		t.Fatal(err)
	}
	if got := stub.Count(oidcstub.JWKSPath); got != fetches+1 {
		t.Errorf("JWKS fetched again for a known key: %d", got)
	}
}

// A JWKS that cannot be fetched is no answer: ErrUnavailable (503), not a
// refused token; once it is back, tokens verify.
func TestVerifyFailsClosedWithoutJWKS(t *testing.T) {
	stub, v, _ := setup(t)
	stub.FailJWKS(true)
	_, err := v.VerifyWorkload(context.Background(), stub.Token(nil))
	if !errors.Is(err, ca.ErrUnavailable) || errors.Is(err, ca.ErrUnauthenticated) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "could not be fetched") || !strings.Contains(err.Error(), "503") {
		t.Errorf("message %q", err)
	}
	stub.FailJWKS(false)
	if _, err := v.VerifyWorkload(context.Background(), stub.Token(nil)); err != nil {
		t.Fatalf("JWKS back: %v", err)
	}
}

func TestVerifyFailsClosedWithoutDiscovery(t *testing.T) {
	stub, v, _ := setup(t)
	stub.FailDiscovery(true)
	if _, err := v.VerifyWorkload(context.Background(), stub.Token(nil)); !errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	stub.FailDiscovery(false)
	if _, err := v.VerifyWorkload(context.Background(), stub.Token(nil)); err != nil {
		t.Fatalf("discovery back: %v", err)
	}
}

// An issuer whose discovery document names another issuer is refused.
func TestVerifyIssuerMismatch(t *testing.T) {
	stub := oidcstub.New(t)
	v := oidc.New(strings.Replace(stub.URL, "127.0.0.1", "localhost", 1), "jit-ssh")
	if _, err := v.VerifyWorkload(context.Background(), stub.Token(nil)); !errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable (discovery names another issuer)", err)
	}
}

func TestVerifyRefusesPlainHTTPIssuer(t *testing.T) {
	v := oidc.New("http://issuer.example.com", "jit-ssh")
	_, err := v.VerifyWorkload(context.Background(), "x.y.z")
	if !errors.Is(err, ca.ErrUnavailable) || !strings.Contains(err.Error(), "must be https") {
		t.Fatalf("got %v", err)
	}
}
