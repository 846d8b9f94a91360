package ca

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"golang.org/x/crypto/ssh"
)

// Signer signs certificate templates with the CA key. Implementations: the
// file-key signer in this package and the Vault signer in ca/vault.
type Signer interface {
	// Sign signs tmpl and returns the signed certificate. A signer may
	// assign its own serial; the returned certificate is authoritative.
	Sign(ctx context.Context, tmpl *ssh.Certificate) (*ssh.Certificate, error)
	// PublicKeys returns the CA public keys that sign now, current first.
	PublicKeys(ctx context.Context) ([]ssh.PublicKey, error)
}

// Ledger durably records an issued certificate. RecordCertificate returns
// only after the record is committed; an error means it is not.
type Ledger interface {
	RecordCertificate(ctx context.Context, c *Certificate) error
}

// Issuer runs the issuance pipeline: validate the subject key, apply the
// grant's profile, build, sign, verify what the signer returned, record in
// the ledger, and only then hand the certificate out.
type Issuer struct {
	signer Signer
	ledger Ledger
	now    func() time.Time
	rand   io.Reader
	skew   time.Duration
	log    *slog.Logger

	// trustSignature and explain are the two capabilities a signer may
	// have, given to NewIssuer by its caller (WithInProcessSigner,
	// WithMismatchExplainer), never discovered on the signer.
	trustSignature bool
	explain        func() string
}

// Option configures an Issuer.
type Option func(*Issuer)

// WithClock sets the clock. The default (nil) is time.Now.
func WithClock(now func() time.Time) Option { return func(i *Issuer) { i.now = now } }

// WithRand sets the randomness for serials. The default is crypto/rand.
func WithRand(r io.Reader) Option { return func(i *Issuer) { i.rand = r } }

// WithSkew sets how far ValidAfter is backdated. The default is DefaultSkew.
func WithSkew(d time.Duration) Option { return func(i *Issuer) { i.skew = d } }

// WithLogger sets the logger for the one structured record per issuance.
func WithLogger(l *slog.Logger) Option { return func(i *Issuer) { i.log = l } }

// WithInProcessSigner tells the Issuer that its signer signs in this
// process with a key it holds (ca.FileSigner: ssh.Certificate.SignCert).
// What the signer returns is still compared field by field with what was
// asked, and its CA key must still be one of PublicKeys; only the signature
// is not checked again, since the same process just made it. Give it only
// for such a signer: a signer across a network (Vault) must always have
// its signature checked, which is the default.
func WithInProcessSigner() Option { return func(i *Issuer) { i.trustSignature = true } }

// WithMismatchExplainer sets what Issue puts in front of a refusal of what
// the signer returned (ErrSignerMismatch): which backend it is and how to
// repair it (ca/vault.Signer.ExplainMismatch). The default adds nothing.
func WithMismatchExplainer(explain func() string) Option {
	return func(i *Issuer) { i.explain = explain }
}

// NewIssuer returns an Issuer that signs with s and records in l.
func NewIssuer(s Signer, l Ledger, opts ...Option) *Issuer {
	i := &Issuer{signer: s, ledger: l, now: time.Now, rand: rand.Reader, skew: DefaultSkew, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(i)
	}
	if i.now == nil {
		i.now = time.Now
	}
	return i
}

// Issue signs a certificate for subject under grant g. The certificate is in
// the ledger before Issue returns it; on any error no certificate exists
// outside the signer. Errors wrap the sentinels of this package.
func (i *Issuer) Issue(ctx context.Context, g Grant, subject ssh.PublicKey) (*Certificate, *ssh.Certificate, error) {
	if err := CheckSubjectKey(subject); err != nil {
		return nil, nil, err
	}
	now := i.now()
	// A random 64-bit serial that is already in the ledger (the ledger's
	// unique key refuses it) is signed again under a new one: a serial is
	// never issued twice, and a collision costs one more signature, not
	// the caller's certificate. The refused certificate never leaves.
	var rec *Certificate
	var cert *ssh.Certificate
	for attempt := 1; ; attempt++ {
		var err error
		rec, cert, err = i.signAndRecord(ctx, g, subject, now)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrDuplicate) {
			return nil, nil, err
		}
		if attempt == maxSerialAttempts {
			return nil, nil, fmt.Errorf("%w: %d serials in a row were taken: %w", ErrLedgerUnavailable, attempt, err)
		}
		i.log.LogAttrs(ctx, slog.LevelWarn, "serial already in the ledger; signing again under a new one",
			slog.String("request_id", g.RequestID), slog.Int("attempt", attempt))
	}
	i.log.LogAttrs(ctx, slog.LevelInfo, "certificate issued",
		slog.String("serial", fmt.Sprint(rec.Serial)),
		slog.String("key_id", rec.KeyID),
		slog.String("host_group", rec.HostGroup),
		slog.String("requester", rec.Requester),
		slog.String("request_id", rec.RequestID),
		slog.Any("approvers", rec.Approvers),
		slog.String("fingerprint", rec.Fingerprint),
		slog.Time("valid_before", rec.ValidBefore))
	return rec, cert, nil
}

// maxSerialAttempts bounds how often Issue signs again after a serial
// collision (at 2^-64 a draw, a second is already beyond belief; the bound
// keeps a ledger that refuses every serial from looping).
const maxSerialAttempts = 3

// signAndRecord is one attempt of Issue: template, sign, verify, record.
func (i *Issuer) signAndRecord(ctx context.Context, g Grant, subject ssh.PublicKey, now time.Time) (*Certificate, *ssh.Certificate, error) {
	tmpl, err := Template(g, subject, now, i.skew, i.rand)
	if err != nil {
		return nil, nil, err
	}
	// The signer gets a template it may change at will; what was asked is
	// kept in a deep copy, so in-place edits of the principals, extensions
	// or critical options cannot hide from Verify.
	asked := cloneCert(tmpl)
	cert, err := i.signer.Sign(ctx, tmpl)
	if err != nil {
		if errors.Is(err, ErrSignerMismatch) || errors.Is(err, ErrSignerUnavailable) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w: %w", ErrSignerUnavailable, err)
	}
	cas, err := i.signer.PublicKeys(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: reading CA keys: %w", ErrSignerUnavailable, err)
	}
	if err := verify(cert, asked, cas, now, !i.trustSignature); err != nil {
		if i.explain != nil {
			err = fmt.Errorf("%s: %w", i.explain(), err)
		}
		i.log.LogAttrs(ctx, slog.LevelError, "signer returned a certificate that differs from the request",
			slog.String("request_id", g.RequestID), slog.String("error", err.Error()))
		return nil, nil, err
	}
	rec := &Certificate{
		Serial:        cert.Serial,
		KeyID:         cert.KeyId,
		HostGroup:     g.Group,
		Principals:    slices.Clone(cert.ValidPrincipals),
		ValidAfter:    CertTime(cert.ValidAfter),
		ValidBefore:   CertTime(cert.ValidBefore),
		Requester:     g.User,
		RequestID:     g.RequestID,
		Approvers:     slices.Clone(g.Approvers),
		Fingerprint:   Fingerprint(subject),
		CAFingerprint: Fingerprint(cert.SignatureKey),
		Certificate:   string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(cert))),
		IssuedAt:      now.UTC(),
	}
	// The record must land even if the client has gone away: a signed
	// certificate that is not in the ledger must never be possible.
	if err := i.ledger.RecordCertificate(context.WithoutCancel(ctx), rec); err != nil {
		if errors.Is(err, ErrGrantEnded) {
			return nil, nil, err // ended while signing: a refusal, not an outage
		}
		if errors.Is(err, ErrDuplicate) {
			return nil, nil, err // a serial collision: Issue signs again
		}
		return nil, nil, fmt.Errorf("%w: %w", ErrLedgerUnavailable, err)
	}
	return rec, cert, nil
}

// verifyTolerance allows for the signer's clock and rounding (Vault computes
// validity from its own clock, in whole seconds).
const verifyTolerance = 5 * time.Second

// Verify checks that cert is what was asked: a user certificate for the same
// subject key, exactly the asked principals, KeyId, critical options and
// extensions, a validity window inside the asked one, a non-zero serial, and
// a valid signature by one of the CA keys in cas. Anything else wraps
// ErrSignerMismatch.
func Verify(cert, asked *ssh.Certificate, cas []ssh.PublicKey, now time.Time) error {
	return verify(cert, asked, cas, now, true)
}

// verify is Verify, with the signature check optional (see WithInProcessSigner).
func verify(cert, asked *ssh.Certificate, cas []ssh.PublicKey, now time.Time, checkSignature bool) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrSignerMismatch, fmt.Sprintf(format, args...))
	}
	switch {
	case cert == nil:
		return bad("no certificate")
	case cert.CertType != ssh.UserCert:
		return bad("certificate type %d, want user", cert.CertType)
	case !bytes.Equal(cert.Key.Marshal(), asked.Key.Marshal()):
		return bad("subject key differs")
	case !slices.Equal(cert.ValidPrincipals, asked.ValidPrincipals):
		return bad("principals %q, asked %q", cert.ValidPrincipals, asked.ValidPrincipals)
	case cert.KeyId != asked.KeyId:
		return bad("key id %q, asked %q", cert.KeyId, asked.KeyId)
	case cert.Serial == 0:
		return bad("serial 0")
	case !maps.Equal(cert.CriticalOptions, asked.CriticalOptions) && (len(cert.CriticalOptions) > 0 || len(asked.CriticalOptions) > 0):
		return bad("critical options %v, asked %v", cert.CriticalOptions, asked.CriticalOptions)
	case !maps.Equal(cert.Extensions, asked.Extensions) && (len(cert.Extensions) > 0 || len(asked.Extensions) > 0):
		return bad("extensions %v, asked %v", slices.Sorted(maps.Keys(cert.Extensions)), slices.Sorted(maps.Keys(asked.Extensions)))
	}
	tol := uint64(verifyTolerance / time.Second)
	if cert.ValidBefore > asked.ValidBefore+tol {
		return bad("valid before %s, asked at most %s", CertTime(cert.ValidBefore), CertTime(asked.ValidBefore))
	}
	if cert.ValidAfter+tol < asked.ValidAfter {
		return bad("valid after %s, asked not before %s", CertTime(cert.ValidAfter), CertTime(asked.ValidAfter))
	}
	if cert.SignatureKey == nil || cert.Signature == nil {
		return bad("unsigned")
	}
	known := false
	for _, k := range cas {
		if bytes.Equal(k.Marshal(), cert.SignatureKey.Marshal()) {
			known = true
		}
	}
	if !known {
		return bad("signed by unknown CA key %s", Fingerprint(cert.SignatureKey))
	}
	if !checkSignature {
		return nil
	}
	checker := &ssh.CertChecker{
		IsUserAuthority: func(ssh.PublicKey) bool { return true }, // checked above
		Clock:           func() time.Time { return now },
		// The critical options equal the asked ones (checked above); sshd
		// enforces them, this check only verifies the signature and window.
		SupportedCriticalOptions: slices.Collect(maps.Keys(asked.CriticalOptions)),
	}
	if err := checker.CheckCert(asked.ValidPrincipals[0], cert); err != nil {
		return bad("%v", err)
	}
	return nil
}

// cloneCert copies c deeply enough that no later change to c's principals,
// options or extensions shows in the copy.
func cloneCert(c *ssh.Certificate) *ssh.Certificate {
	d := *c
	d.ValidPrincipals = slices.Clone(c.ValidPrincipals)
	d.CriticalOptions = maps.Clone(c.CriticalOptions)
	d.Extensions = maps.Clone(c.Extensions)
	return &d
}
