package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/oidc"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/cmd/jit-ssh/internal/config"
)

// GitHub Actions offers a job with "permissions: id-token: write" its OIDC
// ID tokens through these two variables: a URL to ask and the bearer token
// to ask it with.
const (
	envActionsTokenURL   = "ACTIONS_ID_TOKEN_REQUEST_URL"
	envActionsTokenToken = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
	// envAudience names the audience to ask tokens for; it must be the
	// server's workload_identity.github_actions.audience.
	envAudience = "JIT_SSH_AUDIENCE"
)

// defaultAudience is the server's default audience.
const defaultAudience = config.DefaultWorkloadAudience

// maxActionsAnswer bounds the token endpoint's answer (a JWT of a few KB).
const maxActionsAnswer = 64 << 10

// loginClient is the client login talks to the server with: in a GitHub
// Actions job that may ask for ID tokens (and has no JIT_SSH_TOKEN), one
// that authenticates every call with a fresh ID token of the job; anywhere
// else the caller's own token (env.client).
func (e *env) loginClient() (*api.Client, error) {
	tokenURL, reqToken := strings.TrimSpace(e.getenv(envActionsTokenURL)), strings.TrimSpace(e.getenv(envActionsTokenToken))
	if tokenURL == "" || reqToken == "" || strings.TrimSpace(e.getenv("JIT_SSH_TOKEN")) != "" {
		return e.client()
	}
	audience := strings.TrimSpace(e.getenv(envAudience))
	if audience == "" {
		audience = defaultAudience
	}
	src, err := newActionsTokenSource(tokenURL, reqToken, audience)
	if err != nil {
		return nil, &usageError{err}
	}
	c, err := api.NewClient(e.serverURL(), "", api.WithCredential(approval.WorkloadScheme, src.fetch))
	if err != nil {
		return nil, &usageError{err}
	}
	return c, nil
}

// actionsTokenSource asks the job's token endpoint for ID tokens. Neither
// the request token nor the ID tokens are ever printed or logged.
type actionsTokenSource struct {
	url      string // the endpoint with the audience in its query
	reqToken string
	http     *http.Client
}

func newActionsTokenSource(raw, reqToken, audience string) (*actionsTokenSource, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%s is not an http(s) URL; is this a GitHub Actions job?", envActionsTokenURL)
	}
	if !api.SecureTransport(u) {
		return nil, fmt.Errorf("%s is plain http to a host that is not loopback; the job's token endpoint must be https", envActionsTokenURL)
	}
	q := u.Query()
	q.Set("audience", audience)
	u.RawQuery = q.Encode()
	return &actionsTokenSource{url: u.String(), reqToken: reqToken, http: api.SafeRedirects(&http.Client{Timeout: 30 * time.Second})}, nil
}

// LogValue keeps the request token out of any log the source reaches.
func (s *actionsTokenSource) LogValue() slog.Value {
	return slog.StringValue("GitHub Actions ID token source (request token redacted)")
}

// fetch returns a fresh ID token for the audience.
func (s *actionsTokenSource) fetch(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return "", fmt.Errorf("asking GitHub Actions for an ID token: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.reqToken)
	req.Header.Set("Accept", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is the runner's; its error says enough
		}
		return "", fmt.Errorf("cannot reach the job's ID token endpoint (%s): %w", envActionsTokenURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the job's ID token endpoint answered %s; give the job 'permissions: id-token: write'", resp.Status)
	}
	var out struct {
		Value string `json:"value"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxActionsAnswer)).Decode(&out); err != nil || out.Value == "" {
		return "", errors.New("the job's ID token endpoint answered without a token")
	}
	return out.Value, nil
}

// workloadVerifier is the server's verifier of workload tokens, or nil
// (none accepted) without workload_identity.github_actions. It accepts
// only the tokens of repositories some host group's workloads name (see
// oidc.WithAccept): the others never reach the replay cache.
func workloadVerifier(cfg *config.Server) approval.WorkloadVerifier {
	g := cfg.WorkloadIdentity.GitHubActions
	if g == nil {
		return nil
	}
	var trusted []string
	for _, hg := range cfg.HostGroups {
		for _, w := range hg.Workloads {
			trusted = append(trusted, w.Repository)
		}
	}
	return oidc.New(g.Issuer, g.Audience, oidc.WithAccept(func(w ca.Workload) bool {
		// GitHub's names are case-insensitive, as approval.WorkloadRule
		// matches them.
		return slices.ContainsFunc(trusted, func(r string) bool { return strings.EqualFold(r, w.Repository) })
	}))
}
