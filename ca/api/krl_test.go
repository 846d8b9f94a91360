package api_test

import (
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// TestKRLRevokesUnderEveryCAKey edits a certificate's ca_fingerprint in the
// ledger file, then revokes the certificate: the KRL the server serves must
// still revoke it for hosts (ssh-keygen -Q), whatever the column says.
func TestKRLRevokesUnderEveryCAKey(t *testing.T) {
	keygen := testenv.RequireBinary(t, "ssh-keygen") // a failure, not a skip, under CI=true
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := newTestServerAt(t, path)
	alice, bob := s.as(t, "alice"), s.as(t, "bob")
	req := must[*api.Request](t)
	r := req(alice.CreateRequest(ctx, api.CreateRequest{HostGroup: "prod-db", Duration: "30m", Reason: "INC-7"}))
	req(bob.Review(ctx, r.ID, api.ReviewRequest{Event: ca.ReviewApprove, Body: "ok"}))
	cert := must[*api.Certificate](t)(alice.IssueCertificate(ctx, r.ID, subjectKey(t)))

	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `UPDATE certificates SET ca_fingerprint = 'SHA256:elsewhere' WHERE serial = ?`, cert.Serial); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	must[*api.RevokeResult](t)(bob.Revoke(ctx, api.RevokeRequest{Serial: cert.Serial, Reason: "incident"}))

	krl := must[[]byte](t)(s.as(t, "carol").KRL(ctx, 1<<20))
	dir := t.TempDir()
	krlPath, certPath := filepath.Join(dir, "krl"), filepath.Join(dir, "c-cert.pub")
	if err := os.WriteFile(krlPath, krl, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, []byte(cert.Certificate), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(keygen, "-Q", "-f", krlPath, certPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "REVOKED") {
		t.Errorf("ssh-keygen -Q on the served KRL: %v, %q; want the certificate REVOKED", err, out)
	}
	v := must[*api.VerifyResult](t)(s.as(t, "carol").Verify(ctx))
	if v.OK || v.BadTable != "certificates" {
		t.Errorf("verify = %+v, want it to name the edited certificates row", v)
	}
}
