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
// core, Vault's own ssh/sign (raw) with the Signer (its pooled client,
// retries, parsing and check of what Vault returned) and with the whole
// issuer minus the ledger (issuer). The difference is what jit-ssh adds
// around Vault before the ledger write.
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
