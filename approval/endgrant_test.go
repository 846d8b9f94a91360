package approval_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
)

// issueUnder issues a certificate to login under request id at the env's
// clock, the way POST /v1/certificates does.
func (e *env) issueUnder(t *testing.T, iss *ca.Issuer, login, id string) uint64 {
	t.Helper()
	g, err := e.svc.Authorize(t.Context(), login, id)
	if err != nil {
		t.Fatalf("Authorize(%s, %s): %v", login, id, err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := iss.Issue(t.Context(), g, k)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return rec.Serial
}

func (e *env) issuer(t *testing.T) *ca.Issuer {
	t.Helper()
	signer, err := ca.LoadOrCreateFileSigner(filepath.Join(t.TempDir(), "ca_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	return ca.NewIssuer(signer, e.db, ca.WithClock(e.clk.now))
}

// revokedSerials is every serial the KRL lists at now, and its version.
func (e *env) revokedSerials(t *testing.T) ([]uint64, uint64) {
	t.Helper()
	by, version, err := e.db.RevokedSerials(t.Context(), e.clk.now().Add(-ca.DefaultSkew))
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, s := range by {
		out = append(out, s...)
	}
	slices.Sort(out)
	return out, version
}

// validAt lists the serials `audit certs --valid-at` shows at t.
func (e *env) validAt(t *testing.T, at time.Time) []uint64 {
	t.Helper()
	var out []uint64
	err := e.db.ListCertificates(t.Context(), ca.CertFilter{ValidAt: at}, func(c *ca.Certificate) error {
		out = append(out, c.Serial)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestCancelGrantRevokesCertificates: ending a grant early, by its
// requester or by an approver (logout --end is the requester's cancel),
// revokes in the same transaction every certificate of it a host could
// still accept, with a certificate.revoked event each: the KRL lists them
// and its version moves, and `audit certs --valid-at now` no longer shows
// them. A certificate long expired is left alone, other grants' too, and a
// refused cancel revokes nothing.
func TestCancelGrantRevokesCertificates(t *testing.T) {
	tests := []struct {
		login    string
		wantKind error
		wantCode string
	}{
		{"alice", nil, ""}, // the requester (and 'logout --end')
		{"dave", nil, ""},  // an approver of the group
		{"carol", approval.ErrForbidden, "not_an_approver"},
		{"erin", approval.ErrNotFound, "request_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.login, func(t *testing.T) {
			e := newEnv(t, nil)
			iss := e.issuer(t)
			r := e.create(t, "alice", "db-one", time.Hour)
			e.review(t, "bob", r.ID, ca.ReviewApprove)
			expired := e.issueUnder(t, iss, "alice", r.ID) // cert_ttl 5m: long expired below
			e.clk.advance(20 * time.Minute)
			live1 := e.issueUnder(t, iss, "alice", r.ID)
			e.clk.advance(time.Minute)
			live2 := e.issueUnder(t, iss, "alice", r.ID)
			// erin's grant in the same group is not touched.
			other := e.create(t, "erin", "db-one", time.Hour)
			e.review(t, "bob", other.ID, ca.ReviewApprove)
			erins := e.issueUnder(t, iss, "erin", other.ID)
			e.clk.advance(time.Minute)
			_, versionBefore := e.revokedSerials(t)

			_, err := e.svc.Cancel(t.Context(), tt.login, r.ID)
			checkErr(t, err, tt.wantKind, tt.wantCode)
			now := e.clk.now()
			revoked, version := e.revokedSerials(t)
			if tt.wantKind != nil {
				if len(revoked) != 0 || version != versionBefore {
					t.Errorf("a refused cancel revoked %v (KRL version %d -> %d)", revoked, versionBefore, version)
				}
				return
			}
			want := []uint64{live1, live2}
			slices.Sort(want)
			if !slices.Equal(revoked, want) {
				t.Errorf("KRL lists %v after the grant ended, want its live certificates %v", revoked, want)
			}
			if version <= versionBefore {
				t.Errorf("KRL version %d -> %d, want it to grow", versionBefore, version)
			}
			if got := e.validAt(t, now); !slices.Equal(got, []uint64{erins}) {
				t.Errorf("certificates valid now: %v, want only erin's %d", got, erins)
			}
			for _, serial := range []uint64{expired, erins} {
				c, err := e.db.GetCertificate(t.Context(), serial)
				if err != nil {
					t.Fatal(err)
				}
				if !c.RevokedAt.IsZero() {
					t.Errorf("certificate %d was revoked, want it left alone", serial)
				}
			}
			// One certificate.revoked event per revoked certificate, by the
			// one who ended the grant, after the grant.ended event.
			var types []string
			var revokedBy []uint64
			err = e.db.ListEvents(t.Context(), ca.EventFilter{RequestID: r.ID, Since: now}, func(ev *ca.Event) error {
				types = append(types, ev.Type)
				if ev.Type == ca.EventRevoked {
					if ev.Actor != tt.login || ev.Data["reason"] != "grant ended early: cancelled by "+tt.login || ev.Data["requester"] != "alice" {
						t.Errorf("revocation event %+v, want by %s, saying the grant was cancelled", ev, tt.login)
					}
					revokedBy = append(revokedBy, ev.Serial)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(revokedBy)
			if wantTypes := []string{ca.EventGrantEnded, ca.EventRevoked, ca.EventRevoked}; !slices.Equal(types, wantTypes) || !slices.Equal(revokedBy, want) {
				t.Errorf("events of the cancel: %v for %v, want %v for %v", types, revokedBy, wantTypes, want)
			}
			// The grant is over: nothing more is issued under it.
			if _, err := e.svc.Authorize(t.Context(), "alice", r.ID); err == nil {
				t.Errorf("Authorize after the grant ended succeeded")
			}
			verifyLedger(t, e.db)
		})
	}
}

// TestCancelGrantRevokesRacingCertificate: a certificate that was
// authorized before the grant ended but is recorded after is never issued,
// so nothing of the grant outlives it.
func TestCancelGrantRevokesRacingCertificate(t *testing.T) {
	e := newEnv(t, nil)
	iss := e.issuer(t)
	r := e.create(t, "alice", "db-one", time.Hour)
	e.review(t, "bob", r.ID, ca.ReviewApprove)
	g, err := e.svc.Authorize(t.Context(), "alice", r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Cancel(t.Context(), "alice", r.ID); err != nil {
		t.Fatal(err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ssh.NewPublicKey(pub)
	if _, _, err := iss.Issue(t.Context(), g, k); err == nil {
		t.Fatalf("a certificate was issued under a grant that ended")
	}
	if got := e.validAt(t, e.clk.now()); len(got) != 0 {
		t.Errorf("certificates valid after the grant ended: %v", got)
	}
}
