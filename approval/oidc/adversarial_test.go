package oidc_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/approval/oidc"
	"github.com/jit-ssh/jit-ssh/ca"
)

// TestRefusalsEchoNeitherTokenNorControlBytes: whatever a caller sends as
// a token (terminal escapes and line breaks in the header, the claims, the
// encoding), the refusal is an authentication failure whose message is
// printable ASCII, so it cannot rewrite the terminal that prints it or
// split the log line that records it, and quotes no part of the token.
func TestRefusalsEchoNeitherTokenNorControlBytes(t *testing.T) {
	stub, v, _ := setup(t)
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	good := strings.Split(stub.Token(nil), ".")
	for _, tok := range []string{
		enc(`{"alg":"RS256\u001b[2J","kid":"k\u001b"}`) + "." + enc(`{"iss":"x"}`) + "." + enc("sig"),
		enc(`{"alg":"\u001b[31mX","typ":"JWT"}`) + "." + enc(`{}`) + "." + enc("s"),
		enc(`{"alg":"RS256","kid":"\u202e\u001b"}`) + "." + enc(`{"iss":"`+stub.URL+`","aud":"jit-ssh\u001b[2J"}`) + "." + enc("s"),
		enc(`{"alg":"RS256"}`) + "." + enc(`{"iss":"\u001b[2J\n","aud":"jit-ssh"}`) + "." + enc("s"),
		enc(`{"alg":"RS256"}`) + "." + enc(`{"iss":"`+stub.URL+`","aud":["\u001b[2J\n"]}`) + "." + enc("s"),
		good[0] + "." + enc(`{"iss":"`+stub.URL+`","aud":"jit-ssh","repository":"acme/web\u001b[2J"}`) + "." + good[2],
		enc(`{"alg":"RS256"}`) + ".@@\u001b." + enc("s"),
		"\u001b[2J.x.y",
		"a\nb",
	} {
		_, err := v.VerifyWorkload(context.Background(), tok)
		if !errors.Is(err, ca.ErrUnauthenticated) {
			t.Errorf("token %q: %v, want an authentication refusal", tok, err)
			continue
		}
		msg := err.Error()
		for i := 0; i < len(msg); i++ {
			if msg[i] < 0x20 || msg[i] > 0x7e {
				t.Errorf("refusal of %q holds byte 0x%02x: %q", tok, msg[i], msg)
				break
			}
		}
		for _, part := range strings.Split(tok, ".") {
			if len(part) > 8 && strings.Contains(msg, part) {
				t.Errorf("refusal %q quotes the token's part %q", msg, part)
			}
		}
	}
}

// TestTokenForAnotherAudienceOrIssuerRefused: a token the same issuer made
// for another service (an audience besides ours included), or one another
// issuer's keys signed with our audience, is refused; so is ours offered
// to a verifier of another audience.
func TestTokenForAnotherAudienceOrIssuerRefused(t *testing.T) {
	stub, v, _ := setup(t)
	for _, aud := range []any{"jit-ssh-staging", []string{"other", "jit-ssh"}, "JIT-SSH", "jit-ssh "} {
		if _, err := v.VerifyWorkload(context.Background(), stub.Token(map[string]any{"aud": aud})); !errors.Is(err, ca.ErrUnauthenticated) {
			t.Errorf("aud %q: %v, want refused", aud, err)
		}
	}
	other, ov, _ := setup(t)
	if _, err := v.VerifyWorkload(context.Background(), other.Token(map[string]any{"iss": stub.URL})); !errors.Is(err, ca.ErrUnauthenticated) {
		t.Errorf("another issuer's key, our iss: %v, want refused", err)
	}
	if _, err := ov.VerifyWorkload(context.Background(), stub.Token(nil)); !errors.Is(err, ca.ErrUnauthenticated) {
		t.Errorf("our token at the other issuer's verifier: %v, want refused", err)
	}
}

// TestAcceptKeepsStrangersOutOfTheReplayCache: with WithAccept, tokens of
// workloads it refuses are refused before they take a place in the replay
// cache, so however many a stranger sends, a trusted job still gets in.
func TestAcceptKeepsStrangersOutOfTheReplayCache(t *testing.T) {
	stub, v, _ := setup(t, oidc.WithReplayCapacity(2), oidc.WithAccept(func(w ca.Workload) bool { return w.Repository == "acme/web" }))
	for range 5 {
		_, err := v.VerifyWorkload(context.Background(), stub.Token(map[string]any{"repository": "mallory/spam"}))
		if !errors.Is(err, ca.ErrUnauthenticated) || !strings.Contains(err.Error(), "mallory/spam") {
			t.Fatalf("a stranger's token: %v, want refused naming its repository", err)
		}
	}
	for range 2 {
		if _, err := v.VerifyWorkload(context.Background(), stub.Token(nil)); err != nil {
			t.Fatalf("acme/web's token after the stranger's: %v", err)
		}
	}
}
