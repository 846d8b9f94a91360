package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/vault"
	"github.com/jit-ssh/jit-ssh/cmd/jit-ssh/internal/config"
)

// vaultClient builds the Vault client of a config (VAULT_* environment,
// optional AppRole unless tokenOnly; getenv supplies the JIT_SSH_VAULT_*
// variables). Close stops its token renewal.
func vaultClient(cfg *config.Server, log *slog.Logger, getenv func(string) string, tokenOnly bool) (*vault.Client, error) {
	v := cfg.Signer.Vault
	cc := vault.ClientConfig{Address: v.Address, Namespace: v.Namespace, Logger: log, TokenOnly: tokenOnly, Getenv: getenv}
	if v.AppRole != nil {
		cc.AppRole = vault.AppRole{Mount: v.AppRole.Mount, RoleIDFile: v.AppRole.RoleIDFile, SecretIDFile: v.AppRole.SecretIDFile}
	}
	c, err := vault.NewClient(cc)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// newVaultSigner returns the Vault signer and a function that stops the
// client's token renewal.
func newVaultSigner(cfg *config.Server, log *slog.Logger, getenv func(string) string) (*vault.Signer, func() error, error) {
	c, err := vaultClient(cfg, log, getenv, false)
	if err != nil {
		return nil, nil, err
	}
	opts := []vault.Option{vault.WithLogger(log), vault.WithReauth(c.Relogin)}
	if t := time.Duration(cfg.Signer.Vault.Timeout); t > 0 {
		opts = append(opts, vault.WithTimeout(t))
	}
	s, err := vault.New(c.API(), cfg.Signer.Vault.Mount, cfg.Signer.Vault.Role, opts...)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return s, c.Close, nil
}

func newVaultCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vault",
		Short: "Configure HashiCorp Vault's SSH secrets engine for jit-ssh",
	}
	var configPath string
	var printPolicy bool
	setup := &cobra.Command{
		Use:   "setup --config FILE",
		Short: "Mount the SSH engine, create its CA key and the jit-ssh role; idempotent",
		Long: `Configure Vault for the config's signer.vault settings, idempotently:
mount the SSH secrets engine at the mount when it is missing; generate an
ed25519 CA key there when the mount has none (an existing key is never
replaced); create or update the role with defence-in-depth limits (allowed
users = the union of the host groups' principals, max TTL = the largest
cert_ttl, user certificates only, KeyIds from jit-ssh, only the configured
extensions); and print the CA public key hosts must trust. A second run
changes nothing. Vault's address and a token allowed to manage the mount come
from VAULT_ADDR (or signer.vault.address) and VAULT_TOKEN; the config's AppRole
is the server's and is not used here. --print-policy prints the narrow policy the
server's own token needs, and does nothing else.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, comp, err := config.Load(configPath, config.Overrides{})
			if err != nil {
				return &usageError{err}
			}
			if cfg.Signer.Type != "vault" {
				return &usageError{fmt.Errorf("%s: signer.type is %q, not vault", configPath, cfg.Signer.Type)}
			}
			if printPolicy {
				fmt.Fprint(e.stdout, vault.Policy(cfg.Signer.Vault.Mount, cfg.Signer.Vault.Role))
				return nil
			}
			return runVaultSetup(cmd.Context(), e, cfg, comp)
		},
	}
	setup.Flags().StringVar(&configPath, "config", "", "server config file (required)")
	setup.Flags().BoolVar(&printPolicy, "print-policy", false, "print the Vault policy the server's token needs and exit")
	_ = setup.MarkFlagRequired("config")
	cmd.AddCommand(setup)
	return cmd
}

func runVaultSetup(ctx context.Context, e *env, cfg *config.Server, comp *config.Compiled) error {
	// Setup runs as an operator (VAULT_TOKEN), never with the server's
	// AppRole, whose policy only signs.
	c, err := vaultClient(cfg, nil, e.getenv, true)
	if err != nil {
		return err
	}
	defer c.Close()
	var profiles []ca.Profile
	for _, p := range comp.Policies {
		profiles = append(profiles, p.Profile())
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := vault.Setup(ctx, c.API(), vault.SetupConfig{Mount: cfg.Signer.Vault.Mount, Role: cfg.Signer.Vault.Role, Profiles: profiles})
	if err != nil {
		return err
	}
	if e.output == "json" {
		return e.printJSON(map[string]any{
			"mount": res.Mount, "role": res.Role, "mounted": res.Mounted, "generated_key": res.GeneratedKey,
			"wrote_role": res.WroteRole, "role_changes": orEmptyStrings(res.RoleChanges),
			"ca_public_key": strings.TrimSpace(string(ssh.MarshalAuthorizedKey(res.CAKey))), "ca_fingerprint": ca.Fingerprint(res.CAKey),
		})
	}
	fmt.Fprintln(e.stderr, "vault setup:", res.String())
	fmt.Fprintf(e.stderr, "CA key %s; hosts trust it through 'jit-ssh host config' (or put this line in their TrustedUserCAKeys file):\n", ca.Fingerprint(res.CAKey))
	fmt.Fprint(e.stdout, string(ssh.MarshalAuthorizedKey(res.CAKey)))
	return nil
}

func orEmptyStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}
