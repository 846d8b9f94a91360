package approval

import (
	"context"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// Authority is the certificate side of the use cases: issuing a
// certificate under a grant, revoking, the KRL, and who sees which
// certificates and events. It decides with the Service's rules and clock,
// signs through a ca.Issuer and reads the ledger; the HTTP layer calls one
// of its methods per endpoint and only translates.
type Authority struct {
	svc     *Service
	issuer  *ca.Issuer
	certs   CertificateReader
	audit   AuditReader
	revoker Revoker
	signer  ca.Signer
	trusted []ssh.PublicKey
}

// CertificateReader reads issued certificates from the ledger.
type CertificateReader interface {
	GetCertificate(ctx context.Context, serial uint64) (*ca.Certificate, error)
	ListCertificates(ctx context.Context, f ca.CertFilter, fn func(*ca.Certificate) error) error
}

// AuditReader reads the event log and what is computed from it.
type AuditReader interface {
	ListEvents(ctx context.Context, f ca.EventFilter, fn func(*ca.Event) error) error
	Verify(ctx context.Context) (ca.VerifyResult, error)
	Report(ctx context.Context, since, now time.Time) (*ca.Report, error)
	BreakGlassCounts(ctx context.Context, now time.Time) (map[string]ca.BreakGlassCount, error)
}

// Revoker records revocations and lists the revoked serials a KRL holds.
type Revoker interface {
	Revoke(ctx context.Context, spec ca.RevokeSpec, actor, reason string, now time.Time) (*ca.Revocation, error)
	RevokedSerials(ctx context.Context, notAfter time.Time) (map[string][]uint64, uint64, error)
}

// Ledger is the whole ledger an Authority reads and writes, and what the
// server's health and metrics endpoints ask of it (store.Health): the
// server holds the ledger as this, so it needs no import of store.
type Ledger interface {
	CertificateReader
	AuditReader
	Revoker
	store.Health
}

// ChainError is the error of a Verify that found a broken row
// (store.ChainError), named here so that the HTTP layer needs no import of
// store to report the row.
type ChainError = store.ChainError

// AuthorityOption configures an Authority.
type AuthorityOption func(*Authority)

// WithIssuer sets the issuance pipeline IssueCertificate signs and records
// through.
func WithIssuer(i *ca.Issuer) AuthorityOption { return func(a *Authority) { a.issuer = i } }

// WithLedger sets the ledger of certificates, events and revocations.
func WithLedger(l Ledger) AuthorityOption {
	return func(a *Authority) { a.certs, a.audit, a.revoker = l, l, l }
}

// WithSigner sets the CA signer whose public keys hosts trust, and extra
// keys they should keep trusting (a previous key during rotation): together
// the CA key list of CAKeys and the KRL.
func WithSigner(s ca.Signer, trusted ...ssh.PublicKey) AuthorityOption {
	return func(a *Authority) { a.signer, a.trusted = s, trusted }
}

// NewAuthority returns the certificate use cases over svc. Each use case
// needs the dependencies its doc names (WithIssuer, WithLedger, WithSigner).
func NewAuthority(svc *Service, opts ...AuthorityOption) *Authority {
	a := &Authority{svc: svc}
	for _, o := range opts {
		o(a)
	}
	return a
}

// now is the Service's clock.
func (a *Authority) now() time.Time { return a.svc.now() }

// auditorOrOwn scopes a listing: auditors may list anyone's, others only
// their own. asked is the user the caller filtered on ("" for none); a
// non-auditor asking for someone else is refused with refusal. narrow
// reports that the listing must be limited to login.
func (a *Authority) auditorOrOwn(ctx context.Context, login, asked, refusal string) (narrow bool, err error) {
	auditor, err := a.svc.IsAuditor(ctx, login)
	if err != nil || auditor {
		return false, err
	}
	if asked != "" && asked != login {
		return false, newErr(ErrForbidden, CodeNotAnAuditor, "%s", refusal)
	}
	return true, nil
}

// requireAuditor refuses login unless it is a member of an auditor team.
func (a *Authority) requireAuditor(ctx context.Context, login string) error {
	ok, err := a.svc.IsAuditor(ctx, login)
	if err != nil {
		return err
	}
	if !ok {
		return newErr(ErrForbidden, CodeNotAnAuditor, "%s is not a member of an auditor team", login)
	}
	return nil
}
