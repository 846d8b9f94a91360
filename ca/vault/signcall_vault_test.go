package vault

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/test/vaulttest"
)

// Against a real Vault, every answer the sign call gets reads as it did
// through vault/api's Logical().Write (what the Signer used before): the
// same reply, the same classified error (kind, HTTP status, message).
func TestSignCallAsVaultAPI(t *testing.T) {
	srv := vaulttest.Start(t)
	root := srv.Client()
	ctx := context.Background()
	if _, err := Setup(ctx, root, SetupConfig{Profiles: []ca.Profile{{Principals: []string{"prod-db"}, CertTTL: 5 * time.Minute, Extensions: []string{"permit-pty"}}}}); err != nil {
		t.Fatal(err)
	}
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGTqdBL5lMQ0ETy4v7ZxV/f6ShGbMikHSKhL7ZmeSVQ1\n"
	ok := signRequest{CertType: "user", CriticalOptions: map[string]string{}, Extensions: map[string]string{"permit-pty": ""},
		KeyID: "jit-ssh:user=alice:group=prod-db:req=r-abcdefghijklmnop:by=bob", PublicKey: key, TTL: 60, ValidPrincipals: "prod-db"}
	root2 := ok
	root2.ValidPrincipals = "root"
	badKey := ok
	badKey.PublicKey = "not a key"
	tests := []struct {
		name  string
		path  string
		token string
		req   signRequest
		fails bool
	}{
		{"signed", "ssh/sign/jit-ssh", srv.Token, ok, false},
		{"unknown mount (404)", "nosuch/sign/jit-ssh", srv.Token, ok, true},
		{"unknown role", "ssh/sign/nosuch", srv.Token, ok, true},
		{"principal the role does not allow", "ssh/sign/jit-ssh", srv.Token, root2, true},
		{"unparsable public key", "ssh/sign/jit-ssh", srv.Token, badKey, true},
		{"unknown token (403)", "ssh/sign/jit-ssh", "hvs.not-a-token", ok, true},
		{"no token", "ssh/sign/jit-ssh", "", ok, true},
		{"hung", "ssh/sign/jit-ssh", srv.Token, ok, true},
		{"sealed (503)", "ssh/sign/jit-ssh", srv.Token, ok, true},
		{"stopped", "ssh/sign/jit-ssh", srv.Token, ok, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := 5 * time.Second
			switch tt.name {
			case "hung":
				srv.Pause()
				defer srv.Resume()
				timeout = 500 * time.Millisecond
			case "sealed (503)":
				srv.Seal()
			case "stopped":
				srv.Stop()
			}
			cfg := root.CloneConfig()
			cfg.MaxRetries = 0
			own, err := api.NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			own.SetToken(tt.token)
			if tt.token == "" {
				own.ClearToken()
			}
			sc, err := newSignCall(own, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, err := json.Marshal(&tt.req)
			if err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			secret, oldErr := own.Logical().WriteWithContext(cctx, tt.path, tt.req.asMap())
			cancel()
			cctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
			reply, newErr := sc.do(cctx, own.Token(), body, func(context.Context) (*api.Secret, error) {
				t.Error("the sign call fell back to vault/api")
				return nil, nil
			})
			if (oldErr != nil) != tt.fails || (newErr != nil) != tt.fails {
				t.Fatalf("errors: vault/api %v, sign call %v; want failure %v", oldErr, newErr, tt.fails)
			}
			if !tt.fails {
				// Two signatures differ (serial, nonce); the shape must not.
				want := replyOf(secret)
				if reply.data != want.data || len(reply.warnings) != len(want.warnings) ||
					!strings.HasPrefix(reply.signed, "ssh-ed25519-cert-v01@openssh.com ") || !strings.HasPrefix(want.signed, "ssh-ed25519-cert-v01@openssh.com ") {
					t.Errorf("reply %+v, vault/api's %+v", reply, want)
				}
				return
			}
			const op = "sign"
			o, n := classify(op, own.Address(), oldErr, time.Second), classify(op, own.Address(), newErr, time.Second)
			if o.Error() != n.Error() || !errors.Is(n.Kind, o.Kind) || o.Status != n.Status || transient(o) != transient(n) {
				t.Errorf("sign call: %v (status %d, transient %v)\nvault/api: %v (status %d, transient %v)", n, n.Status, transient(n), o, o.Status, transient(o))
			}
		})
	}
}
