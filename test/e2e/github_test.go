package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/ghstub"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// GitHub identities of the tests: tokens the stand-in knows, and teams of
// the organisation acme.
const (
	ghOrg         = "acme"
	ghServerToken = "ghs_jitsshserver0000000000000000"
	ghBob         = "gho_bob000000000000000000000000000"
	ghDave        = "gho_dave00000000000000000000000000"
	ghMallory     = "gho_mallory000000000000000000000000"
	ghCarol       = "gho_carol0000000000000000000000000"
)

// githubConfig is a server with identity.type github against the
// stand-in (api_url is its base URL, as for a GitHub Enterprise Server);
// prod-db needs two approvals from sre-leads. cache_ttl 0 sends every
// question to GitHub, so a failure shows at once.
const githubConfig = `
listen: 127.0.0.1:0
data_dir: %DATA%
signer: {type: file}
identity:
  type: github
  github: {api_url: "%GITHUB%", org: acme, token_env: JIT_SSH_GITHUB_TOKEN, cache_ttl: 0s}
auditors: [security]
host_groups:
  prod-db:
    principals: [prod-db]
    requesters: [backend]
    approvers: [sre-leads]
    approvals_required: 2
    max_duration: 1h
    cert_ttl: 5m
    extensions: [permit-pty]
notify:
  webhook_url: "%WEBHOOK%"
` + testLimits

// githubWorld is the stand-in GitHub, a webhook receiver, and a jit-ssh
// server that uses both.
type githubWorld struct {
	gh      *ghstub.Server
	srv     *server
	hooks   *hookReceiver
	sock    string // alice's ssh-agent
	alice   *user  // signed in with 'jit-ssh auth login'
	bob     *user
	dave    *user
	mallory *user // in the organisation, in no team
	carol   *user // auditor
}

func startGitHubWorld(t *testing.T) *githubWorld {
	t.Helper()
	gh := ghstub.New(t)
	gh.AddUser("jit-ssh-bot", ghServerToken)
	for login, token := range map[string]string{"bob": ghBob, "dave": ghDave, "mallory": ghMallory, "carol": ghCarol} {
		gh.AddUser(login, token)
	}
	gh.SetTeam(ghOrg, "backend", "alice")
	gh.SetTeam(ghOrg, "sre-leads", "bob", "dave")
	gh.SetTeam(ghOrg, "security", "carol")
	hooks := newHookReceiver(t)

	t.Setenv("JIT_SSH_GITHUB_TOKEN", ghServerToken) // the server process inherits it
	cfg := strings.NewReplacer("%GITHUB%", gh.URL, "%WEBHOOK%", hooks.srv.URL+"/hook").Replace(githubConfig)
	srv := startWithConfig(t, cfg)

	w := &githubWorld{gh: gh, srv: srv, hooks: hooks, sock: testenv.StartAgent(t)}
	w.alice = srv.as(t, "alice", w.sock)
	w.alice.token = "" // she signs in below; the CLI then uses the stored token
	as := func(login, token string) *user {
		u := srv.as(t, login, "")
		u.token = token
		return u
	}
	w.bob, w.dave, w.mallory, w.carol = as("bob", ghBob), as("dave", ghDave), as("mallory", ghMallory), as("carol", ghCarol)
	w.signIn(t)
	return w
}

// signIn runs 'jit-ssh auth login' as alice: the device flow against the
// stand-in, which plays alice entering the code in her browser.
func (w *githubWorld) signIn(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := w.alice.command(ctx, "auth", "login")
	cmd.Env = append(cmd.Env, "JIT_SSH_GITHUB_CLIENT_ID=Iv1.jitsshtest", "JIT_SSH_GITHUB_URL="+w.gh.URL, "JIT_SSH_GITHUB_API_URL="+w.gh.APIURL())
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var code string
	waitFor(t, "auth login to show the one-time code", 20*time.Second, func() bool {
		codes := w.gh.UserCodes()
		if len(codes) == 1 && strings.Contains(errb.String(), codes[0]) {
			code = codes[0]
		}
		return code != ""
	})
	token, err := w.gh.ApproveDevice(code, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("auth login: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "Signed in to GitHub as alice") || strings.Contains(out.String()+errb.String(), token) {
		t.Fatalf("auth login output:\nstdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
	w.alice.ok("auth", "status") // the stored token is found
}

// hookReceiver is the chat system: it collects webhook posts.
type hookReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	texts []string
	raw   []string
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var msg struct {
			Text string `json:"text"`
		}
		_ = json.Unmarshal(b, &msg)
		h.mu.Lock()
		h.texts, h.raw = append(h.texts, msg.Text), append(h.raw, string(b))
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) got() (texts, raw []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.texts), slices.Clone(h.raw)
}

// apiCall makes one HTTP call to the jit-ssh API as token and returns the
// status and the error body, if any.
func apiCall(t *testing.T, s *server, token, method, path, body string) (int, api.ErrorBody) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb
}

func showRequest(t *testing.T, u *user, id string) api.Request {
	t.Helper()
	var r api.Request
	if err := json.Unmarshal([]byte(u.ok("request", "show", id, "-o", "json").Stdout), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestGitHubReviewsThenSSH is the review flow end to end with GitHub
// identity: alice signs in with the device flow and logs in to prod-db,
// which needs two approvals from sre-leads; a non-member's approval is
// refused with 403 and does not count; dave requests changes, alice edits
// the request (dismissing bob's approval), both approve, alice's waiting
// login completes and plain ssh works.
func TestGitHubReviewsThenSSH(t *testing.T) {
	w := startGitHubWorld(t)
	host := hostFor(t, w.alice, "prod-db")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	login := w.alice.start(ctx, "login", "prod-db", "--duration", "1h", "--reason", "INC-7: replica lag")

	var pending []api.Request
	waitFor(t, "alice's request to be reviewable by bob", 20*time.Second, func() bool {
		pending = jsonLines[api.Request](t, w.bob.ok("request", "list", "--reviewable", "-o", "json").Stdout)
		return len(pending) == 1
	})
	id := pending[0].ID
	if r := pending[0]; r.Requester != "alice" || r.HostGroup != "prod-db" || r.ApprovalsRequired != 2 || strings.Join(r.ApproverTeams, ",") != "sre-leads" {
		t.Fatalf("reviewable request = %+v, want alice's prod-db request needing 2 approvals from sre-leads", r)
	}
	waitFor(t, "login to say whom it waits for", 10*time.Second, func() bool {
		return strings.Contains(login.Stderr.String(), "Waiting for 2 approval(s) from sre-leads")
	})

	// mallory is in the organisation but not in sre-leads: refused with
	// 403 and the reason, through the API and the CLI, and nothing counts.
	status, eb := apiCall(t, w.srv, ghMallory, http.MethodPost, "/v1/requests/"+id+"/reviews", `{"event":"APPROVE","body":"lgtm"}`)
	if status != http.StatusForbidden || eb.Error.Code != "not_an_approver" || !strings.Contains(eb.Error.Message, "sre-leads") {
		t.Errorf("mallory's approval through the API: %d %+v, want 403 not_an_approver naming sre-leads", status, eb)
	}
	r := w.mallory.run("review", id, "--approve", "-m", "lgtm")
	if r.Code != 3 || !strings.Contains(r.Stderr, "not a member of sre-leads") {
		t.Errorf("mallory's approval through the CLI: exit %d, stderr %q; want 3 and the reason", r.Code, r.Stderr)
	}
	// A former approver's approval does not count either.
	w.gh.SetTeam(ghOrg, "sre-leads", "bob")
	if r := w.dave.run("review", id, "--approve"); r.Code != 3 {
		t.Errorf("dave's approval after he left sre-leads: exit %d, want 3\n%s", r.Code, r.Stderr)
	}
	w.gh.SetTeam(ghOrg, "sre-leads", "bob", "dave")

	w.bob.ok("review", id, "--approve", "-m", "fine by me")
	w.dave.ok("review", id, "--request-changes", "-m", "30 minutes is enough")
	got := showRequest(t, w.alice, id)
	if got.State != "pending" || strings.Join(got.Approvals, ",") != "bob" || strings.Join(got.ChangesRequestedBy, ",") != "dave" {
		t.Fatalf("after bob approved and dave requested changes: state %s, approvals %v, changes by %v; want pending, [bob], [dave]",
			got.State, got.Approvals, got.ChangesRequestedBy)
	}
	for _, rv := range got.Reviews {
		if rv.Reviewer == "mallory" || (rv.Reviewer == "dave" && rv.Event == "APPROVE") {
			t.Errorf("a refused review was recorded: %+v", rv)
		}
	}

	// alice narrows the request: both earlier reviews are dismissed.
	w.alice.ok("request", "edit", id, "--duration", "30m", "--reason", "INC-7: replica lag, 30 minutes")
	got = showRequest(t, w.alice, id)
	if got.State != "pending" || got.Duration != "30m0s" || len(got.Approvals) != 0 || len(got.ChangesRequestedBy) != 0 {
		t.Fatalf("after the edit: state %s, duration %s, approvals %v, changes by %v; want pending, 30m, none, none",
			got.State, got.Duration, got.Approvals, got.ChangesRequestedBy)
	}
	for _, rv := range got.Reviews {
		if !rv.Dismissed {
			t.Errorf("review %+v survived the edit", rv)
		}
	}

	w.bob.ok("review", id, "--approve", "-m", "30m ok")
	if got := showRequest(t, w.alice, id); got.State != "pending" {
		t.Fatalf("after one of two approvals: state %s, want pending", got.State)
	}
	w.dave.ok("review", id, "--approve", "-m", "thanks")
	approved := time.Now()

	select {
	case err := <-login.done:
		if err != nil {
			t.Fatalf("login failed: %v\nstdout:\n%s\nstderr:\n%s", err, login.Stdout.String(), login.Stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("login did not finish after the approval\nstderr:\n%s", login.Stderr.String())
	}
	// Measured, not asserted: from the server committing the approving
	// review (approved_at) to the waiting login's exit, with its
	// certificate in the agent. The review command's own exit races the
	// login's, so the second figure can be negative.
	if final := showRequest(t, w.alice, id); final.ApprovedAt != nil {
		t.Logf("login completed %s after the approving review was committed (%s after the review command returned; GitHub identity, cache_ttl 0)",
			login.ended.Sub(*final.ApprovedAt).Round(time.Millisecond), login.ended.Sub(approved).Round(time.Millisecond))
	}
	for _, want := range []string{"bob: approve: fine by me", "dave: request changes: 30 minutes is enough", "dave: approve: thanks", "Approved by bob, dave"} {
		if !strings.Contains(login.Stderr.String(), want) {
			t.Errorf("login progress lacks %q:\n%s", want, login.Stderr.String())
		}
	}

	stdout, stderr, err := testenv.SSH(t, w.sock, host.Port, testenv.Login(t), "echo", "hello-from-prod-db")
	if err != nil || strings.TrimSpace(stdout) != "hello-from-prod-db" {
		t.Fatalf("ssh into prod-db: err=%v stdout=%q stderr=%q\nsshd log:\n%s", err, stdout, stderr, host.Log())
	}

	// The ledger names the two approvers who count, and the grant runs 30
	// minutes from the approval.
	certs := jsonLines[api.Certificate](t, w.carol.ok("audit", "certs", "-o", "json").Stdout)
	if len(certs) != 1 {
		t.Fatalf("audit certs lists %d certificates, want 1", len(certs))
	}
	if want := fmt.Sprintf("jit-ssh:user=alice:group=prod-db:req=%s:by=bob,dave", id); certs[0].KeyID != want {
		t.Errorf("key id %q, want %q", certs[0].KeyID, want)
	}
	// The refused reviews are in the ledger as refusals, with the reason.
	// mallory's second one, identical to the first, is counted and
	// recorded with its count when its window closes (approval.RefusalWindow).
	var refused []string
	for _, ev := range jsonLines[api.Event](t, w.carol.ok("audit", "events", "-o", "json").Stdout) {
		if ev.Type == "review.refused" && ev.RequestID == id && ev.Data["code"] == "not_an_approver" {
			refused = append(refused, ev.Actor)
		}
	}
	if want := []string{"mallory", "dave"}; !slices.Equal(refused, want) {
		t.Errorf("review.refused events by %v, want %v", refused, want)
	}
	got = showRequest(t, w.alice, id)
	if got.ApprovedAt == nil || got.GrantEndsAt == nil || !got.GrantEndsAt.Equal(got.ApprovedAt.Add(30*time.Minute)) {
		t.Errorf("approved at %v, grant ends %v; want 30m after the approval", got.ApprovedAt, got.GrantEndsAt)
	}

	// Approvers heard about it where they work, without any token.
	var texts, raw []string
	waitFor(t, "the approval notification", 10*time.Second, func() bool {
		texts, raw = w.hooks.got()
		return len(texts) > 0 && strings.Contains(texts[len(texts)-1], "approved by bob, dave")
	})
	wantHooks := []string{
		"alice requests prod-db for 1h (" + id + ")",
		"bob approved (1 of 2) " + id,
		"dave requested changes on " + id,
		"bob approved (1 of 2) " + id,
		id + " (prod-db for alice) approved by bob, dave",
	}
	if len(texts) != len(wantHooks) {
		t.Errorf("webhook got %d messages, want %d:\n%s", len(texts), len(wantHooks), strings.Join(texts, "\n"))
	}
	for i := range min(len(texts), len(wantHooks)) {
		if !strings.Contains(texts[i], wantHooks[i]) {
			t.Errorf("webhook message %d = %q, want it to contain %q", i, texts[i], wantHooks[i])
		}
	}
	for _, b := range raw {
		for _, tok := range []string{ghServerToken, ghBob, ghDave, ghMallory, ghCarol, "gho_"} {
			if strings.Contains(b, tok) {
				t.Errorf("a webhook message carries a token: %s", b)
			}
		}
	}
	if log := w.srv.Log(); strings.Contains(log, ghServerToken) || strings.Contains(log, "gho_") {
		t.Errorf("the server log carries a token")
	}
}

// TestGitHubOutageFailsClosed: while GitHub answers 500 or is rate
// limited, no decision is taken and no certificate issued; the CLI and
// the API say 503 and name GitHub. Once GitHub recovers, the same login
// works.
func TestGitHubOutageFailsClosed(t *testing.T) {
	w := startGitHubWorld(t)
	host := hostFor(t, w.alice, "prod-db")

	w.alice.ok("request", "create", "prod-db", "--duration", "30m", "--reason", "INC-8")
	reqs := jsonLines[api.Request](t, w.alice.ok("request", "list", "--mine", "-o", "json").Stdout)
	if len(reqs) != 1 {
		t.Fatalf("alice has %d requests, want 1", len(reqs))
	}
	id := reqs[0].ID
	w.bob.ok("review", id, "--approve")
	w.dave.ok("review", id, "--approve")

	for _, mode := range []ghstub.Mode{ghstub.Fail500, ghstub.FailRateLimit} {
		t.Run(string(mode), func(t *testing.T) {
			w.gh.SetRateLimitReset(time.Second) // so recovery needs no long wait
			w.gh.Fail(mode)
			r := w.alice.run("login", "prod-db")
			if r.Code == 0 || !strings.Contains(strings.ToLower(r.Stderr), "github") || !strings.Contains(r.Stderr, "unavailable") {
				t.Errorf("login while GitHub fails (%s): exit %d, stderr %q; want an error naming GitHub", mode, r.Code, r.Stderr)
			}
			if list := agentList(t, w.sock); strings.Contains(list, "jit-ssh") {
				t.Errorf("the agent holds a jit-ssh certificate after a login during the outage: %s", list)
			}
			// Issuance itself, straight to the API with a token GitHub
			// would accept: 503, naming GitHub, with Retry-After.
			status, eb := apiCall(t, w.srv, ghBob, http.MethodPost, "/v1/certificates",
				`{"request_id":"`+id+`","public_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}`)
			if status != http.StatusServiceUnavailable || eb.Error.Code != "identity_unavailable" || !strings.Contains(eb.Error.Message, "github") {
				t.Errorf("POST /v1/certificates while GitHub fails (%s): %d %+v; want 503 identity_unavailable naming github", mode, status, eb)
			}
			if status, eb := apiCall(t, w.srv, ghDave, http.MethodPost, "/v1/requests/"+id+"/reviews", `{"event":"COMMENT","body":"still there?"}`); status != http.StatusServiceUnavailable {
				t.Errorf("a review while GitHub fails (%s): %d %+v; want 503", mode, status, eb)
			}
			w.gh.Fail(ghstub.FailNone)

			// GitHub is back (after the rate limit's reset has passed).
			var r2 result
			waitFor(t, "login to work again after GitHub recovered", 20*time.Second, func() bool {
				r2 = w.alice.run("login", "prod-db")
				return r2.Code == 0
			})
			if !strings.Contains(r2.Stderr, "Using your open grant "+id) {
				t.Errorf("login after recovery did not reuse the open grant:\n%s", r2.Stderr)
			}
			stdout, stderr, err := testenv.SSH(t, w.sock, host.Port, testenv.Login(t), "echo", "back")
			if err != nil || strings.TrimSpace(stdout) != "back" {
				t.Fatalf("ssh after recovery: err=%v stdout=%q stderr=%q", err, stdout, stderr)
			}
			_ = run(t, w.sock, "ssh-add", "-D") // empty the agent for the next mode
		})
	}

	// Exactly the two certificates of the two recoveries were issued.
	certs := jsonLines[api.Certificate](t, w.carol.ok("audit", "certs", "-o", "json").Stdout)
	if len(certs) != 2 {
		t.Errorf("audit certs lists %d certificates, want 2 (one per recovery)", len(certs))
	}
}
