package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/test/ghstub"
)

// lockedBuffer is a buffer the test may read while a command writes to it
// from another goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// authEnv points the user's config directory at a temp dir and clears
// every other place a token could come from, so the tests see only what
// 'auth login' stores. It returns where the token file must be.
func authEnv(t *testing.T, gh *ghstub.Server) string {
	t.Helper()
	home := t.TempDir()
	cfg := filepath.Join(home, "config")
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", cfg)
	t.Setenv("JIT_SSH_TOKEN", "")
	t.Setenv("GITHUB_TOKEN", "")
	t.Setenv("PATH", t.TempDir()) // no gh
	t.Setenv("JIT_SSH_GITHUB_CLIENT_ID", "Iv1.jitsshtest")
	t.Setenv("JIT_SSH_GITHUB_URL", gh.URL)
	t.Setenv("JIT_SSH_GITHUB_API_URL", gh.APIURL())
	return filepath.Join(cfg, "jit-ssh", "token")
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	var out, errb lockedBuffer
	code := run(t.Context(), args, strings.NewReader(""), &out, &errb)
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// deviceLogin runs 'jit-ssh auth login' in the background and plays the
// user at GitHub's device page with act once the one-time code is shown.
// It returns the command's result and what act returned.
func deviceLogin(t *testing.T, gh *ghstub.Server, act func(userCode string) string, args ...string) (cliResult, string) {
	t.Helper()
	var out, errb lockedBuffer
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"auth", "login"}, args...), strings.NewReader(""), &out, &errb)
	}()
	var code string
	deadline := time.Now().Add(20 * time.Second)
	for code == "" {
		if codes := gh.UserCodes(); len(codes) == 1 && strings.Contains(errb.String(), codes[0]) {
			code = codes[0]
			break
		}
		select {
		case c := <-done:
			t.Fatalf("auth login ended (exit %d) before showing a code:\nstdout:\n%s\nstderr:\n%s", c, out.String(), errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("auth login showed no one-time code:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(errb.String(), gh.URL+"login/device") {
		t.Errorf("auth login does not say where to enter the code:\n%s", errb.String())
	}
	extra := act(code)
	var exit int
	select {
	case exit = <-done:
	case <-ctx.Done():
		t.Fatalf("auth login did not finish:\n%s", errb.String())
	}
	return cliResult{code: exit, stdout: out.String(), stderr: errb.String()}, extra
}

// checkNoToken fails if any output of r shows token.
func checkNoToken(t *testing.T, what string, r cliResult, token string) {
	t.Helper()
	if token != "" && (strings.Contains(r.stdout, token) || strings.Contains(r.stderr, token)) {
		t.Errorf("%s printed the token:\nstdout:\n%s\nstderr:\n%s", what, r.stdout, r.stderr)
	}
}

// TestAuthDeviceFlow signs in through GitHub's device flow (the stand-in),
// then checks the stored token's file, status and logout.
func TestAuthDeviceFlow(t *testing.T) {
	gh := ghstub.New(t)
	path := authEnv(t, gh)

	r := runCLI(t, "auth", "status")
	if r.code != exitError || !strings.Contains(r.stderr, "not signed in") {
		t.Fatalf("auth status before login: exit %d, stderr %q; want 1 and 'not signed in'", r.code, r.stderr)
	}

	r, token := deviceLogin(t, gh, func(code string) string {
		tok, err := gh.ApproveDevice(code, "alice")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	})
	if r.code != exitOK {
		t.Fatalf("auth login: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "Signed in to GitHub as alice") || !strings.Contains(r.stdout, path) {
		t.Errorf("auth login stdout = %q, want the login and %s", r.stdout, path)
	}
	checkNoToken(t, "auth login", r, token)

	// The token alone, in a file only the user can read, in a directory
	// only the user can enter.
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no token file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	if dst, err := os.Stat(filepath.Dir(path)); err != nil || dst.Mode().Perm() != 0o700 {
		t.Errorf("token directory: %v, %v; want mode 0700", dst.Mode().Perm(), err)
	}
	if b, _ := os.ReadFile(path); string(b) != token {
		t.Errorf("token file holds %q, want exactly the token GitHub issued", b)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".token-*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
	// The CLI would now send exactly this token.
	e := &env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: os.Getenv}
	if got := e.token(); got != token {
		t.Errorf("the CLI's token after login is %q, want the stored one", got)
	}

	r = runCLI(t, "auth", "status")
	if r.code != exitOK || !strings.Contains(r.stdout, "Token in use: stored file "+path) {
		t.Errorf("auth status: exit %d, stdout %q; want the stored file in use", r.code, r.stdout)
	}
	checkNoToken(t, "auth status", r, token)

	gh.ResetCounts()
	r = runCLI(t, "auth", "status", "--verify")
	if r.code != exitOK || !strings.Contains(r.stdout, "GitHub login: alice") {
		t.Errorf("auth status --verify: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if gh.Count(ghstub.EndpointUser) != 1 || gh.LastHeader(ghstub.EndpointUser).Get("Authorization") != "Bearer "+token {
		t.Errorf("--verify did not ask GitHub's GET /user with the stored token")
	}
	checkNoToken(t, "auth status --verify", r, token)

	// An environment token wins over the stored file, and status says so.
	t.Setenv("JIT_SSH_TOKEN", "env-token-123")
	r = runCLI(t, "auth", "status")
	if !strings.Contains(r.stdout, "Token in use: environment variable JIT_SSH_TOKEN") ||
		!strings.Contains(r.stdout, "Also present (not used): stored file "+path) {
		t.Errorf("auth status with JIT_SSH_TOKEN set:\n%s", r.stdout)
	}
	checkNoToken(t, "auth status", r, "env-token-123")
	checkNoToken(t, "auth status", r, token)
	t.Setenv("JIT_SSH_TOKEN", "")

	// GitHub no longer knows the token: --verify says so, exit 3.
	gh.RemoveToken(token)
	r = runCLI(t, "auth", "status", "--verify")
	if r.code != exitDenied || !strings.Contains(r.stderr, "does not accept this token") {
		t.Errorf("auth status --verify with a revoked token: exit %d, stderr %q; want 3", r.code, r.stderr)
	}
	checkNoToken(t, "auth status --verify", r, token)

	r = runCLI(t, "auth", "logout")
	if r.code != exitOK || !strings.Contains(r.stdout, "Deleted the stored token "+path) {
		t.Errorf("auth logout: exit %d, stdout %q", r.code, r.stdout)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("token file still there after logout: %v", err)
	}
	r = runCLI(t, "auth", "status")
	if r.code != exitError {
		t.Errorf("auth status after logout: exit %d, want 1\n%s", r.code, r.stdout)
	}
	r = runCLI(t, "auth", "logout")
	if r.code != exitOK || !strings.Contains(r.stdout, "No stored token") {
		t.Errorf("second auth logout: exit %d, stdout %q", r.code, r.stdout)
	}
}

// TestAuthLoginStoresNothingOnFailure: every way the sign-in can fail
// leaves no token file and says what to do.
func TestAuthLoginStoresNothingOnFailure(t *testing.T) {
	t.Run("user cancels at GitHub", func(t *testing.T) {
		gh := ghstub.New(t)
		path := authEnv(t, gh)
		r, _ := deviceLogin(t, gh, func(code string) string {
			if err := gh.DenyDevice(code); err != nil {
				t.Fatal(err)
			}
			return ""
		})
		if r.code != exitDenied || !strings.Contains(r.stderr, "cancelled at GitHub") {
			t.Errorf("exit %d, stderr %q; want 3 and 'cancelled at GitHub'", r.code, r.stderr)
		}
		noFile(t, path)
	})

	t.Run("GitHub cannot say who the token is", func(t *testing.T) {
		gh := ghstub.New(t)
		path := authEnv(t, gh)
		var token string
		r, _ := deviceLogin(t, gh, func(code string) string {
			gh.Fail(ghstub.Fail500) // the API only; the device flow still works
			var err error
			if token, err = gh.ApproveDevice(code, "alice"); err != nil {
				t.Fatal(err)
			}
			return token
		})
		if r.code != exitError || !strings.Contains(r.stderr, "nothing was stored") || !strings.Contains(r.stderr, "server error 500") {
			t.Errorf("exit %d, stderr %q; want 1, the 500 and 'nothing was stored'", r.code, r.stderr)
		}
		checkNoToken(t, "auth login", r, token)
		noFile(t, path)
	})

	t.Run("unknown client ID", func(t *testing.T) {
		gh := ghstub.New(t)
		path := authEnv(t, gh)
		r := runCLI(t, "auth", "login", "--client-id", "Iv1.wrong")
		if r.code != exitError || !strings.Contains(r.stderr, "refused client ID Iv1.wrong") {
			t.Errorf("exit %d, stderr %q; want 1 naming the refused client ID", r.code, r.stderr)
		}
		noFile(t, path)
	})

	t.Run("the code expires", func(t *testing.T) {
		gh := ghstub.New(t)
		gh.SetDeviceTiming(1, 2*time.Second)
		path := authEnv(t, gh)
		r, _ := deviceLogin(t, gh, func(string) string { return "" }) // nobody enters it
		if r.code != exitError || !strings.Contains(r.stderr, "expired") {
			t.Errorf("exit %d, stderr %q; want 1 and 'expired'", r.code, r.stderr)
		}
		noFile(t, path)
	})

	t.Run("no client ID at all", func(t *testing.T) {
		gh := ghstub.New(t)
		path := authEnv(t, gh)
		t.Setenv("JIT_SSH_GITHUB_CLIENT_ID", "")
		r := runCLI(t, "auth", "login")
		if r.code != exitUsage || !strings.Contains(r.stderr, "--client-id") {
			t.Errorf("exit %d, stderr %q; want 2 mentioning --client-id", r.code, r.stderr)
		}
		if gh.Count(ghstub.EndpointDeviceCode) != 0 {
			t.Errorf("GitHub was asked without a client ID")
		}
		noFile(t, path)
	})
}

// TestStoredTokenOthersCanReadIsIgnored: a token file with loose
// permissions is not used.
func TestStoredTokenOthersCanReadIsIgnored(t *testing.T) {
	gh := ghstub.New(t)
	path := authEnv(t, gh)
	if err := writeToken(path, "gho_loose"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	e := &env{stdout: &bytes.Buffer{}, stderr: &stderr, getenv: os.Getenv}
	if got := e.token(); got != "" {
		t.Errorf("token() = %q from a world-readable file, want none", got)
	}
	if !strings.Contains(stderr.String(), "others can read it") || strings.Contains(stderr.String(), "gho_loose") {
		t.Errorf("warning = %q, want 'others can read it' without the token", stderr.String())
	}
}

func noFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s exists after a failed sign-in (%v)", path, err)
	}
}

// TestAuthRefusesPlainHTTPGitHub: auth login and auth status --verify send
// a GitHub token; to a GitHub URL that is plain http off loopback they send
// nothing and say to use https (the rule of the jit-ssh server's URL).
func TestAuthRefusesPlainHTTPGitHub(t *testing.T) {
	gh := ghstub.New(t)
	authEnv(t, gh)
	t.Setenv("JIT_SSH_TOKEN", "gho_secret")
	for _, args := range [][]string{
		{"auth", "login", "--github-url", "http://ghe.example.com"},
		{"auth", "login", "--api-url", "http://ghe.example.com/api/v3/"},
		{"auth", "status", "--verify", "--api-url", "http://10.0.0.1/api/v3/"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			gh.ResetCounts()
			r := runCLI(t, args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, "use https://") {
				t.Errorf("exit %d, stderr %q; want 2 and a sentence saying to use https", r.code, r.stderr)
			}
			if n := gh.Count(ghstub.EndpointUser); n != 0 {
				t.Errorf("GitHub was asked %d time(s)", n)
			}
		})
	}
}
