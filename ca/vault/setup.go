package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Defaults of SetupConfig.
const (
	DefaultMount = "ssh"
	DefaultRole  = "jit-ssh"
)

// SetupConfig is what `jit-ssh vault setup` configures: the mount, the role
// and the union of the host groups' certificate policies.
type SetupConfig struct {
	// Mount is the SSH secrets engine path. The default is DefaultMount.
	Mount string
	// Role is the role jit-ssh signs through. The default is DefaultRole.
	Role string
	// Profiles are the certificate policies of all host groups. The role
	// allows the union of their principals and extensions, and TTLs from the
	// smallest to the largest cert_ttl.
	Profiles []ca.Profile
	// Skew is how far Vault backdates ValidAfter (the role's
	// not_before_duration); it must equal the issuer's skew. The default is
	// ca.DefaultSkew.
	Skew time.Duration
}

func (c SetupConfig) withDefaults() SetupConfig {
	if c.Mount = strings.Trim(c.Mount, "/"); c.Mount == "" {
		c.Mount = DefaultMount
	}
	if c.Role == "" {
		c.Role = DefaultRole
	}
	if c.Skew == 0 {
		c.Skew = ca.DefaultSkew
	}
	return c
}

// RoleSettings returns the role jit-ssh needs, as written to
// <mount>/roles/<role>. Every setting that could make Vault sign something
// other than what jit-ssh asked is pinned: no default user, extensions or
// critical options, no templates, no host certificates, KeyIds from the
// request. Vault treats an empty allowed_critical_options as "any", so it is
// always "source-address", the only critical option jit-ssh ever asks for.
func (c SetupConfig) RoleSettings() (map[string]any, error) {
	c = c.withDefaults()
	var errs []error
	if len(c.Profiles) == 0 {
		errs = append(errs, errors.New("vault: no host group profiles to configure the role for"))
	}
	if c.Skew < time.Second || c.Skew%time.Second != 0 {
		errs = append(errs, fmt.Errorf("vault: skew %s must be a positive whole number of seconds", c.Skew))
	}
	principals := map[string]bool{}
	extensions := map[string]bool{}
	var minTTL, maxTTL time.Duration
	for i, p := range c.Profiles {
		if len(p.Principals) == 0 {
			errs = append(errs, fmt.Errorf("vault: profile %d has no principals", i))
		}
		for _, pr := range p.Principals {
			if err := ca.CheckPrincipal(pr); err != nil {
				errs = append(errs, fmt.Errorf("vault: profile %d: %w", i, err))
			}
			principals[pr] = true
		}
		for _, e := range p.Extensions {
			if e == "" || strings.ContainsAny(e, ", \t\n") {
				errs = append(errs, fmt.Errorf("vault: profile %d: invalid extension %q", i, e))
			}
			extensions[e] = true
		}
		if p.CertTTL < time.Second {
			errs = append(errs, fmt.Errorf("vault: profile %d: cert_ttl %s is shorter than a second", i, p.CertTTL))
			continue
		}
		if minTTL == 0 || p.CertTTL < minTTL {
			minTTL = p.CertTTL
		}
		maxTTL = max(maxTTL, p.CertTTL)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return map[string]any{
		"key_type":                    "ca",
		"allow_user_certificates":     true,
		"allow_host_certificates":     false,
		"allowed_users":               strings.Join(slices.Sorted(maps.Keys(principals)), ","),
		"allowed_users_template":      false,
		"default_user":                "",
		"default_user_template":       false,
		"allowed_domains":             "",
		"allowed_extensions":          strings.Join(slices.Sorted(maps.Keys(extensions)), ","),
		"default_extensions":          map[string]any{},
		"default_extensions_template": false,
		"allowed_critical_options":    "source-address",
		"default_critical_options":    map[string]any{},
		"allow_user_key_ids":          true,
		"key_id_format":               "",
		"allow_empty_principals":      false,
		"ttl":                         int64(minTTL.Seconds()),
		"max_ttl":                     int64((maxTTL + time.Second - 1) / time.Second),
		"not_before_duration":         int64(c.Skew / time.Second),
		"algorithm_signer":            "default",
	}, nil
}

// SetupResult reports what Setup changed.
type SetupResult struct {
	Mount string
	Role  string
	// Mounted: the SSH secrets engine was mounted.
	Mounted bool
	// GeneratedKey: the mount had no CA key and one was generated.
	GeneratedKey bool
	// WroteRole: the role was created or updated.
	WroteRole bool
	// RoleChanges names the role settings that differed (all of them for a
	// new role), sorted.
	RoleChanges []string
	// CAKey is the mount's CA public key, which hosts trust.
	CAKey ssh.PublicKey
}

// Changed reports whether Setup changed anything in Vault.
func (r *SetupResult) Changed() bool { return r.Mounted || r.GeneratedKey || r.WroteRole }

// String summarises the result in one line.
func (r *SetupResult) String() string {
	var parts []string
	if r.Mounted {
		parts = append(parts, fmt.Sprintf("mounted the ssh secrets engine at %s/", r.Mount))
	}
	if r.GeneratedKey {
		parts = append(parts, fmt.Sprintf("generated a CA key in %s/", r.Mount))
	}
	if r.WroteRole {
		parts = append(parts, fmt.Sprintf("wrote role %s (%s)", r.Role, strings.Join(r.RoleChanges, ", ")))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("nothing changed: %s/ and role %s are already configured", r.Mount, r.Role)
	}
	return strings.Join(parts, "; ")
}

// Setup idempotently configures Vault for jit-ssh: it mounts the SSH secrets
// engine at cfg.Mount when missing, generates an ed25519 CA key in it when it
// has none (an existing key is never replaced), and creates or updates
// cfg.Role to RoleSettings when the role differs. A second run with the same
// configuration changes nothing. client needs a token allowed to manage
// mounts and the mount's config and roles.
func Setup(ctx context.Context, client *api.Client, cfg SetupConfig) (*SetupResult, error) {
	cfg = cfg.withDefaults()
	want, err := cfg.RoleSettings()
	if err != nil {
		return nil, err
	}
	call := func(ctx context.Context, op string, fn func(context.Context, *api.Client) error) error {
		if err := fn(ctx, client); err != nil {
			return classifySealed(ctx, client, op, err, client.ClientTimeout())
		}
		return nil
	}
	res := &SetupResult{Mount: cfg.Mount, Role: cfg.Role}

	// 1. The mount.
	var mounts map[string]*api.MountOutput
	if err := call(ctx, "list secrets engines", func(ctx context.Context, c *api.Client) error {
		var err error
		mounts, err = c.Sys().ListMountsWithContext(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	switch m, ok := mounts[cfg.Mount+"/"]; {
	case !ok:
		if err := call(ctx, "mount the ssh secrets engine at "+cfg.Mount, func(ctx context.Context, c *api.Client) error {
			return c.Sys().MountWithContext(ctx, cfg.Mount, &api.MountInput{
				Type:        "ssh",
				Description: "jit-ssh user certificate authority",
			})
		}); err != nil {
			return nil, err
		}
		res.Mounted = true
	case m.Type != "ssh":
		return nil, fmt.Errorf("vault: %s/ is a %q secrets engine, not ssh; choose another mount path", cfg.Mount, m.Type)
	}

	// 2. The CA key: generated only when the mount has none. Vault refuses
	// to overwrite a configured key as well, so a race cannot replace it.
	key, err := readCAKey(ctx, cfg.Mount, call, client.Address())
	var verr *Error
	if errors.As(err, &verr) && verr.Status == 400 {
		err = call(ctx, "generate the CA key in "+cfg.Mount+"/config/ca", func(ctx context.Context, c *api.Client) error {
			_, err := c.Logical().WriteWithContext(ctx, cfg.Mount+"/config/ca", map[string]any{
				"generate_signing_key": true,
				"key_type":             "ed25519",
			})
			return err
		})
		if err != nil {
			return nil, err
		}
		res.GeneratedKey = true
		key, err = readCAKey(ctx, cfg.Mount, call, client.Address())
	}
	if err != nil {
		return nil, err
	}
	res.CAKey = key

	// 3. The role, written only when a setting differs.
	rolePath := cfg.Mount + "/roles/" + cfg.Role
	var current *api.Secret
	if err := call(ctx, "read role "+rolePath, func(ctx context.Context, c *api.Client) error {
		var err error
		current, err = c.Logical().ReadWithContext(ctx, rolePath)
		return err
	}); err != nil {
		return nil, err
	}
	var have map[string]any
	if current != nil {
		have = current.Data
	}
	res.RoleChanges = roleDiff(want, have)
	if len(res.RoleChanges) > 0 {
		if err := call(ctx, "write role "+rolePath, func(ctx context.Context, c *api.Client) error {
			_, err := c.Logical().WriteWithContext(ctx, rolePath, want)
			return err
		}); err != nil {
			return nil, err
		}
		res.WroteRole = true
	}
	return res, nil
}

// Policy returns the Vault policy (HCL) the jit-ssh server's token needs to
// sign with role on mount and to read the CA key; nothing more.
func Policy(mount, role string) string {
	mount = strings.Trim(mount, "/")
	return fmt.Sprintf(`# jit-ssh server: sign user certificates and read the CA public key.
path "%[1]s/sign/%[2]s" {
  capabilities = ["update"]
}
path "%[1]s/config/ca" {
  capabilities = ["read"]
}
`, mount, role)
}

// roleDiff returns the sorted names of the settings in want that have
// another value in have (a role as Vault reads it back).
func roleDiff(want, have map[string]any) []string {
	var diff []string
	for k, w := range want {
		h, ok := have[k]
		if !ok || !sameSetting(w, h) {
			diff = append(diff, k)
		}
	}
	slices.Sort(diff)
	return diff
}

// sameSetting compares a wanted value with the one Vault returned (numbers
// arrive as json.Number, empty maps as nil or {}).
func sameSetting(want, have any) bool {
	switch w := want.(type) {
	case int64:
		switch h := have.(type) {
		case json.Number:
			n, err := h.Int64()
			return err == nil && n == w
		case float64:
			return int64(h) == w && float64(int64(h)) == h
		case int:
			return int64(h) == w
		case int64:
			return h == w
		}
		return false
	case map[string]any:
		h, ok := have.(map[string]any)
		if have != nil && !ok {
			return false
		}
		if len(w) != len(h) {
			return false
		}
		for k, v := range w {
			if fmt.Sprint(h[k]) != fmt.Sprint(v) {
				return false
			}
		}
		return true
	default:
		return want == have
	}
}
