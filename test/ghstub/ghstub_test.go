package ghstub_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/jit-ssh/jit-ssh/test/ghstub"
)

// client is go-github pointed at the stub the way jit-ssh points it at a
// GitHub Enterprise Server.
func client(t *testing.T, s *ghstub.Server, token string) *github.Client {
	t.Helper()
	c, err := github.NewClient(nil).WithEnterpriseURLs(s.URL, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		c = c.WithAuthToken(token)
	}
	return c
}

func status(err error) int {
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return er.Response.StatusCode
	}
	return 0
}

// TestStubSpeaksGitHub checks the answers go-github gets: the user behind
// a token, active and pending memberships, 404 for non-members and 401
// for unknown tokens, with GitHub's rate-limit headers.
func TestStubSpeaksGitHub(t *testing.T) {
	s := ghstub.New(t)
	s.AddUser("alice", "tok-alice")
	s.AddUser("bot", "tok-bot")
	s.SetTeam("acme", "sre-leads", "Alice")
	s.SetPending("acme", "backend", "alice")
	ctx := t.Context()

	u, resp, err := client(t, s, "tok-alice").Users.Get(ctx, "")
	if err != nil || u.GetLogin() != "alice" || u.GetID() == 0 {
		t.Fatalf("GET /user = %+v, %v; want alice", u, err)
	}
	if resp.Rate.Limit != 5000 || resp.Rate.Remaining != 4999 || resp.Rate.Reset.IsZero() {
		t.Errorf("rate headers = %+v, want limit 5000, remaining 4999 and a reset", resp.Rate)
	}
	if got := s.LastHeader(ghstub.EndpointUser).Get("Authorization"); got != "Bearer tok-alice" {
		t.Errorf("stub saw Authorization %q", got)
	}

	bot := client(t, s, "tok-bot")
	m, _, err := bot.Teams.GetTeamMembershipBySlug(ctx, "acme", "sre-leads", "alice")
	if err != nil || m.GetState() != "active" || m.GetRole() != "member" {
		t.Errorf("active membership = %+v, %v", m, err)
	}
	m, _, err = bot.Teams.GetTeamMembershipBySlug(ctx, "ACME", "backend", "alice")
	if err != nil || m.GetState() != "pending" {
		t.Errorf("pending membership = %+v, %v", m, err)
	}
	if _, _, err := bot.Teams.GetTeamMembershipBySlug(ctx, "acme", "sre-leads", "mallory"); status(err) != http.StatusNotFound {
		t.Errorf("non-member: %v, want 404", err)
	}
	s.RemoveMember("acme", "sre-leads", "alice")
	if _, _, err := bot.Teams.GetTeamMembershipBySlug(ctx, "acme", "sre-leads", "alice"); status(err) != http.StatusNotFound {
		t.Errorf("removed member: %v, want 404", err)
	}

	if _, _, err := client(t, s, "tok-unknown").Users.Get(ctx, ""); status(err) != http.StatusUnauthorized {
		t.Errorf("unknown token: %v, want 401", err)
	}
	if _, _, err := client(t, s, "").Users.Get(ctx, ""); status(err) != http.StatusUnauthorized {
		t.Errorf("no token: %v, want 401", err)
	}
	s.RemoveToken("tok-alice")
	if _, _, err := client(t, s, "tok-alice").Users.Get(ctx, ""); status(err) != http.StatusUnauthorized {
		t.Errorf("removed token: %v, want 401", err)
	}
	if n := s.Count(ghstub.EndpointUser); n != 4 {
		t.Errorf("Count(user) = %d, want 4", n)
	}
}

// TestStubFailModes: each fail mode gives the error go-github reports for
// the real thing.
func TestStubFailModes(t *testing.T) {
	s := ghstub.New(t)
	s.AddUser("alice", "tok-alice")
	ctx := t.Context()
	get := func(c *github.Client) error { _, _, err := c.Users.Get(ctx, ""); return err }

	s.Fail(ghstub.Fail500)
	if err := get(client(t, s, "tok-alice")); status(err) != http.StatusInternalServerError {
		t.Errorf("Fail500: %v", err)
	}

	s.SetRateLimitReset(time.Hour)
	s.Fail(ghstub.FailRateLimit)
	var rle *github.RateLimitError
	if err := get(client(t, s, "tok-alice")); !errors.As(err, &rle) || rle.Rate.Remaining != 0 || time.Until(rle.Rate.Reset.Time) < 50*time.Minute {
		t.Errorf("FailRateLimit: %v, want a RateLimitError resetting in about an hour", err)
	}

	s.Fail(ghstub.FailRateLimit429)
	if err := get(client(t, s, "tok-alice")); status(err) != http.StatusTooManyRequests && !errors.As(err, &rle) {
		t.Errorf("FailRateLimit429: %v, want a 429", err)
	}

	s.Fail(ghstub.FailSecondaryRateLimit)
	var arle *github.AbuseRateLimitError
	if err := get(client(t, s, "tok-alice")); !errors.As(err, &arle) || arle.RetryAfter == nil || *arle.RetryAfter != time.Minute {
		t.Errorf("FailSecondaryRateLimit: %v, want an AbuseRateLimitError with Retry-After 60s", err)
	}

	s.Fail(ghstub.FailTimeout)
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, _, err := client(t, s, "tok-alice").Users.Get(tctx, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("FailTimeout: %v, want the client's deadline", err)
	}

	s.Fail(ghstub.FailNone)
	if err := get(client(t, s, "tok-alice")); err != nil {
		t.Errorf("after FailNone: %v", err)
	}
}

// TestStubDeviceFlow walks the device flow by hand, as GitHub documents
// it: form-encoded answers unless JSON is asked for, errors as 200s.
func TestStubDeviceFlow(t *testing.T) {
	s := ghstub.New(t)
	s.SetDeviceTiming(1, time.Minute)
	post := func(path string, form url.Values, accept string) map[string]string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.URL+strings.TrimPrefix(path, "/"), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out := map[string]string{"status": strconv.Itoa(resp.StatusCode)}
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			var m map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
				t.Fatal(err)
			}
			for k, v := range m {
				if f, ok := v.(float64); ok {
					out[k] = strconv.Itoa(int(f))
				} else {
					out[k], _ = v.(string)
				}
			}
			return out
		}
		b, _ := io.ReadAll(resp.Body)
		q, _ := url.ParseQuery(string(b))
		for k := range q {
			out[k] = q.Get(k)
		}
		return out
	}

	if got := post("/login/device/code", url.Values{"client_id": {"nope"}}, "application/json"); got["error"] != "incorrect_client_credentials" {
		t.Errorf("unknown client: %v", got)
	}
	dc := post("/login/device/code", url.Values{"client_id": {"Iv1.jitsshtest"}, "scope": {""}}, "") // form-encoded
	if dc["device_code"] == "" || len(dc["user_code"]) != 9 || dc["verification_uri"] != s.URL+"login/device" || dc["interval"] != "1" {
		t.Fatalf("device code answer = %v", dc)
	}
	if codes := s.UserCodes(); len(codes) != 1 || codes[0] != dc["user_code"] {
		t.Errorf("UserCodes = %v, want [%s]", codes, dc["user_code"])
	}
	poll := url.Values{"client_id": {"Iv1.jitsshtest"}, "device_code": {dc["device_code"]}, "grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}}
	if got := post("/login/oauth/access_token", poll, "application/json"); got["error"] != "authorization_pending" || got["status"] != "200" {
		t.Errorf("first poll = %v, want 200 authorization_pending", got)
	}
	if got := post("/login/oauth/access_token", poll, "application/json"); got["error"] != "slow_down" || got["interval"] != "6" {
		t.Errorf("immediate second poll = %v, want slow_down with interval 6", got)
	}
	token, err := s.ApproveDevice(dc["user_code"], "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := post("/login/oauth/access_token", poll, "application/json"); got["access_token"] != token || got["token_type"] != "bearer" {
		t.Errorf("poll after approval = %v, want the token", got)
	}
	if got := post("/login/oauth/access_token", poll, "application/json"); got["error"] != "incorrect_device_code" {
		t.Errorf("reusing the device code = %v, want incorrect_device_code", got)
	}
	if u, _, err := client(t, s, token).Users.Get(t.Context(), ""); err != nil || u.GetLogin() != "alice" {
		t.Errorf("the issued token is not alice's: %v %v", u, err)
	}
	if _, err := s.ApproveDevice("ZZZZ-ZZZZ", "alice"); err == nil {
		t.Errorf("ApproveDevice of an unknown code succeeded")
	}

	// Denied and expired codes.
	dc2 := post("/login/device/code", url.Values{"client_id": {"Iv1.jitsshtest"}}, "application/json")
	if err := s.DenyDevice(dc2["user_code"]); err != nil {
		t.Fatal(err)
	}
	poll.Set("device_code", dc2["device_code"])
	if got := post("/login/oauth/access_token", poll, ""); got["error"] != "access_denied" {
		t.Errorf("denied = %v", got)
	}
	s.SetDeviceTiming(1, 0)
	dc3 := post("/login/device/code", url.Values{"client_id": {"Iv1.jitsshtest"}}, "application/json")
	poll.Set("device_code", dc3["device_code"])
	time.Sleep(10 * time.Millisecond) // an expiry of 0s is past at once
	if got := post("/login/oauth/access_token", poll, "application/json"); got["error"] != "expired_token" {
		t.Errorf("expired = %v", got)
	}
	poll.Set("grant_type", "password")
	if got := post("/login/oauth/access_token", poll, "application/json"); got["error"] != "unsupported_grant_type" {
		t.Errorf("wrong grant type = %v", got)
	}
}
