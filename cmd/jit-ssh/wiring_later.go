package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
)

// newVaultSigner and newGitHubDirectory are wired in by the Vault signer
// and GitHub identity work.
func newVaultSigner(context.Context, *Config, *slog.Logger) (ca.Signer, error) {
	return nil, errors.New("signer.type vault is not available in this build yet")
}

func newGitHubDirectory(*Config) (approval.Directory, error) {
	return nil, errors.New("identity.type github is not available in this build yet")
}
