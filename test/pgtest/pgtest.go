package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// EnvBinDir names a directory holding initdb and postgres to use instead
// of the newest /usr/lib/postgresql/*/bin.
const EnvBinDir = "JIT_SSH_PG_BIN"

// User is the role the server is initialised with (its superuser); tests
// connect as it with Server.Password.
const User = "jit"

// startTimeout bounds how long the server may take to accept connections.
const startTimeout = 60 * time.Second

// Server is a running throwaway PostgreSQL.
type Server struct {
	// Port is the loopback TCP port it listens on.
	Port int
	// Password is User's password.
	Password string

	t    testing.TB
	bin  string
	dir  string // owns data/, the socket and the log
	cred *syscall.Credential

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	dbs    atomic.Int64
}

// BinDir returns the directory of PostgreSQL's server programs. Under
// -short the test is skipped first (testenv.SkipIfShort); when PostgreSQL
// is missing the test is skipped, or fails with CI=true.
func BinDir(t testing.TB) string {
	t.Helper()
	testenv.SkipIfShort(t, "runs a PostgreSQL server")
	if d := os.Getenv(EnvBinDir); d != "" {
		if !hasServer(d) {
			testenv.Unavailable(t, "pgtest: %s=%s holds no initdb and postgres", EnvBinDir, d)
		}
		return d
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first: 9.6 < 10 < 17.
	slices.SortFunc(dirs, func(a, b string) int { return majorOf(b) - majorOf(a) })
	for _, d := range dirs {
		if hasServer(d) {
			return d
		}
	}
	testenv.Unavailable(t, "pgtest: no PostgreSQL server in /usr/lib/postgresql/*/bin; install the postgresql package (tools/setup.sh test) or set %s", EnvBinDir)
	return ""
}

func majorOf(binDir string) int {
	v, _ := strconv.Atoi(strings.SplitN(filepath.Base(filepath.Dir(binDir)), ".", 2)[0])
	return v
}

func hasServer(dir string) bool {
	for _, p := range []string{"initdb", "postgres"} {
		st, err := os.Stat(filepath.Join(dir, p))
		if err != nil || st.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// Start initialises a new cluster and starts it; the server is stopped and
// its files removed when the test ends. On failure the test's log gets the
// server's log.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := BinDir(t)
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, Password: hex.EncodeToString(pw)}
	dir, err := os.MkdirTemp("", "jitpg")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s.dir = dir
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("postgres log (last 4KiB):\n%s", s.logTail(4096))
		}
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		s.cred, err = nobody()
		if err != nil {
			testenv.Unavailable(t, "pgtest: running as root and %v: PostgreSQL refuses to run as root", err)
		}
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := s.writeOwned(pwfile, s.Password+"\n"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	// initdb's own --no-sync only skips flushing the template files it
	// writes (a crash of this machine would lose the whole test cluster
	// anyway); the server itself runs with fsync on.
	out, err := s.command(filepath.Join(bin, "initdb"), "-D", s.dataDir(), "-U", User, "--pwfile="+pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput()
	if err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	os.Remove(pwfile)
	for range 3 { // a free port can be taken between probing and binding
		s.Port = testenv.FreePort(t)
		if err = s.start(); err == nil {
			return s
		}
		s.Stop()
	}
	t.Fatalf("pgtest: starting postgres: %v\n%s", err, s.logTail(4096))
	return nil
}

// nobody returns the credentials of the user nobody.
func nobody() (*syscall.Credential, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("no user nobody to run it as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user nobody: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) logPath() string { return filepath.Join(s.dir, "postgres.log") }

// writeOwned writes a 0600 file owned by the server's user.
func (s *Server) writeOwned(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	if s.cred != nil {
		return os.Chown(path, int(s.cred.Uid), int(s.cred.Gid))
	}
	return nil
}

// command runs a PostgreSQL program as the server's user, in its
// directory.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// start runs postgres and waits until it accepts connections.
func (s *Server) start() error {
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := s.command(filepath.Join(s.bin, "postgres"), "-D", s.dataDir(),
		"-p", strconv.Itoa(s.Port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB",
		"-c", "logging_collector=off", "-c", "log_min_messages=warning",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			err = c.Ping(ctx)
			c.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("postgres exited: %s", cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within %s: %w", startTimeout, err)
		}
	}
}

// DSN returns the URL of database db as User, with the password.
func (s *Server) DSN(db string) string { return s.DSNAs(db, User, s.Password) }

// DSNAs returns the URL of database db as role user with password.
func (s *Server) DSNAs(db, user, password string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// NewDatabase creates a new, empty database and returns its DSN; it is
// dropped with the server.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connecting: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	return s.DSN(name)
}

// Stop shuts the server down (fast shutdown: open transactions are rolled
// back, committed ones are on disk) and waits for it to exit. It may be
// started again with Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart starts a stopped server again on the same port with the same
// data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatalf("pgtest: restarting postgres: %v\n%s", err, s.logTail(4096))
	}
}

func (s *Server) logTail(n int) string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
