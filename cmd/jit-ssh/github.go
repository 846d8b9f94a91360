package main

import (
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/github"
)

// newGitHubDirectory is the identity.type github directory: callers'
// tokens are resolved with GET /user, team membership is read with the
// server's token from the environment variable identity.github.token_env.
func newGitHubDirectory(cfg *Config) (approval.Directory, error) {
	g := cfg.Identity.GitHub
	token := strings.TrimSpace(os.Getenv(g.TokenEnv))
	if token == "" {
		return nil, &ConfigError{Problems: []string{"identity.github.token_env: the environment variable " + g.TokenEnv +
			" is empty or unset; set it to the server's GitHub token (read:org) before starting jit-ssh serve"}}
	}
	return github.New(g.APIURL, g.Org, token, github.WithCacheTTL(time.Duration(g.CacheTTL)))
}

// UnmarshalYAML decodes the github block and notes whether cache_ttl was
// written, so that an explicit 0 (no caching) differs from unset (30s).
// Unknown keys are reported by the config's key checker.
func (g *GitHubConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain GitHubConfig
	err := n.Decode((*plain)(g))
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "cache_ttl" {
			g.cacheTTLSet = true
		}
	}
	return err
}
