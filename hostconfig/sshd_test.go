package hostconfig_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/hostconfig"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// TestHostFilesWithOpenSSH proves the host files work with real OpenSSH: an
// sshd whose only trust is the jit-ssh drop-in accepts a certificate of the
// group's principal, logs its KeyId, and refuses a certificate of another
// group, an expired one, and one whose serial the KRL revokes.
func TestHostFilesWithOpenSSH(t *testing.T) {
	ctx := t.Context()
	dir := testenv.TempDir(t)
	signer, err := ca.LoadOrCreateFileSigner(filepath.Join(dir, "ca", "ca_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	caKeys, err := signer.PublicKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}

	login := testenv.Login(t)
	files := hostconfig.Files{
		Dir:        filepath.Join(dir, "host"),
		Group:      "prod-db",
		Login:      login,
		Principals: []string{"prod-db"},
		CAKeys:     caKeys,
	}
	if _, err := hostconfig.Write(files); err != nil {
		t.Fatalf("hostconfig.Write: %v", err)
	}
	sshdPath := testenv.RequireBinary(t, "sshd")
	testenv.EnsurePrivsepDir(t)
	if err := hostconfig.CheckWithSSHD(ctx, sshdPath, files.DropInPath()); err != nil {
		t.Fatalf("CheckWithSSHD: %v", err)
	}
	sshd := testenv.StartSSHD(t, testenv.SSHDOptions{DropIn: files.DropInPath()})

	now := time.Now()
	revokedSerial := uint64(0)
	tests := []struct {
		name       string
		requestID  string
		principals []string
		now        time.Time // issuance time
		revoke     bool      // add the serial to the host's KRL
		wantOK     bool
		wantLog    string // sshd's reason for refusing
	}{
		{name: "group principal", requestID: "r-aaaaaaaaaaaaaaaa", principals: []string{"prod-db"}, now: now, wantOK: true},
		{
			name: "other group's principal", requestID: "r-bbbbbbbbbbbbbbbb", principals: []string{"staging"}, now: now,
			wantLog: "Certificate does not contain an authorized principal",
		},
		{
			name: "expired", requestID: "r-cccccccccccccccc", principals: []string{"prod-db"}, now: now.Add(-2 * time.Hour),
			wantLog: "Certificate invalid: expired",
		},
		{
			name: "revoked serial", requestID: "r-dddddddddddddddd", principals: []string{"prod-db"}, now: now, revoke: true,
			wantLog: "revoked by file " + files.KRLPath(),
		},
	}
	for _, tt := range tests {
		grant := ca.Grant{
			RequestID: tt.requestID,
			User:      "alice",
			Group:     "prod-db",
			Approvers: []string{"bob"},
			Ends:      tt.now.Add(time.Hour),
			Profile:   ca.Profile{Principals: tt.principals, CertTTL: 5 * time.Minute},
		}
		priv, cert := issue(t, signer, grant, tt.now)
		if tt.revoke {
			revokedSerial = cert.Serial
			revokeSerial(t, files.KRLPath(), caKeys[0], cert.Serial)
		}
		t.Run(tt.name, func(t *testing.T) {
			sock := testenv.StartAgent(t)
			addToAgent(t, sock, priv, cert)

			stdout, stderr, err := testenv.SSH(t, sock, sshd.Port, login, "echo", "hello-from-sshd")
			t.Logf("ssh: err=%v stderr=%q", err, stderr)
			if tt.wantOK {
				if err != nil {
					t.Fatalf("ssh with a valid certificate: %v\nstderr: %s\nsshd log:\n%s", err, stderr, sshd.Log())
				}
				if got, want := strings.TrimSpace(stdout), "hello-from-sshd"; got != want {
					t.Errorf("ssh stdout = %q, want %q", got, want)
				}
				// The audit trail on the host: sshd logs the KeyId and serial.
				line := sshd.WaitForLog(t, "ID "+cert.KeyId, 5*time.Second)
				for _, want := range []string{"Accepted publickey for " + login, fmt.Sprintf("(serial %d)", cert.Serial)} {
					if !strings.Contains(line, want) {
						t.Errorf("sshd log line %q lacks %q", line, want)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("ssh with certificate %q succeeded; want it refused\nsshd log:\n%s", cert.KeyId, sshd.Log())
			}
			if !strings.Contains(stderr, "Permission denied") {
				t.Errorf("ssh stderr = %q, want a permission denied", stderr)
			}
			sshd.WaitForLog(t, tt.wantLog, 5*time.Second)
			if line := sshd.WaitForLog(t, "ID "+cert.KeyId, 5*time.Second); !strings.Contains(line, "Failed publickey for "+login) {
				t.Errorf("sshd log line for the refused certificate = %q, want a failed publickey for %s", line, login)
			}
			for line := range strings.Lines(sshd.Log()) {
				if strings.Contains(line, "Accepted") && strings.Contains(line, cert.KeyId) {
					t.Errorf("sshd accepted the refused certificate: %s", line)
				}
			}
		})
	}
	if os.Getenv("JIT_DEBUG") != "" {
		t.Log(sshd.Log())
	}
	if revokedSerial == 0 {
		t.Fatal("no certificate was revoked")
	}
}

// issue signs a certificate for a fresh ed25519 key under grant at now,
// through the CA's real profile and file signer.
func issue(t *testing.T, signer *ca.FileSigner, grant ca.Grant, now time.Time) (ed25519.PrivateKey, *ssh.Certificate) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := ca.Template(grant, subject, now, ca.DefaultSkew, rand.Reader)
	if err != nil {
		t.Fatalf("ca.Template: %v", err)
	}
	cert, err := signer.Sign(context.Background(), tmpl)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return priv, cert
}

// addToAgent loads key and certificate into the real ssh-agent at sock,
// with a lifetime, as `jit-ssh login` does.
func addToAgent(t *testing.T, sock string, priv ed25519.PrivateKey, cert *ssh.Certificate) {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = agent.NewClient(conn).Add(agent.AddedKey{
		PrivateKey:   priv,
		Certificate:  cert,
		Comment:      cert.KeyId,
		LifetimeSecs: 300,
	})
	if err != nil {
		t.Fatalf("adding the certificate to ssh-agent: %v", err)
	}
}

// revokeSerial replaces the KRL at krlPath with one, built by the real
// ssh-keygen, that revokes serial under caKey. sshd reads the KRL on every
// authentication, so no reload is needed.
func revokeSerial(t *testing.T, krlPath string, caKey ssh.PublicKey, serial uint64) {
	t.Helper()
	keygen := testenv.RequireBinary(t, "ssh-keygen")
	dir := t.TempDir()
	caPub := filepath.Join(dir, "ca.pub")
	spec := filepath.Join(dir, "spec")
	if err := os.WriteFile(caPub, ssh.MarshalAuthorizedKey(caKey), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec, fmt.Appendf(nil, "serial: %d\n", serial), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(krlPath), ".revoked.krl.test")
	if out, err := exec.Command(keygen, "-k", "-f", tmp, "-s", caPub, spec).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -k: %v\n%s", err, out)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, krlPath); err != nil {
		t.Fatal(err)
	}
}
