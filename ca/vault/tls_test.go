package vault_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/vault"
	"github.com/jit-ssh/jit-ssh/test/vaulttest"
)

// Over TLS the sign call trusts what VAULT_CACERT names, as vault/api does
// (the lean client reuses its *http.Client), and a Vault whose certificate
// it cannot verify is unreachable, at once and without retries.
func TestSignOverTLS(t *testing.T) {
	srv := vaulttest.StartTLS(t)
	if !strings.HasPrefix(srv.Addr, "https://") {
		t.Fatalf("Addr %q, want https", srv.Addr)
	}
	for _, k := range []string{"VAULT_NAMESPACE", "VAULT_CLIENT_TIMEOUT", "VAULT_CAPATH", "VAULT_SKIP_VERIFY", "VAULT_TLS_SERVER_NAME",
		vault.EnvRoleID, vault.EnvRoleIDFile, vault.EnvSecretID, vault.EnvSecretIDFile} {
		t.Setenv(k, "")
	}
	t.Setenv("VAULT_ADDR", srv.Addr)
	t.Setenv("VAULT_TOKEN", srv.Token)
	t.Setenv("VAULT_CACERT", srv.CACert)
	c, err := vault.NewClient(vault.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res := setup(t, c.API(), vault.SetupConfig{Profiles: []ca.Profile{prodDB}})
	signer := newSigner(t, c.API(), "ssh", "jit-ssh")
	ledger := &sliceLedger{}
	iss := ca.NewIssuer(signer, ledger)
	g := grant(prodDB, time.Now().Add(time.Hour))
	cert, err := issue(t, iss, ledger, g)
	if err != nil {
		t.Fatalf("Issue over TLS with VAULT_CACERT: %v", err)
	}
	if !sameKey(cert.SignatureKey, res.CAKey) {
		t.Error("not signed by the Vault CA")
	}

	// The same Vault without its CA: the handshake fails.
	t.Setenv("VAULT_CACERT", "")
	cfg := api.DefaultConfig()
	cfg.Address = srv.Addr
	untrusting, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	untrusting.SetToken(srv.Token)
	logs := &logBuffer{}
	bad := newSigner(t, untrusting, "ssh", "jit-ssh", vault.WithLogger(logs.logger()))
	tmpl, err := ca.Template(g, subjectKey(t), time.Now(), ca.DefaultSkew, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Sign(context.Background(), tmpl)
	var uaErr x509.UnknownAuthorityError
	if !errors.Is(err, vault.ErrUnreachable) || !errors.Is(err, ca.ErrSignerUnavailable) || !errors.As(err, &uaErr) {
		t.Fatalf("Sign without the CA: %v, want ErrUnreachable from an unknown authority", err)
	}
	if strings.Contains(logs.String(), "retrying") {
		t.Errorf("a certificate error was retried:\n%s", logs)
	}
}
