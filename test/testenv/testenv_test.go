package testenv_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/jit-ssh/jit-ssh/hostconfig"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// recorder is a testing.TB that records Skip and Fatal instead of acting
// on them.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
}

func TestRequireBinaryMissing(t *testing.T) {
	tests := []struct {
		ci          string
		wantFailed  bool
		wantSkipped bool
	}{
		{ci: "true", wantFailed: true},
		{ci: "1", wantFailed: true},
		{ci: "", wantSkipped: true},
		{ci: "false", wantSkipped: true},
	}
	for _, tt := range tests {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &recorder{TB: t}
			if got := testenv.FindBinary(r, "sshd-jit-ssh-does-not-exist"); got != "" {
				t.Errorf("RequireBinary = %q, want empty", got)
			}
			if r.failed != tt.wantFailed || r.skipped != tt.wantSkipped {
				t.Errorf("failed, skipped = %v, %v; want %v, %v (message %q)", r.failed, r.skipped, tt.wantFailed, tt.wantSkipped, r.msg)
			}
			if !strings.Contains(r.msg, "install") {
				t.Errorf("message %q does not say what to install", r.msg)
			}
		})
	}
}

func TestRequireBinaryNamesPackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", "")
	r := &recorder{TB: t}
	testenv.FindBinary(r, "ssh-agent-jit-ssh-does-not-exist")
	if !r.skipped || !strings.Contains(r.msg, "install the package that provides it") {
		t.Errorf("skipped = %v, message %q", r.skipped, r.msg)
	}
}

// Under -short a test that needs a real program is skipped, in CI too:
// -short is unit tests only. Without -short nothing is skipped.
func TestSkipIfShort(t *testing.T) {
	t.Setenv("CI", "true")
	r := &recorder{TB: t}
	testenv.SkipIfShort(r, "runs sshd")
	if r.skipped != testing.Short() || r.failed {
		t.Errorf("skipped, failed = %v, %v (message %q); want skipped = testing.Short() = %v", r.skipped, r.failed, r.msg, testing.Short())
	}
	if testing.Short() && (!strings.Contains(r.msg, "-short") || !strings.Contains(r.msg, "sshd")) {
		t.Errorf("message %q, want it to name sshd and -short", r.msg)
	}
}

func TestRequireBinaryFound(t *testing.T) {
	got := testenv.RequireBinary(t, "ssh-keygen")
	if !filepath.IsAbs(got) {
		t.Errorf("RequireBinary(ssh-keygen) = %q, want an absolute path", got)
	}
}

func TestFreePortAndTempDir(t *testing.T) {
	port := testenv.FreePort(t)
	if port <= 0 || port > 65535 {
		t.Fatalf("FreePort = %d", port)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("port %d from FreePort is not free: %v", port, err)
	}
	l.Close()

	dir := testenv.TempDir(t)
	if len(dir) > 60 {
		t.Errorf("TempDir = %q (%d bytes), want a short path for unix sockets", dir, len(dir))
	}
	if strings.ContainsAny(dir, " #%") {
		t.Errorf("TempDir = %q contains characters sshd_config cannot take", dir)
	}
	if login := testenv.Login(t); login == "" {
		t.Error("Login is empty")
	}
}

func TestStartAgent(t *testing.T) {
	var sock string
	t.Run("running", func(t *testing.T) {
		sock = testenv.StartAgent(t)
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ag := agent.NewClient(conn)
		if err := ag.Add(agent.AddedKey{PrivateKey: priv, Comment: "testenv", LifetimeSecs: 60}); err != nil {
			t.Fatalf("Add: %v", err)
		}
		keys, err := ag.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0].Comment != "testenv" {
			t.Errorf("List = %v, want the one key added", keys)
		}
	})
	// The subtest's cleanup has run: the agent is gone.
	if _, err := os.Stat(sock); err == nil {
		if conn, err := net.Dial("unix", sock); err == nil {
			conn.Close()
			t.Errorf("ssh-agent still answers on %s after cleanup", sock)
		}
	}
}

// TestSSHDTrustsOnlyTheDropIn starts sshd with jit-ssh host files and
// checks that a plain key (no certificate) is refused: the only way in is
// a certificate from the CA the drop-in names.
func TestSSHDTrustsOnlyTheDropIn(t *testing.T) {
	_, caPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caSigner, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		t.Fatal(err)
	}
	login := testenv.Login(t)
	files := hostconfig.Files{
		Dir:        filepath.Join(testenv.TempDir(t), "host"),
		Group:      "staging",
		Login:      login,
		Principals: []string{"staging"},
		CAKeys:     []ssh.PublicKey{caSigner.PublicKey()},
	}
	if _, err := hostconfig.Write(files); err != nil {
		t.Fatal(err)
	}

	var port int
	t.Run("running", func(t *testing.T) {
		sshd := testenv.StartSSHD(t, testenv.SSHDOptions{DropIn: files.DropInPath(), Extra: []string{"MaxStartups 50:30:100"}})
		port = sshd.Port
		cfg, err := os.ReadFile(sshd.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Include " + files.DropInPath() + "\n", "AuthorizedKeysFile none\n", "LogLevel VERBOSE\n", "MaxStartups 50:30:100\n"} {
			if !strings.Contains(string(cfg), want) {
				t.Errorf("sshd_config lacks %q:\n%s", want, cfg)
			}
		}

		sock := testenv.StartAgent(t)
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := agent.NewClient(conn).Add(agent.AddedKey{PrivateKey: priv}); err != nil {
			t.Fatal(err)
		}
		_, stderr, err := testenv.SSH(t, sock, sshd.Port, login, "true")
		if err == nil {
			t.Fatalf("ssh with a plain key succeeded; want it refused\nsshd log:\n%s", sshd.Log())
		}
		if !strings.Contains(stderr, "Permission denied (publickey)") {
			t.Errorf("ssh stderr = %q, want Permission denied (publickey)", stderr)
		}
		sshd.WaitForLog(t, "Failed publickey for "+login, 5*time.Second)
	})
	// The subtest's cleanup has run: nothing listens on the port any more.
	if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		conn.Close()
		t.Errorf("sshd still listens on port %d after cleanup", port)
	}
}
