package main

import (
	"errors"
	"testing"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/cmd/jit-ssh/internal/config"
	"github.com/jit-ssh/jit-ssh/test/oidcstub"
)

// TestWorkloadVerifierRemembersOnlyTrustedRepositories: any repository on
// GitHub can mint ID tokens for the audience (the default one is the same
// for every jit-ssh server), and they all verify. The server's verifier
// refuses those of repositories no host group's workloads name before
// their jti enters the bounded replay cache, so nobody outside can fill
// it and lock every deploy out (503) for a token's lifetime.
func TestWorkloadVerifierRemembersOnlyTrustedRepositories(t *testing.T) {
	stub := oidcstub.New(t)
	cfg := &config.Server{
		WorkloadIdentity: config.WorkloadIdentity{GitHubActions: &config.GitHubActions{Issuer: stub.URL, Audience: oidcstub.DefaultAudience}},
		HostGroups: map[string]config.HostGroup{
			"web": {Workloads: []config.Workload{{Repository: "acme/web", Ref: "refs/heads/main"}}},
		},
	}
	v := workloadVerifier(cfg)
	for _, repo := range []string{"mallory/spam", "acme/web-fork", "acme/ops"} {
		_, err := v.VerifyWorkload(t.Context(), stub.Token(map[string]any{"repository": repo, "sub": "repo:" + repo + ":ref:refs/heads/main"}))
		if !errors.Is(err, approval.ErrUnauthenticated) {
			t.Errorf("a token of %s: %v, want refused (no host group trusts it)", repo, err)
		}
	}
	for _, repo := range []string{"acme/web", "ACME/Web"} {
		if _, err := v.VerifyWorkload(t.Context(), stub.Token(map[string]any{"repository": repo})); err != nil {
			t.Errorf("a token of %s: %v", repo, err)
		}
	}
}
