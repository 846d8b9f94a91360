package ca_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
)

func benchGrant(now time.Time) ca.Grant {
	return ca.Grant{
		RequestID: "r-aaaaaaaaaaaaaaaa", User: "alice", Group: "prod-db", Approvers: []string{"bob", "dave"},
		Ends: now.Add(time.Hour),
		Profile: ca.Profile{Principals: []string{"prod-db"}, CertTTL: 5 * time.Minute,
			Extensions: []string{"permit-pty", "permit-port-forwarding"}, SourceAddress: []string{"10.0.0.0/8"}},
	}
}

func benchKey(b *testing.B) ssh.PublicKey {
	b.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		b.Fatal(err)
	}
	return sp
}

func benchSigner(b *testing.B) *ca.FileSigner {
	b.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	fs, err := ca.NewFileSigner(s)
	if err != nil {
		b.Fatal(err)
	}
	return fs
}

// BenchmarkTemplate is the profile builder: grant + subject key to an
// unsigned certificate.
func BenchmarkTemplate(b *testing.B) {
	now := time.Now()
	g, key := benchGrant(now), benchKey(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.Template(g, key, now, ca.DefaultSkew, rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify checks a signed certificate against what was asked (the
// signature check dominates).
func BenchmarkVerify(b *testing.B) {
	now := time.Now()
	g, key, signer := benchGrant(now), benchKey(b), benchSigner(b)
	tmpl, err := ca.Template(g, key, now, ca.DefaultSkew, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	asked := *tmpl
	cert, err := signer.Sign(context.Background(), tmpl)
	if err != nil {
		b.Fatal(err)
	}
	cas, _ := signer.PublicKeys(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		if err := ca.Verify(cert, &asked, cas, now); err != nil {
			b.Fatal(err)
		}
	}
}

type nopLedger struct{}

func (nopLedger) RecordCertificate(context.Context, *ca.Certificate) error { return nil }

// BenchmarkIssueNoLedger is the issuance pipeline without the ledger:
// check key, build, sign with a file key, verify, make the record.
func BenchmarkIssueNoLedger(b *testing.B) {
	now := time.Now()
	g, key := benchGrant(now), benchKey(b)
	iss := ca.NewIssuer(benchSigner(b), nopLedger{})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := iss.Issue(context.Background(), g, key); err != nil {
			b.Fatal(err)
		}
	}
}
