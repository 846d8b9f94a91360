package api_test

import (
	"database/sql"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

// TestNoCertificateUnderAForgedApproval approves a pending request by
// editing the ledger file with the server stopped (the request's state and
// an approving review by an approver), starts the server again on it and
// asks for a certificate: none is issued, and audit verify names the row.
func TestNoCertificateUnderAForgedApproval(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s := newTestServerAt(t, path)
	req, err := s.as(t, "alice").CreateRequest(ctx, api.CreateRequest{HostGroup: "prod-db", Duration: "30m", Reason: "INC-9 forged"})
	if err != nil {
		t.Fatal(err)
	}
	s.stop(t)

	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE requests SET state = 'approved', approved_at = updated_at, version = version + 1 WHERE id = ?`,
		`INSERT INTO reviews (request_id, reviewer, event, body, created_at, dismissed) SELECT id, 'bob', 'APPROVE', 'lgtm', updated_at, 0 FROM requests WHERE id = ?`,
	} {
		if _, err := raw.ExecContext(ctx, q, req.ID); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	s = newTestServerAt(t, path)
	cert, err := s.as(t, "alice").IssueCertificate(ctx, req.ID, subjectKey(t))
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusInternalServerError || ae.Code != "ledger_mismatch" {
		t.Fatalf("IssueCertificate under the forged approval = %+v, %v; want 500 ledger_mismatch", cert, err)
	}
	if _, err := s.as(t, "bob").Review(ctx, req.ID, api.ReviewRequest{Event: "COMMENT", Body: "?"}); !errors.As(err, &ae) || ae.Code != "ledger_mismatch" {
		t.Errorf("Review of the forged request = %v, want ledger_mismatch", err)
	}
	v, err := s.as(t, "carol").Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.OK || v.BadTable != "requests" || v.BadKey != req.ID || !strings.Contains(v.Problem, "edited outside the server") {
		t.Errorf("verify = %+v, want it to name requests row %s", v, req.ID)
	}
	var n int
	if err := s.db.ListCertificates(ctx, ca.CertFilter{}, func(*ca.Certificate) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("the ledger holds %d certificates, want none", n)
	}
}
