package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca/api"
)

func grantEnv(t *testing.T, cache, token string) *env {
	t.Helper()
	vars := map[string]string{"XDG_CACHE_HOME": cache, "JIT_SSH_TOKEN": token}
	return &env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: func(k string) string { return vars[k] }}
}

// TestGrantCacheKeys: a remembered grant is found only for the same
// server, caller (token) and group, only while it has time left, never
// with a malformed request ID, and the file holds no token.
func TestGrantCacheKeys(t *testing.T) {
	cache := t.TempDir()
	now := time.Now()
	alice := grantEnv(t, cache, "tok-alice")
	alice.rememberGrant("http://ca:8443", "prod-db", "r-abcdefghijklmnop", now.Add(time.Hour))
	alice.rememberGrant("http://ca:8443", "short", "r-bbbbbbbbbbbbbbbb", now.Add(10*time.Second))
	alice.rememberGrant("http://ca:8443", "bad-id", "r-../../etc", now.Add(time.Hour))

	if g, ok := alice.cachedGrantFor("http://ca:8443", "prod-db", now); !ok || g.RequestID != "r-abcdefghijklmnop" {
		t.Errorf("alice's grant not found: %+v %v", g, ok)
	}
	for _, tt := range []struct {
		name          string
		e             *env
		server, group string
	}{
		{"another token", grantEnv(t, cache, "tok-bob"), "http://ca:8443", "prod-db"},
		{"another server", alice, "http://other:8443", "prod-db"},
		{"another group", alice, "http://ca:8443", "staging"},
		{"ending within the margin", alice, "http://ca:8443", "short"},
		{"malformed request id", alice, "http://ca:8443", "bad-id"},
	} {
		if g, ok := tt.e.cachedGrantFor(tt.server, tt.group, now); ok {
			t.Errorf("%s: found %+v, want nothing", tt.name, g)
		}
	}
	b, err := os.ReadFile(filepath.Join(cache, "jit-ssh", grantsFileName))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("tok-alice")) {
		t.Errorf("grant cache holds the token: %s", b)
	}
	alice.rememberGrant("http://ca:8443", "prod-db", "", time.Time{})
	if _, ok := alice.cachedGrantFor("http://ca:8443", "prod-db", now); ok {
		t.Errorf("forgotten grant still found")
	}
}

func TestGrantRefused(t *testing.T) {
	for code, want := range map[string]bool{
		"grant_ended": true, "request_not_approved": true, "not_requester": true, "request_not_found": true, "invalid_request_id": true,
		"outside_allowed_hours": false, "approval_no_longer_valid": false, "ledger_unavailable": false, "rate_limited": false,
	} {
		if got := grantRefused(&api.Error{Status: 409, Code: code}); got != want {
			t.Errorf("grantRefused(%s) = %v, want %v", code, got, want)
		}
	}
	if grantRefused(errors.New("connection refused")) {
		t.Errorf("a transport error counted as a refused grant")
	}
}
