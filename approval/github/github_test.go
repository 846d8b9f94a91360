package github_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/approval/github"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/test/ghstub"
)

const (
	ghOrg         = ghstub.AcmeOrg
	ghServerToken = ghstub.AcmeServerToken
)

func newGH(t *testing.T, gh *ghstub.Server, opts ...github.Option) *github.Directory {
	t.Helper()
	d, err := github.New(gh.URL, ghOrg, ghServerToken, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestGitHubAuthenticate(t *testing.T) {
	tests := []struct {
		name      string
		token     string
		wantLogin string
		wantErr   error
	}{
		{"known token", "gho_alice", "alice", nil},
		{"another user", "gho_bob", "bob", nil},
		{"unknown token", "gho_nobody", "", ca.ErrUnauthenticated},
		{"revoked-looking garbage", "not a token", "", ca.ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh := ghstub.NewAcme(t)
			d := newGH(t, gh)
			for call := 1; call <= 2; call++ {
				login, err := d.Authenticate(context.Background(), tt.token)
				if login != tt.wantLogin || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
					t.Fatalf("call %d: Authenticate = %q, %v; want %q, %v", call, login, err, tt.wantLogin, tt.wantErr)
				}
				// The second call is answered from the cache, negative
				// answers included.
				if got := gh.Count(ghstub.EndpointUser); got != 1 {
					t.Fatalf("after call %d GitHub saw %d GET /user, want 1", call, got)
				}
			}
			if got := gh.LastHeader(ghstub.EndpointUser).Get("Authorization"); got != "Bearer "+tt.token {
				t.Errorf("GET /user was sent Authorization %q, want the caller's token", got)
			}
		})
	}
}

func TestGitHubAuthenticateCachesPerToken(t *testing.T) {
	gh := ghstub.NewAcme(t)
	gh.AddUser("alice", "gho_alice2") // a second token of the same person
	d := newGH(t, gh)
	for _, tok := range []string{"gho_alice", "gho_alice2", "gho_alice", "gho_alice2"} {
		if login, err := d.Authenticate(context.Background(), tok); err != nil || login != "alice" {
			t.Fatalf("Authenticate(%s) = %q, %v", tok, login, err)
		}
	}
	if got := gh.Count(ghstub.EndpointUser); got != 2 {
		t.Errorf("GitHub saw %d GET /user for two tokens asked twice each, want 2", got)
	}
}

func TestGitHubIsMember(t *testing.T) {
	tests := []struct {
		name        string
		login, team string
		want        bool
	}{
		{"active member", "alice", "backend", true},
		{"active member, other case", "Alice", "backend", true},
		{"member of another team (404)", "alice", "sre-leads", false},
		{"pending invitation", "carol", "sre-leads", false},
		{"no such team (404)", "bob", "nosuch", false},
		{"no such user (404)", "mallory", "backend", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh := ghstub.NewAcme(t)
			d := newGH(t, gh)
			for call := 1; call <= 2; call++ {
				got, err := d.IsMember(context.Background(), tt.login, tt.team)
				if err != nil || got != tt.want {
					t.Fatalf("call %d: IsMember(%s, %s) = %v, %v; want %v", call, tt.login, tt.team, got, err, tt.want)
				}
				if n := gh.Count(ghstub.EndpointMembership); n != 1 {
					t.Fatalf("after call %d GitHub saw %d membership lookups, want 1 (cached)", call, n)
				}
			}
			if got := gh.LastHeader(ghstub.EndpointMembership).Get("Authorization"); got != "Bearer "+ghServerToken {
				t.Errorf("membership lookup was sent Authorization %q, want the server token", got)
			}
		})
	}
}

func TestGitHubCacheExpires(t *testing.T) {
	gh := ghstub.NewAcme(t)
	clock := &testClock{t: time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)}
	d := newGH(t, gh, github.WithClock(clock.now), github.WithCacheTTL(30*time.Second))
	ctx := context.Background()

	mustMember := func(want bool, wantCalls int) {
		t.Helper()
		got, err := d.IsMember(ctx, "bob", "sre-leads")
		if err != nil || got != want {
			t.Fatalf("IsMember(bob, sre-leads) = %v, %v; want %v", got, err, want)
		}
		if n := gh.Count(ghstub.EndpointMembership); n != wantCalls {
			t.Fatalf("GitHub saw %d membership lookups, want %d", n, wantCalls)
		}
	}
	mustLogin := func(wantErr error, wantCalls int) {
		t.Helper()
		_, err := d.Authenticate(ctx, "gho_bob")
		if !errors.Is(err, wantErr) || (wantErr == nil) != (err == nil) {
			t.Fatalf("Authenticate(bob's token) error = %v, want %v", err, wantErr)
		}
		if n := gh.Count(ghstub.EndpointUser); n != wantCalls {
			t.Fatalf("GitHub saw %d GET /user, want %d", n, wantCalls)
		}
	}

	mustMember(true, 1)
	mustLogin(nil, 1)
	gh.RemoveMember(ghOrg, "sre-leads", "bob")
	gh.RemoveToken("gho_bob")
	clock.advance(29 * time.Second)
	mustMember(true, 1) // still cached: the removal is not seen yet
	mustLogin(nil, 1)
	clock.advance(time.Second)
	mustMember(false, 2) // the TTL has passed: asked again
	mustLogin(ca.ErrUnauthenticated, 2)
	clock.advance(10 * time.Second)
	mustMember(false, 2) // the negative answers are cached too
	mustLogin(ca.ErrUnauthenticated, 2)
}

func TestGitHubNoCache(t *testing.T) {
	gh := ghstub.NewAcme(t)
	d := newGH(t, gh, github.WithCacheTTL(0))
	for i := range 3 {
		if ok, err := d.IsMember(context.Background(), "alice", "backend"); err != nil || !ok {
			t.Fatalf("IsMember = %v, %v", ok, err)
		}
		if _, err := d.Authenticate(context.Background(), "gho_alice"); err != nil {
			t.Fatal(err)
		}
		if m, u := gh.Count(ghstub.EndpointMembership), gh.Count(ghstub.EndpointUser); m != i+1 || u != i+1 {
			t.Fatalf("after %d calls with cache_ttl 0 GitHub saw %d lookups and %d GET /user, want %d each", i+1, m, u, i+1)
		}
	}
}

// TestGitHubFailsClosed: every way of not getting an answer is
// ErrUnavailable with a message naming GitHub and the cause; errors are
// not cached, so the directory recovers as soon as GitHub does.
func TestGitHubFailsClosed(t *testing.T) {
	tests := []struct {
		name    string
		mode    ghstub.Mode
		reset   time.Duration // rate-limit reset the stub announces
		wantMsg string
		// memberHeld: the server-token client honours a Retry-After, so
		// membership lookups stay refused (without calling GitHub) after
		// GitHub recovers.
		memberHeld bool
	}{
		{"server error", ghstub.Fail500, 0, "github: server error 500", false},
		{"timeout", ghstub.FailTimeout, 0, "github: no answer within 300ms", false},
		{"rate limited (403)", ghstub.FailRateLimit, 0, "github: rate limited until", false},
		{"rate limited (429)", ghstub.FailRateLimit429, 0, "github: rate limited (429) until", false},
		{"secondary rate limit", ghstub.FailSecondaryRateLimit, 0, "github: secondary rate limit, retry after 1m0s", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh := ghstub.NewAcme(t)
			gh.SetRateLimitReset(tt.reset)
			d := newGH(t, gh, github.WithTimeout(300*time.Millisecond))
			ctx := context.Background()
			gh.Fail(tt.mode)

			start := time.Now()
			login, err := d.Authenticate(ctx, "gho_alice")
			if !errors.Is(err, ca.ErrUnavailable) || login != "" || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Authenticate while GitHub fails = %q, %v; want ErrUnavailable saying %q", login, err, tt.wantMsg)
			}
			if errors.Is(err, ca.ErrUnauthenticated) {
				t.Errorf("a GitHub outage was reported as a bad token: %v", err)
			}
			ok, err := d.IsMember(ctx, "alice", "backend")
			if !errors.Is(err, ca.ErrUnavailable) || ok || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("IsMember while GitHub fails = %v, %v; want false, ErrUnavailable saying %q", ok, err, tt.wantMsg)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("two failing calls took %s; the per-call timeout does not bound them", d)
			}

			gh.Fail(ghstub.FailNone)
			if login, err := d.Authenticate(ctx, "gho_alice"); err != nil || login != "alice" {
				t.Errorf("Authenticate after GitHub recovered = %q, %v; the error must not be cached", login, err)
			}
			before := gh.Count(ghstub.EndpointMembership)
			ok, err = d.IsMember(ctx, "alice", "backend")
			switch {
			case tt.memberHeld:
				if !errors.Is(err, ca.ErrUnavailable) || gh.Count(ghstub.EndpointMembership) != before {
					t.Errorf("IsMember within Retry-After = %v, %v (GitHub asked: %v); want refused without asking",
						ok, err, gh.Count(ghstub.EndpointMembership) != before)
				}
			case err != nil || !ok:
				t.Errorf("IsMember after GitHub recovered = %v, %v; the error must not be cached", ok, err)
			}
		})
	}
}

// TestGitHubHonoursRateLimitReset: once GitHub says the server token is out
// of requests until a time, jit-ssh stops asking until then and says so.
func TestGitHubHonoursRateLimitReset(t *testing.T) {
	gh := ghstub.NewAcme(t)
	gh.SetRateLimitReset(time.Hour)
	d := newGH(t, gh)
	gh.Fail(ghstub.FailRateLimit)
	_, err := d.IsMember(context.Background(), "alice", "backend")
	reset := time.Now().Add(time.Hour).UTC()
	if !errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("IsMember = %v, want ErrUnavailable", err)
	}
	want := "github: rate limited until " + reset.Format("15:04")
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	gh.Fail(ghstub.FailNone)
	if _, err := d.IsMember(context.Background(), "bob", "sre-leads"); !errors.Is(err, ca.ErrUnavailable) {
		t.Errorf("IsMember before the reset = %v, want ErrUnavailable", err)
	}
	if n := gh.Count(ghstub.EndpointMembership); n != 1 {
		t.Errorf("GitHub saw %d membership lookups, want 1: no calls before the reset", n)
	}
}

func TestGitHubServerTokenRejected(t *testing.T) {
	gh := ghstub.NewAcme(t)
	d, err := github.New(gh.URL, ghOrg, "ghs_wrong")
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.IsMember(context.Background(), "alice", "backend")
	if !errors.Is(err, ca.ErrUnavailable) || errors.Is(err, ca.ErrUnauthenticated) {
		t.Fatalf("IsMember with a bad server token = %v; want ErrUnavailable (jit-ssh's problem, not the caller's)", err)
	}
	if !strings.Contains(err.Error(), "server token") {
		t.Errorf("error %q does not point at the server token", err)
	}
}

func TestGitHubUnreachable(t *testing.T) {
	gh := ghstub.NewAcme(t)
	url := gh.URL
	gh.Close()
	d, err := github.New(url, ghOrg, ghServerToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(context.Background(), "gho_alice"); !errors.Is(err, ca.ErrUnavailable) || !strings.Contains(err.Error(), "github: unreachable") {
		t.Errorf("Authenticate with GitHub down = %v; want ErrUnavailable saying github: unreachable", err)
	}
	if _, err := d.IsMember(context.Background(), "alice", "backend"); !errors.Is(err, ca.ErrUnavailable) {
		t.Errorf("IsMember with GitHub down = %v; want ErrUnavailable", err)
	}
}

func TestGitHubErrorsNeverCarryTokens(t *testing.T) {
	for _, mode := range []ghstub.Mode{ghstub.Fail500, ghstub.FailRateLimit, ghstub.FailNone} {
		gh := ghstub.NewAcme(t)
		gh.SetRateLimitReset(0)
		d := newGH(t, gh)
		gh.Fail(mode)
		_, err1 := d.Authenticate(context.Background(), "gho_secret_caller")
		_, err2 := d.IsMember(context.Background(), "alice", "backend")
		for _, err := range []error{err1, err2} {
			if err != nil && (strings.Contains(err.Error(), "gho_secret_caller") || strings.Contains(err.Error(), ghServerToken)) {
				t.Errorf("mode %s: error %q carries a token", mode, err)
			}
		}
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct{ name, api, org, token string }{
		{"no org", "https://ghe.example.com/", "", "t"},
		{"org with a slash", "https://ghe.example.com/", "acme/x", "t"},
		{"no token", "https://ghe.example.com/", "acme", ""},
		{"not a URL", "ftp://x", "acme", "t"},
	}
	for _, tt := range tests {
		if _, err := github.New(tt.api, tt.org, tt.token); err == nil {
			t.Errorf("%s: New(%q, %q) succeeded", tt.name, tt.api, tt.org)
		}
	}
}

// testClock is a clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
