package ca_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// memLedger is an in-memory ca.Ledger that can be told to fail.
type memLedger struct {
	mu    sync.Mutex
	certs []ca.Certificate
	err   error
	// ctxErr is the error of the context RecordCertificate was called with.
	ctxErr error
}

func (l *memLedger) RecordCertificate(ctx context.Context, c *ca.Certificate) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ctxErr = ctx.Err()
	if l.err != nil {
		return l.err
	}
	l.certs = append(l.certs, *c)
	return nil
}

func (l *memLedger) recorded() []ca.Certificate {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.certs)
}

// tamperSigner is a ca.Signer that changes the template before handing it
// to the real file signer, or signs with a key it does not publish: a
// misconfigured or compromised signer.
type tamperSigner struct {
	real     *ca.FileSigner
	signWith *ca.FileSigner // when set, signs with this key instead
	tamper   func(*ssh.Certificate)
	after    func(*ssh.Certificate) // changes the signed certificate
	err      error
	keysErr  error
	calls    int
}

func (s *tamperSigner) Sign(ctx context.Context, tmpl *ssh.Certificate) (*ssh.Certificate, error) {
	s.calls++
	if s.err != nil {
		return nil, s.err
	}
	if s.tamper != nil {
		s.tamper(tmpl)
	}
	signer := s.real
	if s.signWith != nil {
		signer = s.signWith
	}
	c, err := signer.Sign(ctx, tmpl)
	if err != nil {
		return nil, err
	}
	if s.after != nil {
		s.after(c)
	}
	return c, nil
}

func (s *tamperSigner) PublicKeys(ctx context.Context) ([]ssh.PublicKey, error) {
	if s.keysErr != nil {
		return nil, s.keysErr
	}
	return s.real.PublicKeys(ctx)
}

func newFileSigner(t testing.TB) *ca.FileSigner {
	t.Helper()
	s, err := ca.LoadOrCreateFileSigner(filepath.Join(t.TempDir(), "ca_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestIssue(t *testing.T) {
	signer := newFileSigner(t)
	ledger := &memLedger{}
	iss := ca.NewIssuer(signer, ledger, ca.WithClock(fixedClock(t0)))
	g := testGrant()
	g.Profile.SourceAddress = []string{"10.0.0.0/8"}
	subject := newEd25519(t)

	rec, cert, err := iss.Issue(t.Context(), g, subject)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}

	got := ledger.recorded()
	if len(got) != 1 {
		t.Fatalf("ledger holds %d certificates after Issue, want 1", len(got))
	}
	if got[0].Serial != cert.Serial || got[0].Certificate != rec.Certificate {
		t.Errorf("ledger recorded serial %d, returned %d: the returned certificate is not the recorded one", got[0].Serial, cert.Serial)
	}

	cas, _ := signer.PublicKeys(t.Context())
	wantKeyID, _ := ca.KeyID("alice", "prod-db", reqID, []string{"bob", "dave"})
	checks := []struct {
		field     string
		got, want any
	}{
		{"Serial", rec.Serial, cert.Serial},
		{"KeyID", rec.KeyID, wantKeyID},
		{"cert KeyId", cert.KeyId, wantKeyID},
		{"HostGroup", rec.HostGroup, "prod-db"},
		{"Principals", strings.Join(rec.Principals, ","), "prod-db,dba"},
		{"cert principals", strings.Join(cert.ValidPrincipals, ","), "prod-db,dba"},
		{"ValidAfter", rec.ValidAfter, t0.Add(-ca.DefaultSkew)},
		{"ValidBefore", rec.ValidBefore, t0.Add(5 * time.Minute)},
		{"Requester", rec.Requester, "alice"},
		{"RequestID", rec.RequestID, reqID},
		{"Approvers", strings.Join(rec.Approvers, ","), "bob,dave"},
		{"Fingerprint", rec.Fingerprint, ssh.FingerprintSHA256(subject)},
		{"CAFingerprint", rec.CAFingerprint, ssh.FingerprintSHA256(cas[0])},
		{"IssuedAt", rec.IssuedAt, t0},
		{"source-address", cert.CriticalOptions["source-address"], "10.0.0.0/8"},
		{"critical options", len(cert.CriticalOptions), 1},
		{"extensions", len(cert.Extensions), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
		}
	}

	// The recorded authorized_keys form is the returned certificate, and it
	// verifies against the CA for the group's principal at t0.
	parsed, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rec.Certificate))
	if err != nil {
		t.Fatalf("recorded certificate does not parse: %v", err)
	}
	pc, ok := parsed.(*ssh.Certificate)
	if !ok || !bytes.Equal(pc.Marshal(), cert.Marshal()) {
		t.Fatalf("recorded certificate differs from the returned one")
	}
	checker := ssh.CertChecker{
		IsUserAuthority:          func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), cas[0].Marshal()) },
		Clock:                    fixedClock(t0),
		SupportedCriticalOptions: []string{"source-address"},
	}
	if err := checker.CheckCert("prod-db", pc); err != nil {
		t.Errorf("certificate does not verify for prod-db: %v", err)
	}
	if err := checker.CheckCert("root", pc); err == nil {
		t.Errorf("certificate verifies for root, want only the group's principals")
	}
}

// TestIssueWithSSHKeygen reads an issued certificate back with the real
// ssh-keygen, which is what sshd will parse.
func TestIssueWithSSHKeygen(t *testing.T) {
	keygen := testenv.RequireBinary(t, "ssh-keygen") // a failure, not a skip, under CI=true
	iss := ca.NewIssuer(newFileSigner(t), &memLedger{}, ca.WithClock(fixedClock(t0)))
	rec, _, err := iss.Issue(t.Context(), testGrant(), newEd25519(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id-cert.pub")
	if err := os.WriteFile(path, []byte(rec.Certificate+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(keygen, "-L", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -L: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Type: ssh-ed25519-cert-v01@openssh.com user certificate",
		`Key ID: "` + rec.KeyID + `"`,
		"prod-db\n",
		"dba\n",
		"permit-pty",
		"Critical Options: (none)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ssh-keygen -L output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "permit-port-forwarding") {
		t.Errorf("certificate carries an extension the policy does not grant:\n%s", out)
	}
}

func TestIssueRecordsEvenIfClientLeaves(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	ledger := &memLedger{}
	// The client goes away while the signer works.
	signer := &tamperSigner{real: newFileSigner(t), after: func(*ssh.Certificate) { cancel() }}
	iss := ca.NewIssuer(signer, ledger, ca.WithClock(fixedClock(t0)))
	if _, _, err := iss.Issue(ctx, testGrant(), newEd25519(t)); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if ledger.ctxErr != nil {
		t.Errorf("ledger write ran with a context ended by the client (%v); a signed certificate must always be recorded", ledger.ctxErr)
	}
	if n := len(ledger.recorded()); n != 1 {
		t.Errorf("ledger holds %d certificates, want 1", n)
	}
}

func TestIssueLedgerFailure(t *testing.T) {
	dbErr := errors.New("disk I/O error")
	ledger := &memLedger{err: dbErr}
	iss := ca.NewIssuer(newFileSigner(t), ledger, ca.WithClock(fixedClock(t0)))
	rec, cert, err := iss.Issue(t.Context(), testGrant(), newEd25519(t))
	if rec != nil || cert != nil {
		t.Errorf("Issue returned a certificate although the ledger refused it")
	}
	if !errors.Is(err, ca.ErrLedgerUnavailable) {
		t.Errorf("Issue error = %v, want it to wrap ca.ErrLedgerUnavailable", err)
	}
	if !errors.Is(err, dbErr) {
		t.Errorf("Issue error = %v, want it to keep the ledger's error", err)
	}
}

func TestIssueRefusesSignerMismatch(t *testing.T) {
	rogue := newFileSigner(t)
	tests := []struct {
		name   string
		tamper func(*ssh.Certificate)
		after  func(*ssh.Certificate)
		rogue  bool
	}{
		{name: "extra principal", tamper: func(c *ssh.Certificate) { c.ValidPrincipals = append(c.ValidPrincipals, "root") }},
		{name: "principal replaced in place", tamper: func(c *ssh.Certificate) { c.ValidPrincipals[0] = "root" }},
		{name: "principal dropped", tamper: func(c *ssh.Certificate) { c.ValidPrincipals = c.ValidPrincipals[:1] }},
		{name: "no principals (valid for every user)", tamper: func(c *ssh.Certificate) { c.ValidPrincipals = nil }},
		{name: "longer validity", tamper: func(c *ssh.Certificate) { c.ValidBefore += 3600 }},
		{name: "validity forever", tamper: func(c *ssh.Certificate) { c.ValidBefore = ssh.CertTimeInfinity }},
		{name: "backdated", tamper: func(c *ssh.Certificate) { c.ValidAfter -= 3600 }},
		{name: "different subject key", tamper: func(c *ssh.Certificate) { c.Key = newEd25519(t) }},
		{name: "changed KeyId", tamper: func(c *ssh.Certificate) { c.KeyId = strings.Replace(c.KeyId, "by=bob,dave", "by=mallory", 1) }},
		{name: "host certificate", tamper: func(c *ssh.Certificate) { c.CertType = ssh.HostCert }},
		{name: "extra extension", tamper: func(c *ssh.Certificate) {
			c.Extensions = map[string]string{"permit-pty": "", "permit-port-forwarding": ""}
		}},
		{name: "extension added in place", tamper: func(c *ssh.Certificate) { c.Extensions["permit-agent-forwarding"] = "" }},
		{name: "extensions dropped", tamper: func(c *ssh.Certificate) { c.Extensions = nil }},
		{name: "force-command added", tamper: func(c *ssh.Certificate) {
			c.CriticalOptions = map[string]string{"force-command": "/bin/true"}
		}},
		{name: "critical option added in place", tamper: func(c *ssh.Certificate) { c.CriticalOptions["source-address"] = "0.0.0.0/0" }},
		{name: "serial zero", tamper: func(c *ssh.Certificate) { c.Serial = 0 }},
		{name: "unknown CA", rogue: true},
		{name: "signature stripped", after: func(c *ssh.Certificate) { c.Signature = nil }},
		{name: "principal added after signing", after: func(c *ssh.Certificate) { c.ValidPrincipals = append(c.ValidPrincipals, "root") }},
		{name: "signed content changed", after: func(c *ssh.Certificate) { c.Nonce = []byte("other") }},
	}
	for _, tt := range tests {
		for _, inProcess := range []bool{false, true} {
			name := tt.name
			if inProcess {
				// An in-process signer's output is compared field by field but
				// its signature is not checked again: content changed after a
				// valid signature is the one case only the signature shows.
				if tt.name == "signed content changed" {
					continue
				}
				name += " (in-process signer)"
			}
			t.Run(name, func(t *testing.T) {
				ts := &tamperSigner{real: newFileSigner(t), tamper: tt.tamper, after: tt.after}
				if tt.rogue {
					ts.signWith = rogue
				}
				var opts []ca.Option
				if inProcess {
					opts = append(opts, ca.WithInProcessSigner())
				}
				issueRefused(t, ts, opts...)
			})
		}
	}
}

func issueRefused(t *testing.T, signer ca.Signer, opts ...ca.Option) {
	t.Helper()
	ledger := &memLedger{}
	iss := ca.NewIssuer(signer, ledger, append(opts, ca.WithClock(fixedClock(t0)))...)
	rec, cert, err := iss.Issue(t.Context(), testGrant(), newEd25519(t))
	if !errors.Is(err, ca.ErrSignerMismatch) {
		t.Errorf("Issue error = %v, want it to wrap ca.ErrSignerMismatch", err)
	}
	if rec != nil || cert != nil {
		t.Errorf("Issue handed out a certificate the signer tampered with")
	}
	if n := len(ledger.recorded()); n != 0 {
		t.Errorf("ledger recorded %d certificates, want 0", n)
	}
}

// claimsInProcess is a tampering signer with the method that, before
// ca.WithInProcessSigner, let a signer turn off the signature check by
// itself. It must have no effect now: only the issuer's constructor decides.
type claimsInProcess struct{ *tamperSigner }

func (claimsInProcess) SignsInProcess() {}

func TestIssueSignerCannotSkipVerification(t *testing.T) {
	ts := &tamperSigner{real: newFileSigner(t), after: func(c *ssh.Certificate) { c.Nonce = []byte("other") }}
	issueRefused(t, claimsInProcess{ts})
}

// WithMismatchExplainer puts the signer's explanation in front of a
// refusal, and only of a refusal of what the signer returned.
func TestIssueMismatchExplainer(t *testing.T) {
	explain := ca.WithMismatchExplainer(func() string { return "backend X at Y (repair: Z)" })

	ts := &tamperSigner{real: newFileSigner(t), tamper: func(c *ssh.Certificate) { c.KeyId = "other" }}
	iss := ca.NewIssuer(ts, &memLedger{}, ca.WithClock(fixedClock(t0)), explain)
	_, _, err := iss.Issue(t.Context(), testGrant(), newEd25519(t))
	if !errors.Is(err, ca.ErrSignerMismatch) || !strings.HasPrefix(err.Error(), "backend X at Y (repair: Z): ca: ") {
		t.Errorf("Issue error = %v, want ErrSignerMismatch with the explanation in front", err)
	}

	down := &tamperSigner{real: newFileSigner(t), err: errors.New("connection refused")}
	iss = ca.NewIssuer(down, &memLedger{}, ca.WithClock(fixedClock(t0)), explain)
	_, _, err = iss.Issue(t.Context(), testGrant(), newEd25519(t))
	if !errors.Is(err, ca.ErrSignerUnavailable) || strings.Contains(err.Error(), "backend X") {
		t.Errorf("Issue error = %v, want ErrSignerUnavailable without the mismatch explanation", err)
	}

	// Without the option, the refusal is ca's own message.
	iss = ca.NewIssuer(ts, &memLedger{}, ca.WithClock(fixedClock(t0)))
	if _, _, err = iss.Issue(t.Context(), testGrant(), newEd25519(t)); !errors.Is(err, ca.ErrSignerMismatch) || strings.Contains(err.Error(), "backend X") {
		t.Errorf("Issue error = %v, want ErrSignerMismatch alone", err)
	}
}

func TestIssueAcceptsSignerChoices(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(*ssh.Certificate)
		check  func(*testing.T, *ca.Certificate, *ssh.Certificate)
	}{
		{
			name:   "signer assigns its own serial",
			tamper: func(c *ssh.Certificate) { c.Serial = 1<<63 + 42 },
			check: func(t *testing.T, rec *ca.Certificate, c *ssh.Certificate) {
				if rec.Serial != 1<<63+42 || c.Serial != rec.Serial {
					t.Errorf("recorded serial %d, certificate %d, want the signer's %d", rec.Serial, c.Serial, uint64(1<<63+42))
				}
			},
		},
		{
			name:   "signer shortens validity",
			tamper: func(c *ssh.Certificate) { c.ValidBefore -= 60 },
			check: func(t *testing.T, rec *ca.Certificate, _ *ssh.Certificate) {
				if want := t0.Add(4 * time.Minute); !rec.ValidBefore.Equal(want) {
					t.Errorf("recorded ValidBefore %s, want the signed %s", rec.ValidBefore, want)
				}
			},
		},
		{
			name:   "signer rounds by a second",
			tamper: func(c *ssh.Certificate) { c.ValidBefore++; c.ValidAfter++ },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ledger := &memLedger{}
			iss := ca.NewIssuer(&tamperSigner{real: newFileSigner(t), tamper: tt.tamper}, ledger, ca.WithClock(fixedClock(t0)))
			rec, cert, err := iss.Issue(t.Context(), testGrant(), newEd25519(t))
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if tt.check != nil {
				tt.check(t, rec, cert)
			}
			if n := len(ledger.recorded()); n != 1 {
				t.Errorf("ledger recorded %d certificates, want 1", n)
			}
		})
	}
}

func TestIssueSignerUnavailable(t *testing.T) {
	sealed := errors.New("vault is sealed")
	tests := []struct {
		name      string
		signer    *tamperSigner
		want      error
		wantCause error
	}{
		{"sign fails", &tamperSigner{err: sealed}, ca.ErrSignerUnavailable, sealed},
		{"sign reports unavailable", &tamperSigner{err: ca.ErrSignerUnavailable}, ca.ErrSignerUnavailable, nil},
		{"sign reports mismatch", &tamperSigner{err: ca.ErrSignerMismatch}, ca.ErrSignerMismatch, nil},
		{"CA keys unreadable", &tamperSigner{keysErr: sealed}, ca.ErrSignerUnavailable, sealed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.signer.real = newFileSigner(t)
			ledger := &memLedger{}
			iss := ca.NewIssuer(tt.signer, ledger, ca.WithClock(fixedClock(t0)))
			rec, cert, err := iss.Issue(t.Context(), testGrant(), newEd25519(t))
			if !errors.Is(err, tt.want) {
				t.Errorf("Issue error = %v, want it to wrap %v", err, tt.want)
			}
			if tt.wantCause != nil && !errors.Is(err, tt.wantCause) {
				t.Errorf("Issue error = %v, want it to keep the cause %v", err, tt.wantCause)
			}
			if rec != nil || cert != nil || len(ledger.recorded()) != 0 {
				t.Errorf("Issue produced a certificate despite the signer failing")
			}
		})
	}
}

func TestIssueRefusesBeforeSigning(t *testing.T) {
	ended := testGrant()
	ended.Ends = t0.Add(-time.Minute)
	badName := testGrant()
	badName.User = "alice,root"
	tests := []struct {
		name    string
		grant   ca.Grant
		subject ssh.PublicKey
		want    error
	}{
		{"grant ended", ended, newEd25519(t), ca.ErrGrantEnded},
		{"weak subject key", testGrant(), rsaKey(t, 2048), ca.ErrKeyType},
		{"dsa subject key", testGrant(), dsaKey(t), ca.ErrKeyType},
		{"no subject key", testGrant(), nil, ca.ErrBadKey},
		{"injected user name", badName, newEd25519(t), ca.ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer := &tamperSigner{real: newFileSigner(t)}
			ledger := &memLedger{}
			iss := ca.NewIssuer(signer, ledger, ca.WithClock(fixedClock(t0)))
			_, cert, err := iss.Issue(t.Context(), tt.grant, tt.subject)
			if !errors.Is(err, tt.want) {
				t.Errorf("Issue error = %v, want it to wrap %v", err, tt.want)
			}
			if cert != nil {
				t.Errorf("Issue returned a certificate")
			}
			if signer.calls != 0 {
				t.Errorf("signer was called %d times, want 0: policy is checked before signing", signer.calls)
			}
		})
	}
}

func TestIssueSkewAndRand(t *testing.T) {
	iss := ca.NewIssuer(newFileSigner(t), &memLedger{},
		ca.WithClock(fixedClock(t0)), ca.WithSkew(30*time.Second),
		ca.WithRand(bytes.NewReader([]byte{0, 0, 0, 0, 0, 0, 0, 0x0e})))
	rec, _, err := iss.Issue(t.Context(), testGrant(), newEd25519(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(-30 * time.Second); !rec.ValidAfter.Equal(want) {
		t.Errorf("ValidAfter = %s, want %s", rec.ValidAfter, want)
	}
	if rec.Serial != 7 {
		t.Errorf("Serial = %d, want 7 (from the injected randomness)", rec.Serial)
	}
}

func TestLoadOrCreateFileSigner(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "ca_ed25519")

	first, err := ca.LoadOrCreateFileSigner(path)
	if err != nil {
		t.Fatalf("creating: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", got)
	}
	dst, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if got := dst.Mode().Perm(); got != 0o700 {
		t.Errorf("key directory mode = %04o, want 0700", got)
	}

	second, err := ca.LoadOrCreateFileSigner(path)
	if err != nil {
		t.Fatalf("reloading: %v", err)
	}
	k1, _ := first.PublicKeys(t.Context())
	k2, _ := second.PublicKeys(t.Context())
	if len(k1) != 1 || len(k2) != 1 || !bytes.Equal(k1[0].Marshal(), k2[0].Marshal()) {
		t.Errorf("second load returned a different CA key: a restart would lock every host out")
	}
	if k1[0].Type() != ssh.KeyAlgoED25519 {
		t.Errorf("generated CA key type = %s, want ed25519", k1[0].Type())
	}

	// A certificate signed before the reload verifies with the reloaded key.
	c, err := second.Sign(t.Context(), &ssh.Certificate{Key: newEd25519(t), Serial: 1, CertType: ssh.UserCert, ValidPrincipals: []string{"x"}, ValidBefore: ssh.CertTimeInfinity})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.SignatureKey.Marshal(), k1[0].Marshal()) {
		t.Errorf("signature key differs from the published CA key")
	}

	tests := []struct {
		name  string
		mode  os.FileMode
		data  []byte
		wants string
	}{
		{"world readable", 0o644, nil, "chmod 600"},
		{"group readable", 0o640, nil, "chmod 600"},
		{"not a key", 0o600, []byte("garbage"), "parsing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "ca")
			data := tt.data
			if data == nil {
				var err error
				if data, err = os.ReadFile(path); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(p, data, tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			s, err := ca.LoadOrCreateFileSigner(p)
			if err == nil {
				t.Fatalf("LoadOrCreateFileSigner = %v, nil; want it refused", s)
			}
			if !strings.Contains(err.Error(), tt.wants) {
				t.Errorf("error = %q, want it to mention %q", err, tt.wants)
			}
			after, _ := os.ReadFile(p)
			if !bytes.Equal(after, data) {
				t.Errorf("refused key file was rewritten")
			}
		})
	}
}

func TestFileSignerRSAUsesSHA512(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := ca.NewFileSigner(s)
	if err != nil {
		t.Fatal(err)
	}
	c, err := fs.Sign(t.Context(), &ssh.Certificate{Key: newEd25519(t), Serial: 1, CertType: ssh.UserCert, ValidPrincipals: []string{"x"}, ValidBefore: ssh.CertTimeInfinity})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Signature.Format; got != ssh.KeyAlgoRSASHA512 {
		t.Errorf("signature format = %s, want %s (ssh-rsa/SHA-1 is refused by current sshd)", got, ssh.KeyAlgoRSASHA512)
	}
}

// TestIssueGrantEndedWhileSigning: a ledger that refuses the record because
// the grant ended meanwhile (a revocation committed between the grant check
// and the write) is a refusal of the request, not an outage.
func TestIssueGrantEndedWhileSigning(t *testing.T) {
	ledger := &memLedger{err: fmt.Errorf("store: %w: revoked meanwhile", ca.ErrGrantEnded)}
	iss := ca.NewIssuer(newFileSigner(t), ledger, ca.WithClock(fixedClock(t0)))
	rec, cert, err := iss.Issue(t.Context(), testGrant(), newEd25519(t))
	if rec != nil || cert != nil {
		t.Errorf("Issue returned a certificate although the ledger refused it")
	}
	if !errors.Is(err, ca.ErrGrantEnded) || errors.Is(err, ca.ErrLedgerUnavailable) {
		t.Errorf("Issue error = %v, want ca.ErrGrantEnded and not ca.ErrLedgerUnavailable", err)
	}
}

// dupLedger refuses the first dups serials as taken, as a ledger's unique
// key refuses a serial it holds already.
type dupLedger struct {
	memLedger
	dups    int
	refused []uint64
}

func (l *dupLedger) RecordCertificate(ctx context.Context, c *ca.Certificate) error {
	if len(l.refused) < l.dups {
		l.refused = append(l.refused, c.Serial)
		return fmt.Errorf("%w: serial %d is recorded already", ca.ErrDuplicate, c.Serial)
	}
	return l.memLedger.RecordCertificate(ctx, c)
}

// TestIssueSignsAgainOnSerialCollision: a serial the ledger already holds
// is never handed out; Issue signs again under a new serial, and gives up
// (ledger unavailable) when the ledger refuses every one.
func TestIssueSignsAgainOnSerialCollision(t *testing.T) {
	t.Run("one collision", func(t *testing.T) {
		ledger := &dupLedger{dups: 1}
		iss := ca.NewIssuer(newFileSigner(t), ledger, ca.WithClock(fixedClock(t0)))
		rec, cert, err := iss.Issue(t.Context(), testGrant(), newEd25519(t))
		if err != nil {
			t.Fatalf("Issue: %v", err)
		}
		got := ledger.recorded()
		if len(got) != 1 || got[0].Serial != cert.Serial || rec.Serial != cert.Serial {
			t.Fatalf("recorded %v, returned serial %d: want exactly the returned certificate recorded", got, cert.Serial)
		}
		if len(ledger.refused) != 1 || ledger.refused[0] == cert.Serial {
			t.Errorf("refused serials %v, returned %d: want the second attempt under a new serial", ledger.refused, cert.Serial)
		}
	})
	t.Run("every serial taken", func(t *testing.T) {
		ledger := &dupLedger{dups: 100}
		iss := ca.NewIssuer(newFileSigner(t), ledger, ca.WithClock(fixedClock(t0)))
		rec, cert, err := iss.Issue(t.Context(), testGrant(), newEd25519(t))
		if rec != nil || cert != nil || !errors.Is(err, ca.ErrLedgerUnavailable) {
			t.Fatalf("Issue = %v, %v, %v; want no certificate and ca.ErrLedgerUnavailable", rec, cert, err)
		}
		if len(ledger.refused) != 3 || len(ledger.recorded()) != 0 {
			t.Errorf("attempts %d, recorded %d; want 3 attempts and nothing recorded", len(ledger.refused), len(ledger.recorded()))
		}
	})
}
