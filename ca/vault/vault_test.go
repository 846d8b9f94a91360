package vault_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/vault"
	"github.com/jit-ssh/jit-ssh/test/vaulttest"
)

// sliceLedger is the smallest ca.Ledger: it appends to a slice.
type sliceLedger struct {
	mu    sync.Mutex
	certs []*ca.Certificate
}

func (l *sliceLedger) RecordCertificate(_ context.Context, c *ca.Certificate) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.certs = append(l.certs, c)
	return nil
}

func (l *sliceLedger) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.certs)
}

func (l *sliceLedger) last() *ca.Certificate {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.certs[len(l.certs)-1]
}

// logBuffer collects a signer's log records.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var (
	prodDB  = ca.Profile{Principals: []string{"prod-db"}, CertTTL: 5 * time.Minute, Extensions: []string{"permit-pty"}}
	multi   = ca.Profile{Principals: []string{"admin", "prod-db"}, CertTTL: 10 * time.Minute, Extensions: []string{"permit-agent-forwarding", "permit-port-forwarding", "permit-pty"}}
	staging = ca.Profile{Principals: []string{"staging"}, CertTTL: 2 * time.Minute}
	srcAddr = ca.Profile{Principals: []string{"prod-db"}, CertTTL: 5 * time.Minute, Extensions: []string{"permit-pty"}, SourceAddress: []string{"10.0.0.0/8", "192.168.1.0/24"}}
)

func grant(p ca.Profile, ends time.Time) ca.Grant {
	return ca.Grant{
		RequestID: "r-abcdefghijklmnop",
		User:      "alice",
		Group:     "prod-db",
		Approvers: []string{"bob"},
		Ends:      ends,
		Profile:   p,
	}
}

func subjectKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func setup(t testing.TB, c *api.Client, cfg vault.SetupConfig) *vault.SetupResult {
	t.Helper()
	res, err := vault.Setup(context.Background(), c, cfg)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return res
}

func newSigner(t testing.TB, c *api.Client, mount, role string, opts ...vault.Option) *vault.Signer {
	t.Helper()
	s, err := vault.New(c, mount, role, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func sameKey(a, b ssh.PublicKey) bool { return bytes.Equal(a.Marshal(), b.Marshal()) }

// issue runs one issuance and checks the invariant that matters most: a
// certificate is returned if and only if it reached the ledger.
func issue(t testing.TB, iss *ca.Issuer, l *sliceLedger, g ca.Grant) (*ssh.Certificate, error) {
	t.Helper()
	before := l.len()
	_, cert, err := iss.Issue(context.Background(), g, subjectKey(t))
	switch {
	case err == nil && l.len() != before+1:
		t.Fatalf("issued, but the ledger has %d records, want %d", l.len(), before+1)
	case err != nil && l.len() != before:
		t.Fatalf("refused (%v), but the ledger grew from %d to %d", err, before, l.len())
	case err != nil && cert != nil:
		t.Fatalf("refused (%v), but a certificate was returned", err)
	}
	return cert, err
}

func TestSetup(t *testing.T) {
	srv := vaulttest.Start(t)
	c := srv.Client()
	ctx := context.Background()
	cfg := vault.SetupConfig{Profiles: []ca.Profile{prodDB, multi, staging}}

	first := setup(t, c, cfg)
	if !first.Mounted || !first.GeneratedKey || !first.WroteRole || !first.Changed() {
		t.Fatalf("first run: %+v, want mounted, generated key, wrote role", first)
	}
	if first.CAKey == nil || first.CAKey.Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("CA key %v, want ed25519", first.CAKey)
	}

	second := setup(t, c, cfg)
	if second.Changed() || len(second.RoleChanges) != 0 {
		t.Fatalf("second run changed something: %s (%v)", second, second.RoleChanges)
	}
	if !sameKey(first.CAKey, second.CAKey) {
		t.Fatal("second run: CA key changed")
	}
	if got, want := second.String(), "nothing changed"; !strings.HasPrefix(got, want) {
		t.Errorf("String() = %q, want prefix %q", got, want)
	}

	role, err := c.Logical().ReadWithContext(ctx, "ssh/roles/jit-ssh")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"allowed_users":            "admin,prod-db,staging",
		"allowed_extensions":       "permit-agent-forwarding,permit-port-forwarding,permit-pty",
		"allowed_critical_options": "source-address",
		"default_user":             "",
		"allow_host_certificates":  false,
		"allow_user_key_ids":       true,
		"key_type":                 "ca",
	} {
		if got := role.Data[k]; got != want {
			t.Errorf("role %s = %v, want %v", k, got, want)
		}
	}
	for k, want := range map[string]string{"ttl": "120", "max_ttl": "600", "not_before_duration": "120"} {
		if got := role.Data[k]; got == nil || got.(interface{ String() string }).String() != want {
			t.Errorf("role %s = %v, want %s", k, got, want)
		}
	}

	// A change in policy rewrites the role, and only the role.
	cfg.Profiles = append(cfg.Profiles, srcAddr, ca.Profile{Principals: []string{"web"}, CertTTL: time.Hour})
	third := setup(t, c, cfg)
	if third.Mounted || third.GeneratedKey || !third.WroteRole {
		t.Fatalf("third run: %+v, want only the role written", third)
	}
	if want := []string{"allowed_users", "max_ttl"}; !slices.Equal(third.RoleChanges, want) {
		t.Errorf("role changes %v, want %v", third.RoleChanges, want)
	}
	if !sameKey(first.CAKey, third.CAKey) {
		t.Fatal("third run: CA key changed")
	}

	// A role edited behind jit-ssh's back is put back.
	if _, err := c.Logical().WriteWithContext(ctx, "ssh/roles/jit-ssh", map[string]any{
		"key_type": "ca", "allow_user_certificates": true, "allowed_users": "*", "default_extensions": map[string]any{"permit-X11-forwarding": ""},
	}); err != nil {
		t.Fatal(err)
	}
	fourth := setup(t, c, cfg)
	if !fourth.WroteRole || !slices.Contains(fourth.RoleChanges, "allowed_users") || !slices.Contains(fourth.RoleChanges, "default_extensions") {
		t.Fatalf("fourth run: %+v, want the role restored", fourth)
	}
	if setup(t, c, cfg).Changed() {
		t.Fatal("fifth run changed something")
	}

	t.Run("existing key is kept", func(t *testing.T) {
		// A key generated outside jit-ssh is used, never replaced.
		if err := c.Sys().MountWithContext(ctx, "ssh-own", &api.MountInput{Type: "ssh"}); err != nil {
			t.Fatal(err)
		}
		own, err := c.Logical().WriteWithContext(ctx, "ssh-own/config/ca", map[string]any{"generate_signing_key": true, "key_type": "ec", "key_bits": 256})
		if err != nil {
			t.Fatal(err)
		}
		res := setup(t, c, vault.SetupConfig{Mount: "ssh-own", Profiles: []ca.Profile{prodDB}})
		if res.Mounted || res.GeneratedKey || !res.WroteRole {
			t.Fatalf("got %+v, want only the role written", res)
		}
		want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(own.Data["public_key"].(string)))
		if err != nil {
			t.Fatal(err)
		}
		if !sameKey(res.CAKey, want) {
			t.Fatalf("CA key %s, want the existing %s", ssh.FingerprintSHA256(res.CAKey), ssh.FingerprintSHA256(want))
		}
	})

	t.Run("mount of another type", func(t *testing.T) {
		if err := c.Sys().MountWithContext(ctx, "kv-here", &api.MountInput{Type: "kv"}); err != nil {
			t.Fatal(err)
		}
		_, err := vault.Setup(ctx, c, vault.SetupConfig{Mount: "kv-here", Profiles: []ca.Profile{prodDB}})
		if err == nil || !strings.Contains(err.Error(), `"kv"`) {
			t.Fatalf("err = %v, want a refusal naming the kv mount", err)
		}
	})

	t.Run("invalid config", func(t *testing.T) {
		for name, cfg := range map[string]vault.SetupConfig{
			"no profiles":     {},
			"comma principal": {Profiles: []ca.Profile{{Principals: []string{"a,b"}, CertTTL: time.Minute}}},
			"no ttl":          {Profiles: []ca.Profile{{Principals: []string{"a"}}}},
			"bad extension":   {Profiles: []ca.Profile{{Principals: []string{"a"}, CertTTL: time.Minute, Extensions: []string{"permit-pty,permit-X11-forwarding"}}}},
		} {
			if _, err := vault.Setup(ctx, c, cfg); err == nil {
				t.Errorf("%s: Setup succeeded", name)
			}
		}
	})
}

func TestIssue(t *testing.T) {
	srv := vaulttest.Start(t)
	c := srv.Client()
	res := setup(t, c, vault.SetupConfig{Profiles: []ca.Profile{prodDB, multi, staging, srcAddr}})
	signer := newSigner(t, c, vault.DefaultMount, vault.DefaultRole)
	ledger := &sliceLedger{}
	iss := ca.NewIssuer(signer, ledger, ca.WithMismatchExplainer(signer.ExplainMismatch))

	keys, err := signer.PublicKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !sameKey(keys[0], res.CAKey) {
		t.Fatalf("PublicKeys = %v, want the Setup CA key", keys)
	}

	tests := []struct {
		name    string
		profile ca.Profile
		grantIn time.Duration // grant ends this long from now
	}{
		{"one principal", prodDB, time.Hour},
		{"several principals and extensions", multi, time.Hour},
		{"no extensions", staging, time.Hour},
		{"source address", srcAddr, time.Hour},
		{"grant ends before cert_ttl", prodDB, 90 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Now()
			g := grant(tt.profile, now.Add(tt.grantIn))
			cert, err := issue(t, iss, ledger, g)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if !sameKey(cert.SignatureKey, res.CAKey) {
				t.Errorf("signed by %s, want the Vault CA %s", ssh.FingerprintSHA256(cert.SignatureKey), ssh.FingerprintSHA256(res.CAKey))
			}
			if cert.CertType != ssh.UserCert {
				t.Errorf("type %d, want user", cert.CertType)
			}
			if !slices.Equal(cert.ValidPrincipals, tt.profile.Principals) {
				t.Errorf("principals %q, want %q", cert.ValidPrincipals, tt.profile.Principals)
			}
			wantID, _ := ca.KeyID(g.User, g.Group, g.RequestID, g.Approvers)
			if cert.KeyId != wantID {
				t.Errorf("KeyId %q, want %q", cert.KeyId, wantID)
			}
			wantExt := map[string]string{}
			for _, e := range tt.profile.Extensions {
				wantExt[e] = ""
			}
			if !maps.Equal(cert.Extensions, wantExt) {
				t.Errorf("extensions %v, want %v", cert.Extensions, wantExt)
			}
			wantCrit := map[string]string{}
			if len(tt.profile.SourceAddress) > 0 {
				wantCrit["source-address"] = strings.Join(tt.profile.SourceAddress, ",")
			}
			if !maps.Equal(cert.CriticalOptions, wantCrit) {
				t.Errorf("critical options %v, want %v", cert.CriticalOptions, wantCrit)
			}
			after, before := ca.CertTime(cert.ValidAfter), ca.CertTime(cert.ValidBefore)
			wantAfter := now.Add(-ca.DefaultSkew)
			if d := after.Sub(wantAfter); d < -3*time.Second || d > 3*time.Second {
				t.Errorf("valid after %s, want about %s", after, wantAfter)
			}
			wantBefore := now.Add(min(tt.profile.CertTTL, tt.grantIn))
			if d := before.Sub(wantBefore); d < -3*time.Second || d > time.Second {
				t.Errorf("valid before %s, want about %s", before, wantBefore)
			}
			rec := ledger.last()
			if rec.Serial != cert.Serial || rec.CAFingerprint != ssh.FingerprintSHA256(res.CAKey) || rec.KeyID != cert.KeyId {
				t.Errorf("ledger record %+v does not match the certificate (serial %d)", rec, cert.Serial)
			}
		})
	}

	t.Run("serials differ", func(t *testing.T) {
		seen := map[uint64]bool{}
		for range 5 {
			cert, err := issue(t, iss, ledger, grant(prodDB, time.Now().Add(time.Hour)))
			if err != nil {
				t.Fatal(err)
			}
			if seen[cert.Serial] {
				t.Fatalf("serial %d repeated", cert.Serial)
			}
			seen[cert.Serial] = true
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				_, _, err := iss.Issue(context.Background(), grant(prodDB, time.Now().Add(time.Hour)), subjectKey(t))
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("principal outside the role", func(t *testing.T) {
		p := ca.Profile{Principals: []string{"root"}, CertTTL: time.Minute}
		_, err := issue(t, iss, ledger, grant(p, time.Now().Add(time.Hour)))
		if !errors.Is(err, ca.ErrSignerUnavailable) || !errors.Is(err, vault.ErrRejected) {
			t.Fatalf("err = %v, want ErrSignerUnavailable and ErrRejected", err)
		}
		if !strings.Contains(err.Error(), "root is not a valid value for valid_principals") || !strings.Contains(err.Error(), "run jit-ssh vault setup") {
			t.Errorf("message %q does not carry Vault's reason and what to do", err)
		}
	})

	t.Run("unknown role", func(t *testing.T) {
		s := newSigner(t, c, vault.DefaultMount, "nope")
		_, err := issue(t, ca.NewIssuer(s, ledger, ca.WithMismatchExplainer(s.ExplainMismatch)), ledger, grant(prodDB, time.Now().Add(time.Hour)))
		if !errors.Is(err, ca.ErrSignerUnavailable) || !errors.Is(err, vault.ErrRejected) {
			t.Fatalf("err = %v, want ErrSignerUnavailable and ErrRejected", err)
		}
		if !strings.Contains(err.Error(), "ssh/sign/nope") {
			t.Errorf("message %q does not name the path", err)
		}
	})

	t.Run("token without policy", func(t *testing.T) {
		tok, err := c.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}, TTL: "5m"})
		if err != nil {
			t.Fatal(err)
		}
		weak := srv.Client()
		weak.SetToken(tok.Auth.ClientToken)
		s := newSigner(t, weak, vault.DefaultMount, vault.DefaultRole)
		_, err = issue(t, ca.NewIssuer(s, ledger, ca.WithMismatchExplainer(s.ExplainMismatch)), ledger, grant(prodDB, time.Now().Add(time.Hour)))
		if !errors.Is(err, ca.ErrSignerUnavailable) || !errors.Is(err, vault.ErrDenied) {
			t.Fatalf("err = %v, want ErrSignerUnavailable and ErrDenied", err)
		}
		if strings.Contains(err.Error(), tok.Auth.ClientToken) {
			t.Fatal("the error contains the token")
		}
	})

	t.Run("policy is enough", func(t *testing.T) {
		if err := c.Sys().PutPolicy("jit-ssh", vault.Policy("ssh", "jit-ssh")); err != nil {
			t.Fatal(err)
		}
		tok, err := c.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"jit-ssh"}, TTL: "5m"})
		if err != nil {
			t.Fatal(err)
		}
		tc := srv.Client()
		tc.SetToken(tok.Auth.ClientToken)
		s := newSigner(t, tc, vault.DefaultMount, vault.DefaultRole)
		if _, err := issue(t, ca.NewIssuer(s, ledger, ca.WithMismatchExplainer(s.ExplainMismatch)), ledger, grant(prodDB, time.Now().Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("client token replaced", func(t *testing.T) {
		// The signer reads the caller's token on every call (AppRole
		// re-login replaces it in place).
		tc := srv.Client()
		tc.SetToken("not-a-token")
		s := newSigner(t, tc, vault.DefaultMount, vault.DefaultRole)
		if _, err := issue(t, ca.NewIssuer(s, ledger, ca.WithMismatchExplainer(s.ExplainMismatch)), ledger, grant(prodDB, time.Now().Add(time.Hour))); !errors.Is(err, vault.ErrDenied) {
			t.Fatalf("err = %v, want ErrDenied", err)
		}
		tc.SetToken(srv.Token)
		if _, err := issue(t, ca.NewIssuer(s, ledger, ca.WithMismatchExplainer(s.ExplainMismatch)), ledger, grant(prodDB, time.Now().Add(time.Hour))); err != nil {
			t.Fatal(err)
		}
	})
}

// TestMisconfiguredRole: a Vault role that makes Vault sign something other
// than what jit-ssh asked is caught by ca.Issuer, and nothing is recorded.
func TestMisconfiguredRole(t *testing.T) {
	srv := vaulttest.Start(t)
	c := srv.Client()
	ctx := context.Background()
	setup(t, c, vault.SetupConfig{Profiles: []ca.Profile{prodDB, staging}})

	tests := []struct {
		name    string
		change  map[string]any
		profile ca.Profile
		want    error
		wantMsg string
	}{
		{"default extension added", map[string]any{"default_extensions": map[string]any{"permit-X11-forwarding": ""}}, staging, ca.ErrSignerMismatch, "extensions"},
		{"default critical option added", map[string]any{"default_critical_options": map[string]any{"force-command": "/bin/true"}}, prodDB, ca.ErrSignerMismatch, "critical options"},
		{"not_before_duration larger than the skew", map[string]any{"not_before_duration": 3600}, prodDB, ca.ErrSignerMismatch, "valid after"},
		{"key ids not allowed", map[string]any{"allow_user_key_ids": false}, prodDB, vault.ErrRejected, "key_id"},
		{"user certificates not allowed", map[string]any{"allow_user_certificates": false, "allow_host_certificates": true}, prodDB, vault.ErrRejected, "cert_type"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			role := "bad-" + string(rune('a'+i))
			cfg := vault.SetupConfig{Role: role, Profiles: []ca.Profile{prodDB, staging}}
			setup(t, c, cfg)
			settings, err := cfg.RoleSettings()
			if err != nil {
				t.Fatal(err)
			}
			maps.Copy(settings, tt.change)
			if _, err := c.Logical().WriteWithContext(ctx, "ssh/roles/"+role, settings); err != nil {
				t.Fatal(err)
			}
			ledger := &sliceLedger{}
			// As serve builds it: the Vault signer explains a mismatch.
			vs := newSigner(t, c, "ssh", role)
			iss := ca.NewIssuer(vs, ledger, ca.WithMismatchExplainer(vs.ExplainMismatch))
			_, err = issue(t, iss, ledger, grant(tt.profile, time.Now().Add(time.Hour)))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("message %q does not mention %q", err, tt.wantMsg)
			}
			if errors.Is(tt.want, ca.ErrSignerMismatch) && !strings.HasPrefix(err.Error(), "vault: ssh/sign/"+role+" at "+srv.Addr) {
				t.Errorf("message %q does not name Vault and the role", err)
			}
			if ledger.len() != 0 {
				t.Fatalf("ledger has %d records, want none", ledger.len())
			}
			// Setup repairs the role.
			if res := setup(t, c, cfg); !res.WroteRole {
				t.Fatalf("Setup did not repair the role: %+v", res)
			}
			if _, err := issue(t, iss, ledger, grant(tt.profile, time.Now().Add(time.Hour))); err != nil {
				t.Fatalf("after repair: %v", err)
			}
		})
	}
}

func TestSealed(t *testing.T) {
	t.Parallel()
	srv := vaulttest.Start(t)
	c := srv.Client()
	res := setup(t, c, vault.SetupConfig{Profiles: []ca.Profile{prodDB}})
	logs := &logBuffer{}
	signer := newSigner(t, c, "ssh", "jit-ssh", vault.WithLogger(logs.logger()))
	ledger := &sliceLedger{}
	iss := ca.NewIssuer(signer, ledger, ca.WithMismatchExplainer(signer.ExplainMismatch))
	g := grant(prodDB, time.Now().Add(time.Hour))
	if _, err := issue(t, iss, ledger, g); err != nil {
		t.Fatal(err)
	}

	srv.Seal()
	start := time.Now()
	_, err := issue(t, iss, ledger, g)
	if !errors.Is(err, ca.ErrSignerUnavailable) || !errors.Is(err, vault.ErrSealed) {
		t.Fatalf("err = %v, want ErrSignerUnavailable and ErrSealed", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "vault: sealed") || !strings.Contains(msg, srv.Addr) {
		t.Errorf("message %q does not say Vault at %s is sealed", msg, srv.Addr)
	}
	t.Logf("sealed Vault reported in %s", time.Since(start).Round(time.Millisecond))
	if strings.Contains(logs.String(), "retrying") {
		t.Errorf("a sealed Vault was retried:\n%s", logs)
	}

	// A fresh signer has nothing cached: its CA key read fails closed too.
	_, err = newSigner(t, c, "ssh", "jit-ssh").PublicKeys(context.Background())
	if !errors.Is(err, ca.ErrSignerUnavailable) || !errors.Is(err, vault.ErrSealed) {
		t.Fatalf("PublicKeys on a cold cache: err = %v, want ErrSignerUnavailable and ErrSealed", err)
	}

	srv.Unseal()
	cert, err := issue(t, iss, ledger, g)
	if err != nil {
		t.Fatalf("after unseal, the same signer: %v", err)
	}
	if !sameKey(cert.SignatureKey, res.CAKey) {
		t.Error("after unseal: another CA key")
	}
}

func TestStopped(t *testing.T) {
	t.Parallel()
	srv := vaulttest.Start(t)
	c := srv.Client()
	setup(t, c, vault.SetupConfig{Profiles: []ca.Profile{prodDB}})
	logs := &logBuffer{}
	const timeout = 3 * time.Second
	signer := newSigner(t, c, "ssh", "jit-ssh", vault.WithTimeout(timeout), vault.WithLogger(logs.logger()))
	ledger := &sliceLedger{}
	iss := ca.NewIssuer(signer, ledger, ca.WithMismatchExplainer(signer.ExplainMismatch))
	g := grant(prodDB, time.Now().Add(time.Hour))
	if _, err := issue(t, iss, ledger, g); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	start := time.Now()
	_, err := issue(t, iss, ledger, g)
	elapsed := time.Since(start)
	if !errors.Is(err, ca.ErrSignerUnavailable) || !errors.Is(err, vault.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrSignerUnavailable and ErrUnreachable", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "vault: unreachable at "+srv.Addr) {
		t.Errorf("message %q does not say Vault at %s is unreachable", msg, srv.Addr)
	}
	// The bound is the point, not the speed: a stopped Vault must not hold
	// a caller much past the timeout, however loaded the machine.
	if elapsed > 2*timeout {
		t.Errorf("took %s, far past the %s timeout", elapsed, timeout)
	}
	if n := strings.Count(logs.String(), "retrying"); n != vault.DefaultRetries {
		t.Errorf("%d retries, want %d:\n%s", n, vault.DefaultRetries, logs)
	}
	_, err = newSigner(t, c, "ssh", "jit-ssh").PublicKeys(context.Background())
	if !errors.Is(err, ca.ErrSignerUnavailable) {
		t.Fatalf("PublicKeys on a cold cache: err = %v, want ErrSignerUnavailable", err)
	}

	// Vault comes back (empty: dev mode is in memory, so Setup runs again
	// and makes a new CA key). The same signer and issuer work, and the
	// certificate verifies against the new key although the old one was
	// cached.
	srv.Restart()
	res := setup(t, c, vault.SetupConfig{Profiles: []ca.Profile{prodDB}})
	cert, err := issue(t, iss, ledger, g)
	if err != nil {
		t.Fatalf("after restart, the same signer: %v", err)
	}
	if !sameKey(cert.SignatureKey, res.CAKey) {
		t.Error("after restart: not signed by the new CA key")
	}
	if strings.Contains(logs.String(), srv.Token) {
		t.Error("the log contains the Vault token")
	}
}

func TestHung(t *testing.T) {
	t.Parallel()
	srv := vaulttest.Start(t)
	c := srv.Client()
	setup(t, c, vault.SetupConfig{Profiles: []ca.Profile{prodDB}})
	const timeout = time.Second
	signer := newSigner(t, c, "ssh", "jit-ssh", vault.WithTimeout(timeout))
	ledger := &sliceLedger{}
	iss := ca.NewIssuer(signer, ledger, ca.WithMismatchExplainer(signer.ExplainMismatch))
	g := grant(prodDB, time.Now().Add(time.Hour))
	if _, err := issue(t, iss, ledger, g); err != nil {
		t.Fatal(err)
	}

	srv.Pause()
	start := time.Now()
	_, err := issue(t, iss, ledger, g)
	elapsed := time.Since(start)
	if !errors.Is(err, ca.ErrSignerUnavailable) || !errors.Is(err, vault.ErrTimeout) {
		t.Fatalf("err = %v, want ErrSignerUnavailable and ErrTimeout", err)
	}
	if !strings.Contains(err.Error(), "vault: timed out at "+srv.Addr) {
		t.Errorf("message %q does not say Vault timed out", err)
	}
	if elapsed < timeout || elapsed > timeout+10*time.Second {
		t.Errorf("failed after %s, want the %s timeout (not earlier, not unbounded)", elapsed, timeout)
	}
	start = time.Now()
	_, err = newSigner(t, c, "ssh", "jit-ssh", vault.WithTimeout(timeout)).PublicKeys(context.Background())
	if !errors.Is(err, vault.ErrTimeout) || time.Since(start) > timeout+10*time.Second {
		t.Fatalf("PublicKeys on a cold cache: err = %v after %s, want ErrTimeout within %s", err, time.Since(start), timeout)
	}

	srv.Resume()
	if _, err := issue(t, iss, ledger, g); err != nil {
		t.Fatalf("after resume, the same signer: %v", err)
	}
}

func TestNewClientToken(t *testing.T) {
	srv := vaulttest.Start(t)
	for _, k := range []string{"VAULT_NAMESPACE", "VAULT_CACERT", "VAULT_CLIENT_TIMEOUT", vault.EnvRoleID, vault.EnvRoleIDFile, vault.EnvSecretID, vault.EnvSecretIDFile} {
		t.Setenv(k, "")
	}
	t.Setenv("VAULT_ADDR", srv.Addr)
	t.Setenv("VAULT_TOKEN", srv.Token)

	c, err := vault.NewClient(vault.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.API().Address(); got != srv.Addr {
		t.Errorf("address %q, want %q from VAULT_ADDR", got, srv.Addr)
	}
	res, err := vault.Setup(context.Background(), c.API(), vault.SetupConfig{Profiles: []ca.Profile{prodDB}})
	if err != nil {
		t.Fatal(err)
	}
	ledger := &sliceLedger{}
	iss := ca.NewIssuer(newSigner(t, c.API(), "ssh", "jit-ssh"), ledger)
	cert, err := issue(t, iss, ledger, grant(prodDB, time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if !sameKey(cert.SignatureKey, res.CAKey) {
		t.Error("not signed by the Vault CA")
	}

	t.Setenv("VAULT_TOKEN", "")
	if _, err := vault.NewClient(vault.ClientConfig{}); err == nil || !strings.Contains(err.Error(), "VAULT_TOKEN") {
		t.Fatalf("without a token: err = %v, want one naming VAULT_TOKEN", err)
	}
}

func TestNewClientAppRole(t *testing.T) {
	srv := vaulttest.Start(t)
	root := srv.Client()
	ctx := context.Background()
	setup(t, root, vault.SetupConfig{Profiles: []ca.Profile{prodDB}})
	if err := root.Sys().PutPolicy("jit-ssh", vault.Policy("ssh", "jit-ssh")); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	// Short token lifetimes make the watcher renew, hit the max TTL and log
	// in again within seconds.
	if _, err := root.Logical().Write("auth/approle/role/jit-ssh", map[string]any{
		"token_policies": "jit-ssh", "token_ttl": "2s", "token_max_ttl": "4s",
	}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Logical().Read("auth/approle/role/jit-ssh/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.Logical().Write("auth/approle/role/jit-ssh/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(secretFile, []byte(sid.Data["secret_id"].(string)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", "") // AppRole must not need one
	logs := &logBuffer{}
	c, err := vault.NewClient(vault.ClientConfig{
		Address: srv.Addr,
		AppRole: vault.AppRole{RoleID: rid.Data["role_id"].(string), SecretIDFile: secretFile},
		Logger:  logs.logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ledger := &sliceLedger{}
	iss := ca.NewIssuer(newSigner(t, c.API(), "ssh", "jit-ssh"), ledger)
	if _, err := issue(t, iss, ledger, grant(prodDB, time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	first := c.API().Token()

	deadline := time.Now().Add(20 * time.Second)
	for c.API().Token() == first {
		if time.Now().After(deadline) {
			t.Fatalf("no re-login within 20s:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := issue(t, iss, ledger, grant(prodDB, time.Now().Add(time.Hour))); err != nil {
		t.Fatalf("after re-login: %v", err)
	}
	// The first token is past its max TTL by now or soon; the new one is
	// what the signer uses.
	if _, err := root.Auth().Token().LookupWithContext(ctx, c.API().Token()); err != nil {
		t.Fatalf("new token: %v", err)
	}
	for _, tok := range []string{first, c.API().Token(), srv.Token} {
		if strings.Contains(logs.String(), tok) {
			t.Fatal("the log contains a token")
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("bad secret id", func(t *testing.T) {
		_, err := vault.NewClient(vault.ClientConfig{
			Address: srv.Addr,
			AppRole: vault.AppRole{RoleID: rid.Data["role_id"].(string), SecretID: "wrong"},
		})
		if !errors.Is(err, vault.ErrRejected) || !strings.Contains(err.Error(), "AppRole login") {
			t.Fatalf("err = %v, want a rejected AppRole login", err)
		}
	})
}

// TestReloginWhenTokenRefused: a server with AppRole whose token Vault no
// longer accepts (revoked, or lost by a rebuilt Vault) logs in again on the
// first 403 and signs, instead of failing until the renewal watcher notices.
func TestReloginWhenTokenRefused(t *testing.T) {
	srv := vaulttest.Start(t)
	root := srv.Client()
	setup(t, root, vault.SetupConfig{Profiles: []ca.Profile{prodDB}})
	const roleID, secretID = "7d6b0b8e-4f5c-4b1e-9d2a-1c3e5f7a9b01", "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
	srv.AppRole("jit-ssh", vault.Policy("ssh", "jit-ssh"), roleID, secretID)
	t.Setenv("VAULT_TOKEN", "")
	logs := &logBuffer{}
	c, err := vault.NewClient(vault.ClientConfig{Address: srv.Addr, AppRole: vault.AppRole{RoleID: roleID, SecretID: secretID}, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ledger := &sliceLedger{}
	withReauth := ca.NewIssuer(newSigner(t, c.API(), "ssh", "jit-ssh", vault.WithReauth(c.Relogin), vault.WithLogger(logs.logger())), ledger)
	without := ca.NewIssuer(newSigner(t, c.API(), "ssh", "jit-ssh"), ledger)
	g := grant(prodDB, time.Now().Add(time.Hour))
	if _, err := issue(t, withReauth, ledger, g); err != nil {
		t.Fatal(err)
	}

	// The token is revoked behind the client's back.
	revoke := func() {
		t.Helper()
		if err := root.Auth().Token().RevokeTree(c.API().Token()); err != nil {
			t.Fatal(err)
		}
	}
	revoke()
	if _, err := issue(t, without, ledger, g); !errors.Is(err, vault.ErrDenied) {
		t.Fatalf("without WithReauth: err = %v, want ErrDenied", err)
	}
	first := c.API().Token()
	if _, err := issue(t, withReauth, ledger, g); err != nil {
		t.Fatalf("after the token was revoked: %v\n%s", err, logs)
	}
	if c.API().Token() == first {
		t.Fatal("the client still holds the revoked token")
	}

	// Vault is rebuilt: empty, then set up again with the same AppRole.
	srv.Restart()
	res := setup(t, root, vault.SetupConfig{Profiles: []ca.Profile{prodDB}})
	srv.AppRole("jit-ssh", vault.Policy("ssh", "jit-ssh"), roleID, secretID)
	cert, err := issue(t, withReauth, ledger, g)
	if err != nil {
		t.Fatalf("after Vault was rebuilt: %v\n%s", err, logs)
	}
	if !sameKey(cert.SignatureKey, res.CAKey) {
		t.Error("not signed by the rebuilt Vault's CA key")
	}
	for _, tok := range []string{first, c.API().Token(), srv.Token, secretID} {
		if strings.Contains(logs.String(), tok) {
			t.Fatal("the log contains a token or the secret ID")
		}
	}

	// A token client cannot log in again by itself: the 403 stands.
	t.Setenv("VAULT_TOKEN", srv.Token)
	tc, err := vault.NewClient(vault.ClientConfig{Address: srv.Addr, TokenOnly: true, AppRole: vault.AppRole{RoleID: roleID, SecretID: secretID}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if tc.API().Token() != srv.Token {
		t.Fatal("TokenOnly client did not use VAULT_TOKEN")
	}
	if err := tc.Relogin(context.Background()); !errors.Is(err, vault.ErrNoAppRole) {
		t.Fatalf("Relogin of a token client: err = %v, want ErrNoAppRole", err)
	}
}
