package testenv

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// privsepDir is the privilege separation directory of Debian's sshd. sshd
// refuses to start as root without it, even in test mode; systemd creates
// it for the real service, nobody does in a container.
const privsepDir = "/run/sshd"

// SSHDOptions configures StartSSHD.
type SSHDOptions struct {
	// DropIn is the absolute path of the jit-ssh sshd drop-in, as written by
	// hostconfig.Write. Required: it is the only source of trust the sshd
	// has.
	DropIn string
	// Extra are further sshd_config lines, for example "MaxStartups 100:30:200"
	// for benchmarks. They come last, and sshd keeps the first value of each
	// keyword, so they cannot override the drop-in or the settings above.
	Extra []string
}

// SSHD is a running sshd started by StartSSHD.
type SSHD struct {
	// Port is the TCP port it listens on, on 127.0.0.1.
	Port int
	// LogPath is the file sshd's log (LogLevel VERBOSE, stderr) goes to.
	LogPath string
	// ConfigPath is the generated sshd_config.
	ConfigPath string
	// Dir is the temporary directory holding the config, host key, pid
	// file and log.
	Dir string
}

// EnsurePrivsepDir creates sshd's privilege separation directory
// (/run/sshd, mode 0755) when running as root and it is missing. It is
// left in place at cleanup: it is a system directory and other sshds may
// use it.
func EnsurePrivsepDir(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	if _, err := os.Stat(privsepDir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(privsepDir, 0o755); err != nil {
			t.Fatalf("testenv: creating sshd privilege separation directory: %v", err)
		}
		if err := os.Chmod(privsepDir, 0o755); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
}

// StartSSHD starts a real `sshd -D -e` on 127.0.0.1 and a free port, and
// returns once sshd logs that it is listening. Its sshd_config holds only
// an Include of opts.DropIn (first, as Debian's stock config does), the
// listener, a fresh ed25519 host key, a pid file, and: AuthorizedKeysFile
// none, PasswordAuthentication no, KbdInteractiveAuthentication no, UsePAM
// no, StrictModes no (the files live under /tmp, which is world-writable),
// LogLevel VERBOSE (so sshd logs each certificate's ID and serial), and
// PermitRootLogin prohibit-password (certificate logins as root, for CI
// that runs as root). So certificates are the only way in, and the jit-ssh
// host files are the only trust. sshd is stopped at cleanup.
func StartSSHD(t testing.TB, opts SSHDOptions) *SSHD {
	t.Helper()
	bin := RequireBinary(t, "sshd")
	if opts.DropIn == "" || !filepath.IsAbs(opts.DropIn) {
		t.Fatalf("testenv: StartSSHD needs the absolute path of the jit-ssh drop-in, got %q", opts.DropIn)
	}
	if _, err := os.Stat(opts.DropIn); err != nil {
		t.Fatalf("testenv: drop-in: %v", err)
	}
	EnsurePrivsepDir(t)

	dir := TempDir(t)
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	writeHostKey(t, hostKey)
	s := &SSHD{
		LogPath:    filepath.Join(dir, "sshd.log"),
		ConfigPath: filepath.Join(dir, "sshd_config"),
		Dir:        dir,
	}
	// The port can be taken between FreePort and sshd's bind; try again
	// with another one when that happens.
	for attempt := 1; ; attempt++ {
		s.Port = FreePort(t)
		err := s.start(t, bin, hostKey, opts)
		if err == nil {
			return s
		}
		if attempt == 3 || !strings.Contains(s.Log(), "Address already in use") {
			t.Fatalf("testenv: %v\nsshd_config:\n%s\nsshd log:\n%s", err, readFile(s.ConfigPath), s.Log())
		}
	}
}

func (s *SSHD) start(t testing.TB, bin, hostKey string, opts SSHDOptions) error {
	lines := []string{
		"# Written by jit-ssh testenv. Trust comes only from the jit-ssh drop-in.",
		"Include " + opts.DropIn,
		"ListenAddress 127.0.0.1",
		fmt.Sprintf("Port %d", s.Port),
		"HostKey " + hostKey,
		"PidFile " + filepath.Join(s.Dir, "sshd.pid"),
		"AuthorizedKeysFile none",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"LogLevel VERBOSE",
		"PermitRootLogin prohibit-password",
	}
	lines = append(lines, opts.Extra...)
	if err := os.WriteFile(s.ConfigPath, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	logFile, err := os.Create(s.LogPath)
	if err != nil {
		return err
	}
	defer logFile.Close()

	// sshd re-executes itself and so needs an absolute path.
	cmd := exec.Command(bin, "-D", "-e", "-f", s.ConfigPath)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting sshd: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a killed process is of no interest
		close(done)
	}()

	ready := fmt.Sprintf("Server listening on 127.0.0.1 port %d", s.Port)
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(s.Log(), ready) {
		select {
		case <-done:
			return fmt.Errorf("sshd exited before listening on port %d", s.Port)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop(cmd, done)
			return fmt.Errorf("sshd did not listen on port %d within %v", s.Port, startTimeout)
		}
	}
	t.Cleanup(func() { stop(cmd, done) })
	return nil
}

// Log returns what sshd has logged so far.
func (s *SSHD) Log() string { return readFile(s.LogPath) }

// WaitForLog waits until a line of sshd's log contains substr and returns
// that line. It fails the test, showing the log, after timeout.
func (s *SSHD) WaitForLog(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		log := s.Log()
		for line := range strings.Lines(log) {
			if strings.Contains(line, substr) {
				return strings.TrimRight(line, "\n")
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: sshd did not log %q within %v; log:\n%s", substr, timeout, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeHostKey writes a fresh ed25519 host key with mode 0600 (sshd refuses
// host keys others can read).
func writeHostKey(t testing.TB, path string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}
