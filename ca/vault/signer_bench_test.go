package vault_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/vault"
	"github.com/jit-ssh/jit-ssh/test/vaulttest"
)

// BenchmarkVaultSign compares, on one real dev Vault and 8 callers per
// core, Vault's own ssh/sign through vault/api (raw) with the Signer (its
// lean sign call, retries, parsing of what Vault returned) and with the
// whole issuer minus the ledger (issuer: the field-by-field check and the
// signature verification too). The difference is what jit-ssh adds around
// Vault before the ledger write. cpu-us/op is this process's CPU time per
// call (Vault runs in its own process): on a shared machine it moves much
// less than ns/op.
func BenchmarkVaultSign(b *testing.B) {
	srv := vaulttest.Start(b)
	c := srv.Client()
	setup(b, c, vault.SetupConfig{Profiles: []ca.Profile{prodDB}})
	key := subjectKey(b)
	g := grant(prodDB, time.Now().Add(time.Hour))
	tmpl, err := ca.Template(g, key, time.Now(), ca.DefaultSkew, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	data := map[string]any{
		"public_key": string(ssh.MarshalAuthorizedKey(key)), "valid_principals": strings.Join(tmpl.ValidPrincipals, ","),
		"ttl": 300, "cert_type": "user", "key_id": tmpl.KeyId, "extensions": map[string]any{"permit-pty": ""},
	}
	raw := srv.Client()
	raw.SetMaxRetries(0)
	signer := newSigner(b, c, "ssh", "jit-ssh")
	iss := ca.NewIssuer(signer, &sliceLedger{})
	b.Run("raw", func(b *testing.B) {
		b.SetParallelism(8)
		defer reportCPU(b)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := raw.Logical().WriteWithContext(context.Background(), "ssh/sign/jit-ssh", data); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("signer", func(b *testing.B) {
		b.SetParallelism(8)
		defer reportCPU(b)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				t, err := ca.Template(g, key, time.Now(), ca.DefaultSkew, rand.Reader)
				if err == nil {
					_, err = signer.Sign(context.Background(), t)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("issuer", func(b *testing.B) {
		b.SetParallelism(8)
		defer reportCPU(b)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := iss.Issue(context.Background(), g, key); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// reportCPU starts measuring the process's CPU time; the function it
// returns reports it per operation as cpu-us/op.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		if start > 0 && b.N > 0 {
			b.ReportMetric(float64((processCPU()-start).Microseconds())/float64(b.N), "cpu-us/op")
		}
	}
}
