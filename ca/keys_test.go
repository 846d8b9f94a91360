package ca_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// RSA key generation is slow under -race; each size is made once.
var (
	rsaOnce sync.Map // bits -> func() ssh.PublicKey
)

func rsaKey(t testing.TB, bits int) ssh.PublicKey {
	t.Helper()
	f, _ := rsaOnce.LoadOrStore(bits, sync.OnceValues(func() (ssh.PublicKey, error) {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, err
		}
		return ssh.NewPublicKey(&k.PublicKey)
	}))
	k, err := f.(func() (ssh.PublicKey, error))()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecdsaKey(t testing.TB, c elliptic.Curve) ssh.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// wireKey builds a public key from its SSH wire encoding, the way a client
// would send a key this process cannot generate (FIDO sk- keys need a
// security key; DSA is gone from crypto libraries).
func wireKey(t testing.TB, fields any) ssh.PublicKey {
	t.Helper()
	k, err := ssh.ParsePublicKey(ssh.Marshal(fields))
	if err != nil {
		t.Fatalf("parsing wire key: %v", err)
	}
	return k
}

func skEd25519Key(t testing.TB) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return wireKey(t, struct {
		Name, Key, App string
	}{ssh.KeyAlgoSKED25519, string(pub), "ssh:"})
}

func skECDSAKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	point, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return wireKey(t, struct {
		Name, Curve, Key, App string
	}{ssh.KeyAlgoSKECDSA256, "nistp256", string(point), "ssh:"})
}

// dsaKey is a syntactically valid 1024-bit ssh-dss key (the parser checks
// sizes, not primality).
func dsaKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	one := big.NewInt(1)
	p := new(big.Int).Add(new(big.Int).Lsh(one, 1023), one)
	q := new(big.Int).Add(new(big.Int).Lsh(one, 159), one)
	name := ssh.InsecureKeyAlgoDSA //nolint:staticcheck // a DSA key is what this test must refuse
	return wireKey(t, struct {
		Name       string
		P, Q, G, Y *big.Int
	}{name, p, q, big.NewInt(2), big.NewInt(3)})
}

func authorizedLine(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func TestCheckSubjectKeyAccepts(t *testing.T) {
	tests := []struct {
		name string
		key  func(testing.TB) ssh.PublicKey
	}{
		{"ed25519", newEd25519},
		{"ecdsa P-256", func(t testing.TB) ssh.PublicKey { return ecdsaKey(t, elliptic.P256()) }},
		{"ecdsa P-384", func(t testing.TB) ssh.PublicKey { return ecdsaKey(t, elliptic.P384()) }},
		{"ecdsa P-521", func(t testing.TB) ssh.PublicKey { return ecdsaKey(t, elliptic.P521()) }},
		{"rsa 3072", func(t testing.TB) ssh.PublicKey { return rsaKey(t, 3072) }},
		{"rsa 4096", func(t testing.TB) ssh.PublicKey { return rsaKey(t, 4096) }},
		{"sk-ssh-ed25519", skEd25519Key},
		{"sk-ecdsa-sha2-nistp256", skECDSAKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := tt.key(t)
			if err := ca.CheckSubjectKey(k); err != nil {
				t.Errorf("CheckSubjectKey(%s) = %v, want nil", k.Type(), err)
			}
			line := authorizedLine(k) + " alice@laptop"
			got, err := ca.ParseSubjectKey(line)
			if err != nil {
				t.Fatalf("ParseSubjectKey(%q) = %v, want nil", line, err)
			}
			if !bytes.Equal(got.Marshal(), k.Marshal()) {
				t.Errorf("ParseSubjectKey returned a different key")
			}
			// Surrounding whitespace (a trailing newline from a file) is fine.
			if _, err := ca.ParseSubjectKey("  " + line + "\n"); err != nil {
				t.Errorf("ParseSubjectKey with surrounding whitespace = %v, want nil", err)
			}
		})
	}
}

func TestCheckSubjectKeyRefuses(t *testing.T) {
	cert := &ssh.Certificate{Key: newEd25519(t), CertType: ssh.UserCert, ValidPrincipals: []string{"x"}, ValidBefore: ssh.CertTimeInfinity}
	signer, err := ca.LoadOrCreateFileSigner(filepath.Join(t.TempDir(), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := signer.Sign(t.Context(), cert)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  ssh.PublicKey
		want error
	}{
		{"rsa 2048", rsaKey(t, 2048), ca.ErrKeyType},
		{"rsa 1024", rsaKey(t, 1024), ca.ErrKeyType},
		{"dsa", dsaKey(t), ca.ErrKeyType},
		{"certificate", signed, ca.ErrKeyType},
		{"nil", nil, ca.ErrBadKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ca.CheckSubjectKey(tt.key); !errors.Is(err, tt.want) {
				t.Errorf("CheckSubjectKey = %v, want an error wrapping %v", err, tt.want)
			}
			if tt.key == nil {
				return
			}
			line := authorizedLine(tt.key)
			if k, err := ca.ParseSubjectKey(line); !errors.Is(err, tt.want) {
				t.Errorf("ParseSubjectKey(%.40q...) = %v, %v; want an error wrapping %v", line, k, err, tt.want)
			}
		})
	}
}

func TestParseSubjectKeyRefuses(t *testing.T) {
	good := authorizedLine(newEd25519(t))
	other := authorizedLine(newEd25519(t))
	fields := strings.Fields(good)
	tests := []struct {
		name string
		line string
		want error
	}{
		{"empty", "", ca.ErrBadKey},
		{"blank", " \t\n", ca.ErrBadKey},
		{"garbage", "not a key at all", ca.ErrBadKey},
		{"bad base64", "ssh-ed25519 !!!!notbase64!!!!", ca.ErrBadKey},
		{"type without key", "ssh-ed25519", ca.ErrBadKey},
		{"type does not match blob", "ssh-rsa " + fields[1], ca.ErrBadKey},
		{"truncated blob", fields[0] + " " + fields[1][:20], ca.ErrBadKey},
		{"unknown type", "ssh-foo AAAAB3NzaC1mb28AAAAA", ca.ErrBadKey},
		{"options", `command="/bin/sh" ` + good, ca.ErrBadKey},
		{"restrict option", "restrict " + good, ca.ErrBadKey},
		{"two keys on two lines", good + "\n" + other, ca.ErrBadKey},
		{"two keys with CR", good + "\r" + other, ca.ErrBadKey},
		{"NUL after key", good + "\x00", ca.ErrBadKey},
		{"oversize", good + " " + strings.Repeat("x", 16<<10), ca.ErrBadKey},
		{"private key", "-----BEGIN OPENSSH PRIVATE KEY-----", ca.ErrBadKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ca.ParseSubjectKey(tt.line)
			if !errors.Is(err, tt.want) {
				t.Errorf("ParseSubjectKey = %v, %v; want an error wrapping %v", k, err, tt.want)
			}
			if k != nil {
				t.Errorf("ParseSubjectKey returned a key alongside error %v", err)
			}
		})
	}
}

func TestParseSubjectKeyLongCommentWithinLimit(t *testing.T) {
	good := authorizedLine(newEd25519(t))
	line := good + " " + strings.Repeat("c", 15<<10)
	if _, err := ca.ParseSubjectKey(line); err != nil {
		t.Errorf("ParseSubjectKey of a %d-byte line = %v, want nil (limit is 16 KiB)", len(line), err)
	}
}

// TestFingerprintMatchesSSHKeygen checks the fingerprint the ledger stores
// against the one OpenSSH prints, which is what operators grep logs for.
func TestFingerprintMatchesSSHKeygen(t *testing.T) {
	keygen := testenv.RequireBinary(t, "ssh-keygen") // a failure, not a skip, under CI=true
	k := newEd25519(t)
	path := filepath.Join(t.TempDir(), "k.pub")
	if err := os.WriteFile(path, ssh.MarshalAuthorizedKey(k), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(keygen, "-l", "-E", "sha256", "-f", path).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		t.Fatalf("ssh-keygen -l printed %q", out)
	}
	if got, want := ca.Fingerprint(k), f[1]; got != want {
		t.Errorf("Fingerprint = %s, want %s (ssh-keygen)", got, want)
	}
}
