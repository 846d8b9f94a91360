package main

import (
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// TestUsageErrors: mistakes on the command line exit 2 (SPEC section 3)
// with one sentence that names what is wrong and the command's usage line,
// never cobra's generic wording, and nothing is sent anywhere.
func TestUsageErrors(t *testing.T) {
	t.Setenv("JIT_SSH_SERVER", "http://127.0.0.1:1") // nothing listens: a usage error must come first
	for _, tt := range []struct {
		args []string
		want []string // substrings of stderr
	}{
		{[]string{"lgoin"}, []string{`unknown command "lgoin" for "jit-ssh"`, `did you mean "login"?`, "jit-ssh --help"}},
		{[]string{"request", "lsit"}, []string{`unknown command "lsit" for "jit-ssh request"`, `"list"`}},
		{[]string{"audit", "nope"}, []string{`unknown command "nope" for "jit-ssh audit"`}},
		{[]string{"login"}, []string{"missing GROUP", "usage: jit-ssh login GROUP [flags]", "jit-ssh login --help"}},
		{[]string{"login", "staging", "prod-db"}, []string{`unexpected argument "prod-db"`, "usage: jit-ssh login GROUP"}},
		{[]string{"request", "show"}, []string{"missing ID", "usage: jit-ssh request show ID"}},
		{[]string{"request", "create"}, []string{"missing GROUP", "usage: jit-ssh request create GROUP"}},
		{[]string{"review"}, []string{"missing ID", "usage: jit-ssh review ID"}},
		{[]string{"audit", "show"}, []string{"missing SERIAL-or-KEYID"}},
		{[]string{"version", "extra"}, []string{`unexpected argument "extra"`, "usage: jit-ssh version"}},
		{[]string{"revoke", "12"}, []string{`unexpected argument "12"`}},
		{[]string{"login", "--no-such-flag", "staging"}, []string{"unknown flag: --no-such-flag"}},
	} {
		r := runCLI(t, tt.args...)
		if r.code != exitUsage {
			t.Errorf("%q: exit %d, want %d (usage)\nstderr: %s", tt.args, r.code, exitUsage, r.stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%q: stderr %q lacks %q", tt.args, r.stderr, w)
			}
		}
		if strings.Contains(r.stderr, "arg(s)") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: want one sentence of our own, got %q", tt.args, r.stderr)
		}
	}
	// A command that only groups others prints its help, as the root does.
	for _, args := range [][]string{{}, {"request"}, {"audit"}} {
		if r := runCLI(t, args...); r.code != exitOK || !strings.Contains(r.stdout, "Available Commands") {
			t.Errorf("%q: exit %d, stdout %q; want the help and 0", args, r.code, r.stdout)
		}
	}
}

func TestPositionalNames(t *testing.T) {
	for use, want := range map[string]string{
		"login GROUP":                          "GROUP",
		"create GROUP --duration D --reason R": "GROUP",
		"review ID (--approve | --request-changes | --comment | --deny) [-m BODY]": "ID",
		"revoke (--serial N | --request ID | --user U) --reason R":                 "",
		"logout [GROUP]":       "",
		"show SERIAL-or-KEYID": "SERIAL-or-KEYID",
		"version":              "",
	} {
		if got := strings.Join(positionalNames(use), " "); got != want {
			t.Errorf("positionalNames(%q) = %q, want %q", use, got, want)
		}
	}
}

// TestLoginMessages runs the CLI against a real dev server and a real
// ssh-agent: a request that needs approval needs a reason whichever command
// files it; flags a reused request cannot apply are named; a missing or
// wrong token is explained once, with the dev server's tokens.
func TestLoginMessages(t *testing.T) {
	url := startDevServer(t)
	t.Setenv("JIT_SSH_SERVER", url)
	t.Setenv("SSH_AUTH_SOCK", testenv.StartAgent(t))
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("GITHUB_TOKEN", "")
	t.Setenv("PATH", t.TempDir()) // no gh to ask for a token
	t.Setenv("JIT_SSH_TOKEN", "dev-alice")

	t.Run("a request that needs approval needs a reason", func(t *testing.T) {
		for _, args := range [][]string{
			{"login", "prod-db", "--no-wait"},
			{"login", "prod-db", "--no-wait", "--reason", "  "},
			{"request", "create", "prod-db"},
		} {
			r := runCLI(t, args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, "a reason is required: prod-db needs approval") ||
				!strings.Contains(r.stderr, "--reason") {
				t.Errorf("%q: exit %d, stderr %q; want 2 and the reason rule", args, r.code, r.stderr)
			}
		}
		if r := runCLI(t, "request", "list", "--mine", "-o", "json"); strings.Contains(r.stdout, "prod-db") {
			t.Errorf("a refused request was filed: %s", r.stdout)
		}
		// Auto-approved groups need no reason; neither command asks for one.
		if r := runCLI(t, "login", "staging"); r.code != exitOK {
			t.Errorf("login staging without a reason: exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("flags a reused request cannot apply are named", func(t *testing.T) {
		r := runCLI(t, "login", "staging", "--duration", "2h")
		if r.code != exitOK {
			t.Fatalf("login staging --duration 2h: exit %d, stderr %q", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "Note: --duration 2h0m0s not used") || !strings.Contains(r.stderr, "request cancel") {
			t.Errorf("reuse with --duration says nothing about it: %q", r.stderr)
		}
		if r := runCLI(t, "login", "staging"); strings.Contains(r.stderr, "Note:") {
			t.Errorf("a plain reuse notes something: %q", r.stderr)
		}
		if err := runCLI(t, "login", "prod-db", "--no-wait", "--reason", "INC-1: lag"); err.code != exitOK {
			t.Fatalf("filing prod-db: %+v", err)
		}
		r = runCLI(t, "login", "prod-db", "--no-wait", "--reason", "INC-2: other")
		if !strings.Contains(r.stderr, "Note: --reason not used") || !strings.Contains(r.stderr, "request edit") {
			t.Errorf("reuse of a pending request with --reason says nothing about it: %q", r.stderr)
		}
	})

	t.Run("token errors say it once and name the dev tokens", func(t *testing.T) {
		for _, tok := range []string{"", "dev-mallory"} {
			t.Setenv("JIT_SSH_TOKEN", tok)
			r := runCLI(t, "request", "list")
			if r.code != exitDenied {
				t.Errorf("token %q: exit %d, want %d", tok, r.code, exitDenied)
			}
			if n := strings.Count(r.stderr, "JIT_SSH_TOKEN"); n > 2 || strings.Count(r.stderr, "jit-ssh auth login") != 1 {
				t.Errorf("token %q: the advice repeats itself: %q", tok, r.stderr)
			}
			if !strings.Contains(r.stderr, "this is a dev server") || !strings.Contains(r.stderr, "dev-alice") {
				t.Errorf("token %q: the dev tokens are not named: %q", tok, r.stderr)
			}
			if strings.Contains(r.stderr, "dev-mallory") {
				t.Errorf("the refused token is echoed: %q", r.stderr)
			}
		}
	})
}
