package main

import (
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/github"
	"github.com/jit-ssh/jit-ssh/cmd/jit-ssh/internal/config"
)

// newGitHubDirectory is the identity.type github directory: callers'
// tokens are resolved with GET /user, team membership is read with the
// server's token from the environment variable identity.github.token_env.
func newGitHubDirectory(cfg *config.Server, getenv func(string) string) (approval.Directory, error) {
	g := cfg.Identity.GitHub
	token, err := g.Token(getenv)
	if err != nil {
		return nil, err
	}
	return github.New(g.APIURL, g.Org, token, github.WithCacheTTL(time.Duration(g.CacheTTL)))
}
