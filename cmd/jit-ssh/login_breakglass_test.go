package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/jit-ssh/jit-ssh/agent"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

// TestLoginBreakGlass: --break-glass files a break-glass request even when
// a pending one waits (it does not wait for an approver), says what it did
// and what follows, and loads the certificate.
func TestLoginBreakGlass(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	f := newFakeAPI(t, now)
	e, _, stderr := loginEnv(t)
	f.mine = []api.Request{{ID: "r-aaaaaaaaaaaaaaaa", HostGroup: "staging", State: ca.StatePending, Version: 1}}
	f.create = func(in api.CreateRequest) (*api.Request, error) {
		if in != (api.CreateRequest{HostGroup: "staging", Reason: "INC-42: primary down", BreakGlass: true}) {
			t.Errorf("CreateRequest(%+v); want a break-glass request with the reason", in)
		}
		return &api.Request{ID: "r-bbbbbbbbbbbbbbbb", HostGroup: "staging", State: ca.StateApproved, Version: 1, BreakGlass: true,
			FollowUp: ca.FollowUpNeedsReview, ApprovedAt: ptr(now), GrantEndsAt: ptr(now.Add(30 * time.Minute)), ReviewDueAt: ptr(now.Add(24 * time.Hour))}, nil
	}
	o := loginOptions{group: "staging", reason: "INC-42: primary down", breakGlass: true, timeout: time.Hour, now: func() time.Time { return now }}
	keys := agent.New(sshagent.NewKeyring(), o.now)
	if err := o.login(t.Context(), e, f, keys, generateKey()); err != nil {
		t.Fatalf("login --break-glass: %v\nstderr:\n%s", err, stderr)
	}
	if got := strings.Join(f.calls, ", "); got != "list, create, issue r-bbbbbbbbbbbbbbbb" {
		t.Errorf("API calls: %s; want list, create, issue (the pending request is not waited for)", got)
	}
	for _, want := range []string{"BREAK GLASS: grant r-bbbbbbbbbbbbbbbb for staging starts now without an approver (ends in 30m0s)",
		"must review it by " + now.Add(24*time.Hour).Format(time.RFC3339)} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q; got:\n%s", want, stderr)
		}
	}
	if entries, err := keys.List(); err != nil || len(entries) != 1 {
		t.Errorf("agent holds %v (%v); want the certificate", entries, err)
	}
}

// TestLoginBreakGlassNeedsReason: --break-glass without --reason is a
// usage error before anything is asked of the server.
func TestLoginBreakGlassNeedsReason(t *testing.T) {
	e, _, _ := loginEnv(t)
	cmd := newLoginCmd(e)
	cmd.SetArgs([]string{"staging", "--break-glass"})
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("login --break-glass without a reason = %v; want a usage error naming --reason", err)
	}
}
