package approval_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// The SQLite ledger is an Authority's ledger.
var _ approval.Ledger = (*sqlite.DB)(nil)

// authority returns the certificate use cases over e, with a file signer.
func (e *env) authority(t *testing.T) *approval.Authority {
	t.Helper()
	signer, err := ca.LoadOrCreateFileSigner(filepath.Join(t.TempDir(), "ca_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	iss := ca.NewIssuer(signer, e.db, ca.WithClock(e.clk.now))
	return approval.NewAuthority(e.svc, approval.WithIssuer(iss), approval.WithLedger(e.db), approval.WithSigner(signer))
}

func TestFailure(t *testing.T) {
	own := &approval.Error{Kind: approval.ErrForbidden, Code: "not_requester", Message: "no"}
	for _, tc := range []struct {
		err  error
		kind error
		code string
	}{
		{fmt.Errorf("wrapped: %w", own), approval.ErrForbidden, "not_requester"},
		{fmt.Errorf("%w: empty", ca.ErrBadKey), approval.ErrInvalid, "invalid_public_key"},
		{ca.ErrKeyType, approval.ErrInvalid, "invalid_public_key"},
		{ca.ErrInvalidName, approval.ErrInvalid, "invalid_name"},
		{ca.ErrGrantEnded, approval.ErrConflict, "grant_ended"},
		{ca.ErrSignerMismatch, approval.ErrUnavailable, "signer_mismatch"},
		{ca.ErrSignerUnavailable, approval.ErrUnavailable, "signer_unavailable"},
		{ca.ErrLedgerUnavailable, approval.ErrUnavailable, "ledger_unavailable"},
		{ca.ErrNotFound, approval.ErrNotFound, "not_found"},
		{ca.ErrConflict, approval.ErrConflict, "conflict"},
		{context.DeadlineExceeded, approval.ErrUnavailable, "timeout"},
		{store.ErrRowMismatch, approval.ErrInternal, "ledger_mismatch"},
		{errors.New("disk on fire"), approval.ErrInternal, "internal"},
	} {
		f := approval.Failure(tc.err)
		if !errors.Is(f.Kind, tc.kind) || f.Code != tc.code || f.Message == "" {
			t.Errorf("Failure(%v) = %v/%s %q, want %v/%s", tc.err, f.Kind, f.Code, f.Message, tc.kind, tc.code)
		}
	}
	if got := approval.Failure(fmt.Errorf("%w: empty", ca.ErrBadKey)).Message; got != "malformed public key: empty" {
		t.Errorf("bad key message = %q, want the ca error without its prefix", got)
	}
}

// TestIssueCertificateRecordsRefusals: a refused issuance is a
// certificate.refused event with the code and reason the caller is told; an
// issued one is none.
func TestIssueCertificateRecordsRefusals(t *testing.T) {
	e := newEnv(t, nil)
	a := e.authority(t)
	r := e.create(t, "alice", "staging", 0)
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newKey(t))))
	if _, err := a.IssueCertificate(t.Context(), "alice", r.ID, key); err != nil {
		t.Fatalf("IssueCertificate: %v", err)
	}
	if evs := e.refusalEvents(t); len(evs) != 0 {
		t.Fatalf("an issued certificate left refusal events: %v", evs)
	}
	for _, tc := range []struct{ login, id, key, code string }{
		{"alice", r.ID, "not a key", "invalid_public_key"},
		{"erin", r.ID, key, "request_not_found"},
	} {
		_, err := a.IssueCertificate(t.Context(), tc.login, tc.id, tc.key)
		if got := approval.Failure(err); got.Code != tc.code {
			t.Fatalf("IssueCertificate(%s) = %v, want code %s", tc.login, err, tc.code)
		}
		evs := e.refusalEvents(t)
		ev := evs[len(evs)-1]
		if ev.Type != ca.EventIssueRefused || ev.Actor != tc.login || ev.RequestID != r.ID ||
			ev.Data["code"] != tc.code || ev.Data["reason"] != approval.Failure(err).Message {
			t.Errorf("refusal event = %+v, want %s's %s with the answer's reason", ev, tc.login, tc.code)
		}
	}
}

// TestCertificateVisibility: the requester and auditors see a certificate;
// to others it does not exist, and they cannot list other users'.
func TestCertificateVisibility(t *testing.T) {
	e := newEnv(t, nil)
	a := e.authority(t)
	r := e.create(t, "alice", "staging", 0)
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newKey(t))))
	c, err := a.IssueCertificate(t.Context(), "alice", r.ID, key)
	if err != nil {
		t.Fatal(err)
	}
	serial := strconv.FormatUint(c.Serial, 10)
	list := func(login, user string) (int, error) {
		n := 0
		err := a.ListCertificates(t.Context(), login, ca.CertFilter{User: user}, func(*ca.Certificate) error { n++; return nil })
		return n, err
	}
	for _, tc := range []struct {
		login    string
		get      string // error code, "" for seen
		all, own int    // listed without a filter; with ?user=alice ("" code: allowed)
		ownCode  string
	}{
		{"alice", "", 1, 1, ""},
		{"carol", "", 1, 1, ""},
		{"erin", "not_found", 0, 0, approval.CodeNotAnAuditor},
		{"bob", "not_found", 0, 0, approval.CodeNotAnAuditor},
	} {
		_, err := a.GetCertificate(t.Context(), tc.login, serial)
		if tc.get == "" {
			checkErr(t, err, nil, "")
		} else {
			checkErr(t, err, approval.ErrNotFound, tc.get)
		}
		if n, err := list(tc.login, ""); err != nil || n != tc.all {
			t.Errorf("%s lists %d certificates (%v), want %d", tc.login, n, err, tc.all)
		}
		n, err := list(tc.login, "alice")
		if tc.ownCode != "" {
			checkErr(t, err, approval.ErrForbidden, tc.ownCode)
		} else if err != nil || n != tc.own {
			t.Errorf("%s lists %d of alice's certificates (%v), want %d", tc.login, n, err, tc.own)
		}
	}
	_, err = a.GetCertificate(t.Context(), "alice", "x1")
	checkErr(t, err, approval.ErrInvalid, approval.CodeInvalidInput)
}

// TestCAKeysOnce: a trusted key that is also the signer's is listed once,
// and the KRL lists revoked serials under each key once.
func TestCAKeysOnce(t *testing.T) {
	e := newEnv(t, nil)
	signer, err := ca.LoadOrCreateFileSigner(filepath.Join(t.TempDir(), "ca_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	own, err := signer.PublicKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	other := newKey(t)
	a := approval.NewAuthority(e.svc, approval.WithLedger(e.db), approval.WithSigner(signer, other, own[0], other))
	keys, err := a.CAKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || ca.Fingerprint(keys[0]) != ca.Fingerprint(own[0]) || ca.Fingerprint(keys[1]) != ca.Fingerprint(other) {
		t.Errorf("CAKeys = %d keys, want the signer's then the other trusted one, each once", len(keys))
	}
}

// TestRevokeAuthorization: who may revoke what, and the refusals' codes.
// In an order, serial "this" and request "this" name the certificate and
// request of the test.
func TestRevokeAuthorization(t *testing.T) {
	for _, tc := range []struct {
		name  string
		login string
		order approval.RevokeOrder
		kind  error
		code  string
	}{
		{"owner by serial", "alice", approval.RevokeOrder{Serial: "this", Reason: "x"}, nil, ""},
		{"approver by request", "bob", approval.RevokeOrder{RequestID: "this", Reason: "x"}, nil, ""},
		{"other by serial", "erin", approval.RevokeOrder{Serial: "this", Reason: "x"}, approval.ErrForbidden, "not_allowed_to_revoke"},
		{"other by request", "erin", approval.RevokeOrder{RequestID: "this", Reason: "x"}, approval.ErrNotFound, "request_not_found"},
		{"approver by user", "bob", approval.RevokeOrder{User: "alice", Reason: "x"}, approval.ErrForbidden, "not_allowed_to_revoke"},
		{"unknown serial", "alice", approval.RevokeOrder{Serial: "999", Reason: "x"}, approval.ErrNotFound, "unknown_certificate"},
		{"two targets", "alice", approval.RevokeOrder{Serial: "this", RequestID: "this", Reason: "x"}, approval.ErrInvalid, approval.CodeInvalidInput},
		{"no reason", "alice", approval.RevokeOrder{Serial: "this"}, approval.ErrInvalid, approval.CodeInvalidInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			a := e.authority(t)
			r := e.create(t, "alice", "db-one", time.Hour)
			e.review(t, "bob", r.ID, ca.ReviewApprove)
			c, err := a.IssueCertificate(t.Context(), "alice", r.ID, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newKey(t)))))
			if err != nil {
				t.Fatal(err)
			}
			o := tc.order
			if o.Serial == "this" {
				o.Serial = strconv.FormatUint(c.Serial, 10)
			}
			if o.RequestID == "this" {
				o.RequestID = r.ID
			}
			res, err := a.Revoke(t.Context(), tc.login, o)
			checkErr(t, err, tc.kind, tc.code)
			if tc.kind == nil && (len(res.Serials) != 1 || res.Serials[0] != c.Serial) {
				t.Errorf("revoked %v, want [%d]", res.Serials, c.Serial)
			}
		})
	}
}

func newKey(t *testing.T) ssh.PublicKey {
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
