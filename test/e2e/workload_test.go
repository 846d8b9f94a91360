package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/oidcstub"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// workloadConfig: web-prod lets acme/web's production deploys from main in
// at once; web-gated needs an approval from sre-leads for the same jobs.
// %ISSUER% is the stand-in issuer's URL.
const workloadConfig = `
listen: 127.0.0.1:0
data_dir: %DATA%
signer: {type: file}
identity:
  type: static
  static:
    users:
      alice: {token: dev-alice, teams: [backend]}
      bob:   {token: dev-bob,   teams: [sre-leads]}
      carol: {token: dev-carol, teams: [security]}
      sam:   {token: dev-sam,   teams: [ops]}
auditors: [security]
admins: [ops]
workload_identity:
  github_actions: {issuer: "%ISSUER%", audience: jit-ssh}
host_groups:
  web-prod:
    principals: [deploy]
    approvals_required: 0
    max_duration: 30m
    cert_ttl: 5m
    workloads:
      - {repository: acme/web, ref: refs/heads/main, environment: production}
  web-gated:
    principals: [deploy]
    approvers: [sre-leads]
    approvals_required: 1
    max_duration: 30m
    cert_ttl: 5m
    workloads:
      - {repository: acme/web, ref: refs/heads/main, environment: production}
` + testLimits

func startWorkloadServer(t *testing.T) (*server, *oidcstub.Server) {
	t.Helper()
	stub := oidcstub.New(t)
	return startWithConfig(t, strings.ReplaceAll(workloadConfig, "%ISSUER%", stub.URL)), stub
}

// job runs the CLI as a GitHub Actions job: the runner's token endpoint in
// the environment, no JIT_SSH_TOKEN, its own HOME and agent; extra holds
// more variables.
func job(t *testing.T, srv *server, stub *oidcstub.Server, sock string, home string, extra []string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, jitBinary(t), args...)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"JIT_SSH_SERVER=" + srv.URL,
		"SSH_AUTH_SOCK=" + sock,
		"ACTIONS_ID_TOKEN_REQUEST_URL=" + stub.ActionsRequestURL(),
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN=" + stub.ActionsRequestToken,
		// A job usually has GITHUB_TOKEN too: it is not a person's and
		// must not be used.
		"GITHUB_TOKEN=ghs_installation_token_of_the_job",
	}, extra...)
	return cmd
}

// TestWorkloadLoginThenSSH: a deploy job of acme/web (main, production)
// runs plain `jit-ssh login web-prod`; the server verifies its ID token
// against the stand-in issuer, the agent gets a certificate whose KeyId
// names the run, and a real sshd lets it in and logs that KeyId.
func TestWorkloadLoginThenSSH(t *testing.T) {
	srv, stub := startWorkloadServer(t)
	sock := testenv.StartAgent(t)
	carol := srv.as(t, "carol", "")
	hostFiles, host := hostDir(t, carol, "web-prod")

	r := runResult(t, job(t, srv, stub, sock, testenv.TempDir(t), nil, "login", "web-prod"))
	if r.Code != 0 {
		t.Fatalf("job login: exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, secret := range []string{stub.ActionsRequestToken, "eyJ"} {
		if strings.Contains(r.Stdout+r.Stderr, secret) {
			t.Errorf("the login's output shows a token (%q...):\n%s%s", secret[:3], r.Stdout, r.Stderr)
		}
	}
	if n := stub.Count(oidcstub.ActionsPath); n < 3 {
		t.Errorf("the job's token endpoint was asked %d times; want a fresh token per call (list, create, issue)", n)
	}

	stdout, stderr, err := testenv.SSH(t, sock, host.Port, testenv.Login(t), "echo", "deployed")
	if err != nil || strings.TrimSpace(stdout) != "deployed" {
		t.Fatalf("ssh with the job's certificate: err=%v stdout=%q stderr=%q\nsshd log:\n%s", err, stdout, stderr, host.Log())
	}
	certs := auditCerts(t, srv)
	if len(certs) != 1 {
		t.Fatalf("audit certs: %d certificates, want 1: %+v", len(certs), certs)
	}
	c := certs[0]
	wantKeyID := fmt.Sprintf("jit-ssh:user=gha:acme/web:run=4242:group=web-prod:req=%s:by=-", c.RequestID)
	if c.KeyID != wantKeyID || c.Requester != "gha:acme/web:run=4242" {
		t.Errorf("certificate = %+v, want KeyId %q, requester gha:acme/web:run=4242", c, wantKeyID)
	}
	host.WaitForLog(t, "ID "+wantKeyID, 10*time.Second)

	// The request records the verified run; an auditor finds the run's
	// certificates by its requester name, and can revoke them by it.
	ev := carol.ok("audit", "events", "-o", "json", "--request", c.RequestID).Stdout
	for _, want := range []string{`"identity":"repo:acme/web:environment:production"`, `"run_id":"4242"`, `"workflow":"deploy"`} {
		if !strings.Contains(ev, want) {
			t.Errorf("request.created does not record %s:\n%s", want, ev)
		}
	}
	if got := auditCerts(t, srv, "--user", "gha:acme/web:run=4242"); len(got) != 1 {
		t.Errorf("audit certs --user gha:acme/web:run=4242: %d certificates, want 1", len(got))
	}
	carol.ok("audit", "verify")

	// Revoking the run: after host sync the host refuses its certificate.
	sam := srv.as(t, "sam", "")
	sam.ok("revoke", "--user", "gha:acme/web:run=4242", "--reason", "run cancelled")
	if got := auditCerts(t, srv, "--user", "gha:acme/web:run=4242"); len(got) != 1 || got[0].RevokedAt == nil {
		t.Errorf("the run's certificate after the revocation: %+v, want it revoked", got)
	}
	carol.ok("host", "sync", "--dir", hostFiles)
	if _, stderr, err := testenv.SSH(t, sock, host.Port, testenv.Login(t), "true"); err == nil {
		t.Errorf("the revoked run's certificate still got in; stderr=%q", stderr)
	}
}

// TestWorkloadWaitsForApproval: a group that needs an approval makes the
// deploy wait, like a person's login, until an approver approves; the
// KeyId then names the approver.
func TestWorkloadWaitsForApproval(t *testing.T) {
	srv, stub := startWorkloadServer(t)
	sock := testenv.StartAgent(t)
	bob := srv.as(t, "bob", "")
	cmd := job(t, srv, stub, sock, testenv.TempDir(t), nil, "login", "web-gated")
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var pending []api.Request
	waitFor(t, "the job's request to be reviewable", 20*time.Second, func() bool {
		pending = jsonLines[api.Request](t, bob.ok("request", "list", "--reviewable", "-o", "json").Stdout)
		return len(pending) == 1
	})
	p := pending[0]
	if p.Requester != "gha:acme/web:run=4242" || !strings.Contains(p.Reason, "GitHub Actions run 4242 of acme/web") {
		t.Fatalf("reviewable request = %+v, want the run's, with the run described as its reason", p)
	}
	waitFor(t, "the job to wait", 10*time.Second, func() bool { return strings.Contains(errb.String(), "Waiting for 1 approval(s)") })
	if certs := auditCerts(t, srv); len(certs) != 0 {
		t.Fatalf("a certificate before the approval: %+v", certs)
	}
	bob.ok("review", p.ID, "--approve", "-m", "deploy ok")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("job login: %v\nstderr:\n%s", err, errb.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("the job did not finish after the approval:\n%s", errb.String())
	}
	certs := auditCerts(t, srv)
	if len(certs) != 1 || !strings.HasSuffix(certs[0].KeyID, ":by=bob") || !strings.HasPrefix(certs[0].KeyID, "jit-ssh:user=gha:acme/web:run=4242:group=web-gated:") {
		t.Fatalf("certificates = %+v, want one by bob for the run", certs)
	}
}

// rawCall makes one API call with a workload token, as a job could.
func rawCall(t *testing.T, srv *server, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "GitHubActions "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWorkloadRefusals: every bad token, and every job the group does not
// name, is refused with its reason, and nothing is issued. The JWKS being
// unreachable is a 503 (fail closed), not a refusal.
func TestWorkloadRefusals(t *testing.T) {
	srv, stub := startWorkloadServer(t)
	sock := testenv.StartAgent(t)
	const create = `{"host_group":"web-prod","duration":"10m","reason":"deploy"}`

	// First, before any key was fetched: the JWKS is down.
	stub.FailJWKS(true)
	if code, body := rawCall(t, srv, "POST", "/v1/requests", stub.Token(nil), create); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "could not be fetched") {
		t.Errorf("JWKS down: %d %s, want 503 saying the keys could not be fetched", code, body)
	}
	r := runResult(t, job(t, srv, stub, sock, testenv.TempDir(t), nil, "login", "web-prod", "--timeout", "1s"))
	if r.Code != 1 || !strings.Contains(r.Stderr, "GitHub Actions token issuer is unavailable") {
		t.Errorf("login with the JWKS down: exit %d, stderr %q; want exit 1 naming the unavailable issuer", r.Code, r.Stderr)
	}
	stub.FailJWKS(false)

	now := time.Now()
	for _, tc := range []struct {
		name  string
		job   map[string]any // the claims of the job's tokens
		extra []string
		want  string
	}{
		{"wrong audience", nil, []string{"JIT_SSH_AUDIENCE=deploy-bot"}, `expected audience "jit-ssh"`},
		{"wrong issuer", map[string]any{"iss": "https://token.actions.githubusercontent.com"}, nil, "issued by a different provider"},
		{"expired", map[string]any{"exp": now.Add(-time.Minute).Unix(), "nbf": now.Add(-10 * time.Minute).Unix()}, nil, "expired at"},
		{"not yet valid", map[string]any{"nbf": now.Add(4 * time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix()}, nil, "not valid before"},
		{"another repository", map[string]any{"repository": "acme/ops", "sub": "repo:acme/ops:environment:production"}, nil,
			// Refused at sign-in: no group trusts acme/ops, so its tokens
			// never take a place in the replay cache.
			"workload repo:acme/ops:environment:production (ref refs/heads/main) may not request any host group"},
		{"another ref", map[string]any{"ref": "refs/heads/feature"}, nil, "(ref refs/heads/feature) may not request web-prod"},
		{"another environment", map[string]any{"environment": "staging"}, nil, "workload repo:acme/web:environment:staging"},
		{"no environment", map[string]any{"environment": nil}, nil, "workload repo:acme/web:ref:refs/heads/main"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub.SetJob(tc.job)
			defer stub.SetJob(nil)
			r := runResult(t, job(t, srv, stub, sock, testenv.TempDir(t), tc.extra, "login", "web-prod", "--timeout", "5s"))
			t.Logf("login: exit %d: %s", r.Code, strings.TrimSpace(r.Stderr))
			if r.Code != 3 || !strings.Contains(r.Stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 3 (not authorised) saying %q", r.Code, r.Stderr, tc.want)
			}
		})
	}

	// Tokens no runner would hand out, sent as a job could.
	for _, tc := range []struct {
		name, token, want string
	}{
		{"alg none", stub.TokenNone(nil), "malformed jwt"},
		{"HS256 signed with the public key", stub.TokenHS256WithPublicKey(nil), "malformed jwt"},
		{"unknown kid", stub.TokenUnknownKey(nil), "failed to verify"},
		{"not a token", "ghp_notajwt", "malformed jwt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := rawCall(t, srv, "POST", "/v1/requests", tc.token, create)
			if code != http.StatusUnauthorized || !strings.Contains(body, tc.want) {
				t.Errorf("got %d %s, want 401 saying %q", code, body, tc.want)
			}
		})
	}
	t.Run("replayed token", func(t *testing.T) {
		tok := stub.Token(nil)
		if code, body := rawCall(t, srv, "GET", "/v1/requests?mine=true", tok, ""); code != http.StatusOK {
			t.Fatalf("first use: %d %s", code, body)
		}
		code, body := rawCall(t, srv, "POST", "/v1/requests", tok, create)
		if code != http.StatusUnauthorized || !strings.Contains(body, "already used") {
			t.Errorf("second use: %d %s, want 401 saying it was already used", code, body)
		}
	})

	if certs := auditCerts(t, srv); len(certs) != 0 {
		t.Errorf("refused jobs got certificates: %+v", certs)
	}
	// Only the one job whose claims matched filed a request (none did):
	// every refusal above was decided before a request existed.
	carol := srv.as(t, "carol", "")
	if reqs := jsonLines[api.Request](t, carol.ok("request", "list", "-o", "json").Stdout); len(reqs) != 0 {
		t.Errorf("refused jobs filed requests: %+v", reqs)
	}
}
