package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// jitBinary returns the jit-ssh binary under test: $JIT_SSH_BIN (set by
// make test) or one built once for this test run.
func jitBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("JIT_SSH_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "jit-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "jit-ssh")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/jit-ssh/jit-ssh/cmd/jit-ssh").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building jit-ssh: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// server is a running `jit-ssh serve`.
type server struct {
	URL     string
	DataDir string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
}

// Stop stops the server the way an operator would (SIGTERM) and waits for
// it to exit, so its ledger file is complete and closed.
func (s *server) Stop(t *testing.T) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("jit-ssh serve did not stop on SIGTERM:\n%s", s.Log())
	}
}

func (s *server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// testLimits turns the per-identity rate limits off in a test server's
// config. End-to-end tests issue faster than a person would, on a machine
// whose speed they do not control, and a login retries by itself; with the
// limits on, whether a test passed would depend on how fast it ran. The
// limits have focused tests of their own (ca/api/limits_test.go,
// cmd/jit-ssh/limits_config_test.go, and flood_test.go here, whose config
// sets a budget on purpose). Every config these tests start a server with
// sets its limits, with testLimits or a block of its own; startServerOn
// refuses one that leaves them to the defaults.
const testLimits = `
limits:
  requests: {per_minute: 0}
  certificates: {per_minute: 0}
  writes: {per_minute: 0}
`

// limitsBlock finds a config's top-level limits block.
var limitsBlock = regexp.MustCompile(`(?m)^limits:`)

// startDev starts `jit-ssh serve --dev` on a free loopback port and a
// fresh data dir.
func startDev(t *testing.T) *server {
	t.Helper()
	return startServer(t, "--dev")
}

// startWithConfig starts `jit-ssh serve --config` with the YAML given; the
// string %DATA% in it is replaced by the data dir.
func startWithConfig(t *testing.T, yaml string) *server {
	t.Helper()
	return startWithConfigEnv(t, yaml, nil)
}

// startWithConfigEnv is startWithConfig with env (KEY=value) added to the
// server's environment.
func startWithConfigEnv(t *testing.T, yaml string, env []string) *server {
	t.Helper()
	dir := testenv.TempDir(t)
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(yaml, "%DATA%", filepath.Join(dir, "data"))), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServerEnv(t, testenv.FreePort(t), "", env, "--config", cfg)
}

func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	return startServerOn(t, testenv.FreePort(t), "", args...)
}

// startServerOn is startServer on a given port; a non-empty dataDir is the
// data dir of a --dev server (to restart one where it left off).
func startServerOn(t *testing.T, port int, dataDir string, args ...string) *server {
	t.Helper()
	return startServerEnv(t, port, dataDir, nil, args...)
}

// startServerEnv is startServerOn with env (KEY=value) added to the
// server's environment.
func startServerEnv(t *testing.T, port int, dataDir string, env []string, args ...string) *server {
	t.Helper()
	bin := jitBinary(t)
	dir := testenv.TempDir(t)
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	s := &server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), DataDir: dataDir, logPath: filepath.Join(dir, "server.log")}
	logf, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range args {
		if a == "--config" && i+1 < len(args) {
			if b, err := os.ReadFile(args[i+1]); err != nil || !limitsBlock.Match(b) {
				t.Fatalf("test config %s leaves the rate limits to the defaults (err %v): add testLimits, since a test's result must not depend on the machine's speed", args[i+1], err)
			}
		}
	}
	args = append([]string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port)}, args...)
	if args[len(args)-1] == "--dev" {
		args = append(args, "--data-dir", s.DataDir)
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.Env = append(append(os.Environ(), "HOME="+dir), env...)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	s.done = done
	go func() { _ = s.cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-done:
			t.Fatalf("jit-ssh serve exited at start:\n%s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("jit-ssh serve did not become healthy:\n%s", s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// user runs CLI commands as one identity against one server and agent.
type user struct {
	t     *testing.T
	srv   *server
	token string
	sock  string
	home  string
}

func (s *server) as(t *testing.T, login, sock string) *user {
	return &user{t: t, srv: s, token: "dev-" + login, sock: sock, home: testenv.TempDir(t)}
}

func (u *user) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, jitBinary(u.t), args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + u.home,
		"JIT_SSH_SERVER=" + u.srv.URL,
		"JIT_SSH_TOKEN=" + u.token,
		"SSH_AUTH_SOCK=" + u.sock,
	}
	return cmd
}

// result of one CLI run.
type result struct {
	Stdout, Stderr string
	Code           int
}

// run runs the CLI to completion.
func (u *user) run(args ...string) result {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return runResult(u.t, u.command(ctx, args...))
}

// runResult runs cmd (a jit-ssh command line) to completion and returns
// its output and exit status; a command that cannot run fails the test.
func runResult(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running %v: %v", cmd.Args, err)
	}
	return r
}

// ok runs the CLI and fails the test unless it exits 0.
func (u *user) ok(args ...string) result {
	u.t.Helper()
	r := u.run(args...)
	if r.Code != 0 {
		u.t.Fatalf("jit-ssh %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// jsonLines decodes NDJSON output into a slice of T.
func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var all []T
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var v T
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("decoding %q: %v", out, err)
		}
		all = append(all, v)
	}
	return all
}

// hostFor writes host files for group with `jit-ssh host config` (the only
// way the test sshd learns whom to trust) and starts an sshd on them.
func hostFor(t *testing.T, u *user, group string) *testenv.SSHD {
	t.Helper()
	dir := testenv.TempDir(t)
	u.ok("host", "config", "--group", group, "--user", testenv.Login(t), "--dir", dir)
	return testenv.StartSSHD(t, testenv.SSHDOptions{DropIn: filepath.Join(dir, "jit-ssh.conf")})
}

// waitFor polls cond until it is true or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// auditCerts lists certificates as the dev auditor.
func auditCerts(t *testing.T, s *server, args ...string) []api.Certificate {
	t.Helper()
	carol := s.as(t, "carol", "")
	return jsonLines[api.Certificate](t, carol.ok(append([]string{"audit", "certs", "-o", "json"}, args...)...).Stdout)
}

// background is a CLI command running in the background; its output can
// be read while it runs.
type background struct {
	Stdout, Stderr syncBuffer
	done           chan error // receives the exit once
	ended          time.Time  // when it exited; set before done is sent
}

// start runs the CLI as u in the background, bounded by ctx.
func (u *user) start(ctx context.Context, args ...string) *background {
	u.t.Helper()
	b := &background{done: make(chan error, 1)}
	cmd := u.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &b.Stdout, &b.Stderr
	if err := cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	go func() { err := cmd.Wait(); b.ended = time.Now(); b.done <- err }()
	return b
}

// syncBuffer is a bytes.Buffer safe to read while a child process writes
// to it (exec copies a non-file writer from its own goroutine).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
