package main

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/oidcstub"
)

func TestActionsTokenSource(t *testing.T) {
	stub := oidcstub.New(t)
	src, err := newActionsTokenSource(stub.ActionsRequestURL(), stub.ActionsRequestToken, "jit-ssh-prod")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 2 {
		tok, err := src.fetch(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(tok, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var c struct{ Aud, Jti string }
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatal(err)
		}
		if c.Aud != "jit-ssh-prod" {
			t.Errorf("token for audience %q, want jit-ssh-prod", c.Aud)
		}
		seen[c.Jti] = true
	}
	if len(seen) != 2 {
		t.Error("two fetches gave the same token: each call needs a fresh one")
	}

	bad, err := newActionsTokenSource(stub.ActionsRequestURL(), "wrong-request-token-secret", "jit-ssh")
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.fetch(t.Context())
	if err == nil || !strings.Contains(err.Error(), "id-token: write") || strings.Contains(err.Error(), "wrong-request-token-secret") {
		t.Errorf("refused request token: %v, want advice on permissions and no token", err)
	}
	if _, err := newActionsTokenSource("http://runner.example.com/token", "t", "jit-ssh"); err == nil {
		t.Error("plain http to a remote token endpoint accepted")
	}
}

// In a job, login uses the job's ID tokens unless JIT_SSH_TOKEN names a
// person's token; GITHUB_TOKEN (the job's installation token) is not one.
func TestLoginClientInAJob(t *testing.T) {
	stub := oidcstub.New(t)
	job := map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL": stub.ActionsRequestURL(), "ACTIONS_ID_TOKEN_REQUEST_TOKEN": stub.ActionsRequestToken,
		"GITHUB_TOKEN": "ghs_x", "JIT_SSH_SERVER": "http://127.0.0.1:1",
	}
	e := &env{getenv: func(k string) string { return job[k] }}
	c, err := e.loginClient()
	if err != nil {
		t.Fatal(err)
	}
	if c == nil || stub.Count(oidcstub.ActionsPath) != 0 {
		t.Fatal("building the client fetched a token")
	}
	// The call fails (no server) but only after fetching a token.
	_, _ = c.ListRequests(t.Context(), apiListMine())
	if stub.Count(oidcstub.ActionsPath) != 1 {
		t.Errorf("token endpoint asked %d times for one call, want 1", stub.Count(oidcstub.ActionsPath))
	}
	job["JIT_SSH_TOKEN"] = "dev-alice"
	c, err = (&env{getenv: func(k string) string { return job[k] }}).loginClient()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.ListRequests(t.Context(), apiListMine())
	if stub.Count(oidcstub.ActionsPath) != 1 {
		t.Error("with JIT_SSH_TOKEN set, login still asked for an ID token")
	}
}

func apiListMine() api.ListRequestsOptions { return api.ListRequestsOptions{Mine: true} }
