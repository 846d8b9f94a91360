package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

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

// The example workflow asks for ID tokens, names the environment the
// workloads match, and logs in with the variables login reads.
func TestExampleWorkflow(t *testing.T) {
	b, err := os.ReadFile("../../deploy/github-actions/deploy.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Permissions map[string]string `yaml:"permissions"`
		Jobs        map[string]struct {
			Environment string            `yaml:"environment"`
			Env         map[string]string `yaml:"env"`
			Steps       []struct {
				Run string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatalf("deploy.yml is not YAML: %v", err)
	}
	if wf.Permissions["id-token"] != "write" {
		t.Errorf("permissions.id-token = %q, want write", wf.Permissions["id-token"])
	}
	job, ok := wf.Jobs["deploy"]
	if !ok || job.Environment != "production" {
		t.Fatalf("job deploy with environment production: %+v", wf.Jobs)
	}
	if job.Env["JIT_SSH_SERVER"] == "" || job.Env[envAudience] != defaultAudience {
		t.Errorf("job env %v: want JIT_SSH_SERVER and %s=%s", job.Env, envAudience, defaultAudience)
	}
	var login bool
	for _, s := range job.Steps {
		login = login || strings.HasPrefix(s.Run, "jit-ssh login web-prod")
	}
	if !login {
		t.Error("no step runs 'jit-ssh login web-prod'")
	}
}
