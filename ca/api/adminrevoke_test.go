package api

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"testing"
)

// TestAdminMayRevokeAnything: an admin (root, team admins) may revoke
// someone else's certificates by serial, by request and by user, as the
// README says, in groups whose approver they are not; reading the request
// stays as it was (admins are not auditors). The matrix of TestAuthzMatrix
// has no admin column: this is its admin column for the revocations.
func TestAdminMayRevokeAnything(t *testing.T) {
	for _, form := range []struct {
		name string
		body string
	}{
		{"serial", `{"serial":"{serial}","reason":"offboarding"}`},
		{"request", `{"request_id":"{id}","reason":"offboarding"}`},
		{"user", `{"user":"alice","reason":"offboarding"}`},
	} {
		t.Run(form.name, func(t *testing.T) {
			f := newHardFixture(t)
			state := certSetup(f)
			var res RevokeResult
			f.must(call{token: tokenOf("root"), method: "POST", path: "/v1/revocations", body: state.fill(form.body)}, http.StatusOK, &res)
			if !slices.Equal(res.Revoked, []string{state["serial"]}) || !slices.Equal(res.EndedGrants, []string{state["id"]}) {
				t.Errorf("revoked %v, ended %v; want %s and %s", res.Revoked, res.EndedGrants, state["serial"], state["id"])
			}
			c, err := f.db.GetCertificate(context.Background(), mustSerial(t, state["serial"]))
			if err != nil {
				t.Fatal(err)
			}
			if c.RevokedAt.IsZero() {
				t.Errorf("the ledger does not show certificate %s revoked", state["serial"])
			}
			// Revoking is not reading: the admin still cannot see it.
			if r := f.do(call{token: tokenOf("root"), method: "GET", path: "/v1/requests/" + state["id"]}); r.status != http.StatusNotFound {
				t.Errorf("admin reading alice's request: status %d, want 404 as before", r.status)
			}
		})
	}
	// An unknown request is still unknown to an admin.
	f := newHardFixture(t)
	r := f.do(call{token: tokenOf("root"), method: "POST", path: "/v1/revocations", body: `{"request_id":"r-aaaaaaaaaaaaaaaa","reason":"x"}`})
	if r.status != http.StatusNotFound || r.code != "request_not_found" {
		t.Errorf("admin revoking an unknown request: status %d %s, want 404 request_not_found", r.status, r.code)
	}
}

func mustSerial(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("serial %q: %v", s, err)
	}
	return n
}
