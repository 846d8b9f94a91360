package ca_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// TestKRLWithSSHKeygen proves the KRL encoder against the real ssh-keygen:
// revoked serials are reported revoked, others not, per CA key.
func TestKRLWithSSHKeygen(t *testing.T) {
	keygen := testenv.RequireBinary(t, "ssh-keygen") // a failure, not a skip, under CI=true
	dir := t.TempDir()
	caA, err := ca.LoadOrCreateFileSigner(filepath.Join(dir, "ca_a"))
	if err != nil {
		t.Fatal(err)
	}
	caB, err := ca.LoadOrCreateFileSigner(filepath.Join(dir, "ca_b"))
	if err != nil {
		t.Fatal(err)
	}
	keyA, _ := caA.PublicKeys(t.Context())
	keyB, _ := caB.PublicKeys(t.Context())
	krl := ca.MarshalKRL(7, time.Now(), "test", []ca.RevokedSerials{
		{CA: keyA[0], Serials: []uint64{5, 1 << 63, 3, 5}},
		{CA: keyB[0], Serials: []uint64{9}},
	})
	h, err := ca.ParseKRLHeader(krl)
	if err != nil || h.Version != 7 || h.Comment != "test" {
		t.Fatalf("ParseKRLHeader = %+v, %v; want version 7, comment test", h, err)
	}
	krlPath := filepath.Join(dir, "revoked.krl")
	if err := os.WriteFile(krlPath, krl, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		signer  *ca.FileSigner
		serial  uint64
		revoked bool
	}{
		{"A serial 3", caA, 3, true},
		{"A serial 5", caA, 5, true},
		{"A serial 2^63", caA, 1 << 63, true},
		{"A serial 4", caA, 4, false},
		{"A serial 9 (revoked only under B)", caA, 9, false},
		{"B serial 9", caB, 9, true},
		{"B serial 3 (revoked only under A)", caB, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, _, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := ssh.NewPublicKey(raw)
			if err != nil {
				t.Fatal(err)
			}
			cert := &ssh.Certificate{Key: pub, Serial: tt.serial, CertType: ssh.UserCert, KeyId: "k", ValidPrincipals: []string{"p"},
				ValidAfter: 0, ValidBefore: ssh.CertTimeInfinity}
			signed, err := tt.signer.Sign(t.Context(), cert)
			if err != nil {
				t.Fatal(err)
			}
			certPath := filepath.Join(t.TempDir(), "c-cert.pub")
			if err := os.WriteFile(certPath, ssh.MarshalAuthorizedKey(signed), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(keygen, "-Q", "-f", krlPath, certPath).CombinedOutput()
			gotRevoked := strings.Contains(string(out), "REVOKED")
			if gotRevoked != tt.revoked || (err != nil) != tt.revoked {
				t.Errorf("ssh-keygen -Q: revoked=%v (err %v, %q), want revoked=%v", gotRevoked, err, out, tt.revoked)
			}
		})
	}
}

func TestParseKRLHeaderRefusesGarbage(t *testing.T) {
	good := ca.MarshalKRL(1, time.Unix(0, 0), "", nil)
	for name, data := range map[string][]byte{
		"empty":      nil,
		"text":       []byte("this is not a KRL at all, not even close"),
		"truncated":  good[:len(good)-1],
		"bad format": append(append([]byte{}, good[:8]...), append([]byte{0, 0, 0, 2}, good[12:]...)...),
	} {
		if _, err := ca.ParseKRLHeader(data); err == nil {
			t.Errorf("%s: ParseKRLHeader accepted it", name)
		}
	}
	if _, err := ca.ParseKRLHeader(good); err != nil {
		t.Errorf("a valid empty KRL was refused: %v", err)
	}
}
