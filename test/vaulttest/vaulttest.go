// Package vaulttest starts a real HashiCorp Vault server in dev mode for
// tests: in memory, on a free loopback port, with a random root token, and
// stopped in t.Cleanup. The binary is built from test/vaultserver by
// `make vault` into <repo>/bin/vault, or named by JIT_SSH_VAULT_BIN.
//
// Dev mode keeps everything in memory: Restart gives a fresh, empty Vault on
// the same address and token (mounts, keys and roles are gone; run
// vault.Setup again). To simulate outages without losing state use Seal and
// Unseal (a sealed Vault answers 503) or Pause and Resume (SIGSTOP/SIGCONT:
// a hung Vault that accepts connections and never answers).
package vaulttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// EnvBinary names the Vault binary to use instead of <repo>/bin/vault.
const EnvBinary = "JIT_SSH_VAULT_BIN"

// rootModule is the module whose go.mod marks the repository root.
const rootModule = "github.com/jit-ssh/jit-ssh"

// startTimeout bounds how long Vault may take to become healthy.
const startTimeout = 60 * time.Second

// Server is a running dev-mode Vault.
type Server struct {
	// Addr is the base URL, http://127.0.0.1:<port> (https:// from
	// StartTLS).
	Addr string
	// Token is the root token.
	Token string
	// CACert is the PEM file of the CA that signed the server's certificate
	// (StartTLS; "" without TLS): what VAULT_CACERT names.
	CACert string

	t      testing.TB
	bin    string
	port   int
	home   string
	logDir string

	mu        sync.Mutex
	cmd       *exec.Cmd
	exited    chan struct{}
	out       *lockedBuffer
	unsealKey string
	runs      int
	certDir   string // -dev-tls-cert-dir; "" without TLS
}

// Binary returns the path of the Vault binary: $JIT_SSH_VAULT_BIN, else
// <repo root>/bin/vault. When it is missing the test fails if CI=true and is
// skipped otherwise, both with the hint to run `make vault`. Under -short
// the test is skipped first (testenv.SkipIfShort).
func Binary(t testing.TB) string {
	t.Helper()
	testenv.SkipIfShort(t, "runs a Vault server")
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		root, err := RepoRoot()
		if err != nil {
			missing(t, err.Error())
		}
		bin = filepath.Join(root, "bin", "vault")
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		missing(t, fmt.Sprintf("no Vault binary at %s", bin))
	}
	return bin
}

func missing(t testing.TB, why string) {
	t.Helper()
	testenv.Unavailable(t, "vaulttest: %s; run make vault (or set %s)", why, EnvBinary)
}

// RepoRoot walks up from the working directory to the go.mod of module
// github.com/jit-ssh/jit-ssh (skipping nested modules such as
// test/vaultserver).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(data) == rootModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s above the working directory", rootModule)
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// Start starts a dev-mode Vault and stops it when the test ends. On failure
// the test's log gets Vault's output.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartTLS is Start with Vault's dev TLS (-dev-tls): the server has a
// certificate for 127.0.0.1 from a CA of its own, in CACert. A Restart
// makes a new CA.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, tls bool) *Server {
	t.Helper()
	bin := Binary(t)
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Token:  "root-" + hex.EncodeToString(tok),
		t:      t,
		bin:    bin,
		home:   t.TempDir(),
		logDir: t.TempDir(),
	}
	scheme := "http"
	if tls {
		scheme = "https"
		s.certDir = t.TempDir()
		s.CACert = filepath.Join(s.certDir, "vault-ca.pem")
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("vault output (last 4KiB):\n%s", s.tail(4096))
		}
	})
	var err error
	for range 3 { // a free port can be taken between probing and binding
		if s.port, err = freePort(); err != nil {
			t.Fatal(err)
		}
		s.Addr = scheme + "://127.0.0.1:" + strconv.Itoa(s.port)
		if err = s.start(); err == nil {
			return s
		}
		s.Stop()
	}
	t.Fatalf("vaulttest: starting vault: %v\n%s", err, s.tail(4096))
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs the binary and waits until Vault is unsealed and active.
func (s *Server) start() error {
	s.mu.Lock()
	s.runs++
	logf, err := os.Create(filepath.Join(s.logDir, fmt.Sprintf("vault-%d.log", s.runs)))
	if err != nil {
		s.mu.Unlock()
		return err
	}
	args := []string{"server", "-dev",
		"-dev-root-token-id=" + s.Token,
		"-dev-listen-address=127.0.0.1:" + strconv.Itoa(s.port),
		"-dev-no-store-token",
		"-log-level=warn",
	}
	if s.certDir != "" {
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+s.certDir)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Env = s.env()
	cmd.Dir = s.home
	out := &lockedBuffer{}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(pw, out, logf)
	cmd.Stderr = io.MultiWriter(out, logf)
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		logf.Close()
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited, s.out, s.unsealKey = cmd, exited, out, ""
	s.mu.Unlock()

	keyc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if k, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Unseal Key:"); ok {
				select {
				case keyc <- strings.TrimSpace(k):
				default:
				}
			}
		}
		io.Copy(io.Discard, pr) //nolint:errcheck // drain until the writer closes
	}()
	go func() {
		cmd.Wait() //nolint:errcheck // the exit status of a killed server is expected
		pw.Close()
		logf.Close()
		close(exited)
	}()

	deadline := time.Now().Add(startTimeout)
	var key string
	for {
		select {
		case <-exited:
			return fmt.Errorf("vault exited before it was ready")
		case k := <-keyc:
			key = k
		default:
		}
		if key != "" && s.healthy() {
			s.mu.Lock()
			s.unsealKey = key
			s.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault not ready within %s", startTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// env is a clean environment: no VAULT_* of the developer's shell.
func (s *Server) env() []string {
	return []string{
		"HOME=" + s.home,
		"PATH=" + os.Getenv("PATH"),
		"TMPDIR=" + s.home,
		"VAULT_DISABLE_MLOCK=true",
		"CHECKPOINT_DISABLE=1",
	}
}

// healthy reports whether /v1/sys/health says initialized, unsealed, active.
func (s *Server) healthy() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Addr+"/v1/sys/health", nil)
	if err != nil {
		return false
	}
	hc, err := s.httpClient()
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status matters
	return resp.StatusCode == http.StatusOK
}

// httpClient is a client for the health check: the default one, or with
// TLS one that trusts the CA of the current run (the file appears while
// Vault starts).
func (s *Server) httpClient() (*http.Client, error) {
	if s.certDir == "" {
		return http.DefaultClient, nil
	}
	cfg := api.DefaultConfig()
	if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CACert}); err != nil {
		return nil, err
	}
	return cfg.HttpClient, nil
}

// Client returns a new client for the server with the root token and Vault's
// own retries off, unaffected by the VAULT_* environment; with TLS it
// trusts CACert.
func (s *Server) Client() *api.Client {
	s.t.Helper()
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		s.t.Fatalf("vaulttest: %v", cfg.Error)
	}
	if s.certDir != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CACert}); err != nil {
			s.t.Fatalf("vaulttest: %v", err)
		}
	}
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 30 * time.Second
	c, err := api.NewClient(cfg)
	if err != nil {
		s.t.Fatalf("vaulttest: %v", err)
	}
	c.ClearNamespace()
	c.SetToken(s.Token)
	return c
}

// AppRole creates (or updates) AppRole role name with the given policy
// (HCL) and fixed IDs, enabling the approle auth method when it is missing,
// and returns the role ID and secret ID. Fixed IDs let a test give a
// restarted (empty) dev Vault the same credentials a running jit-ssh holds.
// roleID and secretID must be UUIDs or other strings Vault accepts.
func (s *Server) AppRole(name, policy, roleID, secretID string) (string, string) {
	s.t.Helper()
	c := s.Client()
	auths, err := c.Sys().ListAuth()
	if err != nil {
		s.t.Fatalf("vaulttest: listing auth methods: %v", err)
	}
	if _, ok := auths["approle/"]; !ok {
		if err := c.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
			s.t.Fatalf("vaulttest: enabling approle: %v", err)
		}
	}
	if err := c.Sys().PutPolicy(name, policy); err != nil {
		s.t.Fatalf("vaulttest: writing policy %s: %v", name, err)
	}
	base := "auth/approle/role/" + name
	if _, err := c.Logical().Write(base, map[string]any{"token_policies": name, "token_ttl": "1h", "token_max_ttl": "4h"}); err != nil {
		s.t.Fatalf("vaulttest: writing %s: %v", base, err)
	}
	if _, err := c.Logical().Write(base+"/role-id", map[string]any{"role_id": roleID}); err != nil {
		s.t.Fatalf("vaulttest: setting the role ID: %v", err)
	}
	// The same custom secret ID cannot be registered twice.
	known, err := c.Logical().Write(base+"/secret-id/lookup", map[string]any{"secret_id": secretID})
	if err != nil {
		var re *api.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound {
			s.t.Fatalf("vaulttest: looking up the secret ID: %v", err)
		}
	}
	if known == nil || known.Data == nil {
		if _, err := c.Logical().Write(base+"/custom-secret-id", map[string]any{"secret_id": secretID}); err != nil {
			s.t.Fatalf("vaulttest: registering the secret ID: %v", err)
		}
	}
	return roleID, secretID
}

// UnsealKey returns the unseal key of the running server (it changes with
// every Restart).
func (s *Server) UnsealKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unsealKey
}

// Seal seals Vault through the API. Data survives; Unseal brings it back.
func (s *Server) Seal() {
	s.t.Helper()
	if err := s.Client().Sys().Seal(); err != nil {
		s.t.Fatalf("vaulttest: sealing: %v", err)
	}
}

// Unseal unseals Vault with the key dev mode printed and waits until it is
// active again.
func (s *Server) Unseal() {
	s.t.Helper()
	st, err := s.Client().Sys().Unseal(s.UnsealKey())
	if err != nil {
		s.t.Fatalf("vaulttest: unsealing: %v", err)
	}
	if st.Sealed {
		s.t.Fatalf("vaulttest: still sealed after unseal (%d/%d)", st.Progress, st.T)
	}
	s.waitHealthy()
}

func (s *Server) waitHealthy() {
	s.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for !s.healthy() {
		if time.Now().After(deadline) {
			s.t.Fatalf("vaulttest: vault not active within %s", startTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pause stops the Vault process with SIGSTOP: connections are accepted by
// the kernel but nothing answers, like a hung server.
func (s *Server) Pause() {
	s.t.Helper()
	pid := s.signal(syscall.SIGSTOP)
	waitStopped(pid)
}

// Resume continues a paused Vault with SIGCONT.
func (s *Server) Resume() {
	s.t.Helper()
	s.signal(syscall.SIGCONT)
}

func (s *Server) signal(sig os.Signal) int {
	s.t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		s.t.Fatalf("vaulttest: vault is not running")
	}
	if err := cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("vaulttest: signalling vault: %v", err)
	}
	return cmd.Process.Pid
}

// Stop kills Vault and waits for it to exit; afterwards its address refuses
// connections. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Kill() //nolint:errcheck // it may have exited already
	<-exited
}

// Restart stops Vault (if running) and starts a fresh one on the same
// address with the same root token. Dev mode is in memory, so everything
// configured before is gone: run vault.Setup again.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	deadline := time.Now().Add(startTimeout)
	for {
		if err = s.start(); err == nil {
			return
		}
		s.Stop()
		if time.Now().After(deadline) {
			s.t.Fatalf("vaulttest: restarting vault on %s: %v\n%s", s.Addr, err, s.tail(4096))
		}
		time.Sleep(200 * time.Millisecond) // the port may linger briefly
	}
}

// Output returns everything Vault printed so far in its current run.
func (s *Server) Output() string {
	s.mu.Lock()
	out := s.out
	s.mu.Unlock()
	if out == nil {
		return ""
	}
	return out.String()
}

func (s *Server) tail(n int) string {
	o := s.Output()
	if len(o) > n {
		o = "..." + o[len(o)-n:]
	}
	return strings.ReplaceAll(o, s.Token, "<root token>")
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
