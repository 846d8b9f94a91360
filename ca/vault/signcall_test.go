package vault

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/hashicorp/vault/api"
)

// The lean sign call sends Vault byte for byte the body vault/api sent for
// the same request as a map: same keys, same order, {} for no options.
func TestSignRequestBodyAsVaultAPI(t *testing.T) {
	tests := []struct {
		name string
		req  signRequest
	}{
		{"no options", signRequest{CertType: "user", KeyID: "jit-ssh:user=alice:group=staging:req=r-1:by=",
			PublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ5e\n", TTL: 300, ValidPrincipals: "staging"}},
		{"extensions and source address", signRequest{CertType: "user", KeyID: "k<&>\"\u2028",
			CriticalOptions: map[string]string{"source-address": "10.0.0.0/8,192.168.1.1/32"},
			Extensions:      map[string]string{"permit-pty": "", "permit-port-forwarding": "", "a<b": "&"},
			PublicKey:       "ssh-ed25519 AAAA\n", TTL: 1, ValidPrincipals: "db,web"}},
	}
	c, err := api.NewClient(&api.Config{Address: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.CriticalOptions, req.Extensions = orEmpty(req.CriticalOptions), orEmpty(req.Extensions)
			got, err := json.Marshal(&req)
			if err != nil {
				t.Fatal(err)
			}
			r := c.NewRequest(http.MethodPut, "/v1/ssh/sign/jit-ssh")
			if err := r.SetJSONBody(req.asMap()); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, r.BodyBytes) {
				t.Errorf("body\n%s\nvault/api sends\n%s", got, r.BodyBytes)
			}
		})
	}
}
