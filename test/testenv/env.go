package testenv

import (
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

// packages names the Debian package that ships each binary.
var packages = map[string]string{
	"sshd":       "openssh-server",
	"ssh":        "openssh-client",
	"ssh-agent":  "openssh-client",
	"ssh-keygen": "openssh-client",
	"ssh-add":    "openssh-client",
}

// InCI reports whether the environment variable CI is true (as set by
// GitHub Actions and most CI systems).
func InCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// SkipIfShort skips the test under -short (make test-short), saying why
// it is no unit test: it runs a real program or server (OpenSSH, Vault,
// the jit-ssh binary), and -short promises unit tests only. make test runs
// it; there, as in CI, a missing program is still a skip or a failure as
// RequireBinary says. Every helper here that finds or starts a real
// program calls it, so a test that uses them needs no guard of its own.
func SkipIfShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("testenv: skipped under -short (make test runs it): %s", why)
	}
}

// RequireBinary returns the absolute path of the named program, looked up
// on PATH and then in /usr/sbin and /usr/bin. Under -short the test is
// skipped first (SkipIfShort): a test that runs a real program is not a
// unit test. When the program is missing the test fails if InCI, and is
// skipped otherwise; either way the message names the package to install.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	SkipIfShort(t, "runs "+name)
	return findBinary(t, name)
}

// findBinary is RequireBinary without the -short skip.
func findBinary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	pkg := packages[name]
	if pkg == "" {
		pkg = "the package that provides it"
	}
	if InCI() {
		t.Fatalf("testenv: %s not found in PATH, /usr/sbin or /usr/bin; CI=true, so end-to-end tests must run against real OpenSSH: install %s in the CI image", name, pkg)
	} else {
		t.Skipf("testenv: %s not found in PATH, /usr/sbin or /usr/bin; install %s to run this test (with CI=true this is a failure)", name, pkg)
	}
	return ""
}

// Unavailable stops a test whose environment cannot provide what it needs
// (root, a mount): with CI=true that is a failure, since CI must run every
// test; elsewhere the test is skipped with the reason.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("testenv: "+format+" (CI=true: this test must run in CI)", args...)
	}
	t.Skipf("testenv: "+format, args...)
}

// TempDir returns a new, short temporary directory under os.TempDir(),
// removed at cleanup. Unlike t.TempDir it never contains the test name, so
// it is short enough for unix sockets (about 100 bytes) and free of the
// '#', '%' and spaces that sshd_config cannot take.
func TempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "jit")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Login returns the current OS user's name: the Unix login end-to-end
// tests write host files for and log in as.
func Login(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatalf("testenv: current user: %v", err)
	}
	return u.Username
}
