package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// proxyRecorder is an HTTP proxy on loopback that records every request it
// is asked to forward (and forwards none): the CLI is run with HTTP_PROXY and
// HTTPS_PROXY pointing at it, so any attempt to reach a server that is not on
// loopback shows up here instead of going out to the network.
type proxyRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (p *proxyRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.seen = append(p.seen, r.Method+" "+r.Host+" auth="+r.Header.Get("Authorization"))
	p.mu.Unlock()
	http.Error(w, "recorded, not forwarded", http.StatusBadGateway)
}

func (p *proxyRecorder) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.seen
	p.seen = nil
	return s
}

// TestCLIRefusesPlainHTTPToRemoteServer: every command that talks to the
// server refuses a plain http:// server that is not on loopback, from
// --server or JIT_SSH_SERVER, with a usage error naming https, and sends
// nothing: not the token, not a request for a host's trust (finding 3 of
// issue 13; SPEC section 3).
func TestCLIRefusesPlainHTTPToRemoteServer(t *testing.T) {
	rec := &proxyRecorder{}
	proxy := httptest.NewServer(rec)
	t.Cleanup(proxy.Close)
	home := testenv.TempDir(t)
	hostDir := testenv.TempDir(t)

	runCLI := func(t *testing.T, server string, viaEnv bool, args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if !viaEnv {
			args = append([]string{"--server", server}, args...)
		}
		cmd := exec.CommandContext(ctx, jitBinary(t), args...)
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + home,
			"JIT_SSH_TOKEN=dev-alice",
			"HTTP_PROXY=" + proxy.URL,
			"HTTPS_PROXY=" + proxy.URL,
			"NO_PROXY=",
		}
		if viaEnv {
			cmd.Env = append(cmd.Env, "JIT_SSH_SERVER="+server)
		}
		return runResult(t, cmd)
	}

	// The recorder sees what the CLI sends: over https to the same name the
	// CLI does try (through the proxy), and fails on the proxy's answer.
	if r := runCLI(t, "https://jit-ssh.example.com", false, "status"); r.Code == 0 {
		t.Fatalf("status through the recording proxy succeeded: %+v", r)
	}
	if seen := rec.take(); len(seen) == 0 {
		t.Fatal("the recording proxy saw nothing from an https status; the test cannot see connections")
	}

	commands := [][]string{
		{"status"},
		{"login", "staging", "--no-wait"},
		{"logout", "--end"},
		{"request", "list"},
		{"request", "create", "staging", "--duration", "10m", "--reason", "test"},
		{"request", "show", "r-aaaaaaaaaaaaaaaa"},
		{"request", "edit", "r-aaaaaaaaaaaaaaaa", "--reason", "new"},
		{"request", "cancel", "r-aaaaaaaaaaaaaaaa"},
		{"review", "r-aaaaaaaaaaaaaaaa", "--approve"},
		{"audit", "certs"},
		{"audit", "events"},
		{"audit", "show", "1"},
		{"audit", "verify"},
		{"audit", "report"},
		{"revoke", "--serial", "1", "--reason", "test"},
		{"ca", "pubkey"},
		{"host", "sync", "--dir", hostDir},
		{"host", "config", "--group", "staging", "--user", "deploy"},
		{"host", "config", "--group", "staging", "--user", "deploy", "--dir", hostDir},
	}
	for _, server := range []string{"http://jit-ssh.example.com", "http://jit-ssh.example.com:80/", "http://10.1.2.3:7443", "http://[2001:db8::1]:7443"} {
		for _, viaEnv := range []bool{false, true} {
			for _, args := range commands {
				name := server + " " + strings.Join(args, " ")
				if viaEnv {
					name += " (JIT_SSH_SERVER)"
				}
				t.Run(name, func(t *testing.T) {
					r := runCLI(t, server, viaEnv, args...)
					if seen := rec.take(); len(seen) > 0 {
						t.Errorf("sent to the network: %q", seen)
					}
					if r.Code != 2 {
						t.Errorf("exit %d, want 2 (a usage error)\nstderr: %s", r.Code, r.Stderr)
					}
					if !strings.Contains(r.Stderr, "use https://") || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
						t.Errorf("stderr = %q, want one line that says to use https://", r.Stderr)
					}
				})
			}
		}
	}

	// doctor reports the refusal as its failing server check (exit 1, as
	// every failing check) and still checks nothing over the network.
	t.Run("doctor", func(t *testing.T) {
		r := runCLI(t, "http://jit-ssh.example.com", false, "doctor")
		if seen := rec.take(); len(seen) > 0 {
			t.Errorf("doctor sent to the network: %q", seen)
		}
		if r.Code != 1 || !strings.Contains(r.Stdout, "use https://jit-ssh.example.com") {
			t.Errorf("doctor: exit %d, stdout %q; want 1 and a server finding saying to use https", r.Code, r.Stdout)
		}
	})
}
