package sshsig_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/store/sshsig"
)

const namespace = "jit-ssh-test"

var msg = []byte("jit-ssh ledger checkpoint v1\nrow: 7\nhash: abc\nat: 2025-06-02T10:00:00Z\n")

func TestSignVerify(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	armored, err := sshsig.Sign(s, namespace, msg)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(armored, "\n"), "\n")
	if lines[0] != "-----BEGIN SSH SIGNATURE-----" || lines[len(lines)-1] != "-----END SSH SIGNATURE-----" {
		t.Errorf("armor = %q, want ssh-keygen's header and footer", armored)
	}
	for _, l := range lines[1 : len(lines)-2] {
		if len(l) != 70 {
			t.Errorf("armored line %q is %d long, want 70 (as ssh-keygen wraps)", l, len(l))
		}
	}
	pub, err := sshsig.Verify(armored, namespace, msg)
	if err != nil {
		t.Fatalf("Verify of a fresh signature = %v", err)
	}
	if !bytes.Equal(pub.Marshal(), s.PublicKey().Marshal()) {
		t.Errorf("Verify returned key %s, want the signer's", ssh.FingerprintSHA256(pub))
	}

	tests := []struct {
		name, armored, namespace string
		msg                      []byte
		want                     string // error text
	}{
		{"other message", armored, namespace, []byte("row: 8"), "ssh: signature did not verify"},
		{"other namespace", armored, "file", msg, `SSH signature version 1, namespace "jit-ssh-test", hash "sha512"; want 1, "file", "sha512"`},
		{"no armor", "AAAA", namespace, msg, "not an armored SSH signature"},
		{"bad base64", "-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----", namespace, msg, "malformed SSH signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sshsig.Verify(tt.armored, tt.namespace, tt.msg)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Verify = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestOpenSSHInterop: what Sign makes, ssh-keygen -Y verify accepts, and
// what ssh-keygen -Y sign makes, Verify accepts, for the key types a CA or
// checkpoint key can have.
func TestOpenSSHInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ssh-keygen")
	}
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not found")
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		key  any
		// plain: an RSA signer as ssh.NewSignerFromKey makes it, whose
		// Sign would choose ssh-rsa (SHA-1).
		plain bool
	}{{"ed25519", ed, false}, {"ecdsa-p256", ec, false}, {"rsa-3072", rk, false}, {"rsa-3072 plain signer", rk, true}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("HOME", dir)
			s, err := ssh.NewSignerFromKey(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if s.PublicKey().Type() == ssh.KeyAlgoRSA && !tt.plain {
				// As the CA's file signer does: RSA signs with SHA-512.
				if s, err = ssh.NewSignerWithAlgorithms(s.(ssh.AlgorithmSigner), []string{ssh.KeyAlgoRSASHA512}); err != nil {
					t.Fatal(err)
				}
			}
			block, err := ssh.MarshalPrivateKey(tt.key, "")
			if err != nil {
				t.Fatal(err)
			}
			keyFile := filepath.Join(dir, "key")
			writeFile(t, keyFile, pem.EncodeToMemory(block))
			allowed := filepath.Join(dir, "allowed_signers")
			writeFile(t, allowed, []byte("ca@jit-ssh "+string(ssh.MarshalAuthorizedKey(s.PublicKey()))))
			msgFile := filepath.Join(dir, "msg")
			writeFile(t, msgFile, msg)

			t.Run("Sign, ssh-keygen verifies", func(t *testing.T) {
				armored, err := sshsig.Sign(s, namespace, msg)
				if err != nil {
					t.Fatal(err)
				}
				sigFile := filepath.Join(dir, "ours.sig")
				writeFile(t, sigFile, []byte(armored))
				cmd := exec.Command(keygen, "-Y", "verify", "-f", allowed, "-I", "ca@jit-ssh", "-n", namespace, "-s", sigFile)
				cmd.Stdin = bytes.NewReader(msg)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("ssh-keygen -Y verify: %v\n%s", err, out)
				}
				// And refuses it for another message.
				cmd = exec.Command(keygen, "-Y", "verify", "-f", allowed, "-I", "ca@jit-ssh", "-n", namespace, "-s", sigFile)
				cmd.Stdin = strings.NewReader("row: 8")
				if out, err := cmd.CombinedOutput(); err == nil {
					t.Errorf("ssh-keygen -Y verify accepted the signature over another message:\n%s", out)
				}
			})
			t.Run("ssh-keygen signs, Verify accepts", func(t *testing.T) {
				cmd := exec.Command(keygen, "-Y", "sign", "-f", keyFile, "-n", namespace, msgFile)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
				}
				armored, err := os.ReadFile(msgFile + ".sig")
				if err != nil {
					t.Fatal(err)
				}
				pub, err := sshsig.Verify(string(armored), namespace, msg)
				if err != nil {
					t.Fatalf("Verify of ssh-keygen's signature = %v", err)
				}
				if !bytes.Equal(pub.Marshal(), s.PublicKey().Marshal()) {
					t.Errorf("Verify returned key %s, want the signer's", ssh.FingerprintSHA256(pub))
				}
				if _, err := sshsig.Verify(string(armored), namespace, []byte("row: 8")); err == nil {
					t.Errorf("Verify accepted ssh-keygen's signature over another message")
				}
			})
		})
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
