package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/test/testenv"
)

func sshConfigEnv(vars map[string]string) (*env, *bytes.Buffer) {
	var out bytes.Buffer
	return &env{stdout: &out, stderr: &out, getenv: func(k string) string { return vars[k] }}, &out
}

func fixedExecutable(p string) func() (string, error) {
	return func() (string, error) { return p, nil }
}

// The block: the group's patterns joined into one Match host list, this
// binary by its absolute path, the server it was given, and the agent
// advice.
func TestSSHConfigRender(t *testing.T) {
	o := &sshConfigOptions{
		group:      "prod-db",
		hosts:      []string{"*.prod.example.com !bastion.prod.example.com", "db-replica,10.0.0.?"},
		executable: fixedExecutable("/usr/local/bin/jit-ssh"),
	}
	e, _ := sshConfigEnv(nil)
	got, err := o.render(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nMatch host \"*.prod.example.com,!bastion.prod.example.com,db-replica,10.0.0.?\" exec \"/usr/local/bin/jit-ssh login --ensure prod-db\"\n",
		"\n    IdentityAgent SSH_AUTH_SOCK\n",
		"\n    IdentitiesOnly no\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("block lacks %q:\n%s", want, got)
		}
	}
	for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		if trimmed := strings.TrimSpace(line); trimmed != "" && !strings.HasPrefix(trimmed, "#") &&
			!strings.HasPrefix(line, "Match ") && !strings.HasPrefix(line, "    ") {
			t.Errorf("line %q is neither a comment, the Match line nor an indented option", line)
		}
	}

	e, _ = sshConfigEnv(map[string]string{"JIT_SSH_SERVER": "https://jit-ssh.example.com:8443/base"})
	got, err = o.render(e)
	if err != nil || !strings.Contains(got, `exec "/usr/local/bin/jit-ssh login --ensure prod-db --server https://jit-ssh.example.com:8443/base"`) {
		t.Errorf("with JIT_SSH_SERVER: err %v, block\n%s\nwant the server on the exec line", err, got)
	}
	e.server = "http://127.0.0.1:7443"
	if got, err = o.render(e); err != nil || !strings.Contains(got, "--server http://127.0.0.1:7443\"") {
		t.Errorf("--server wins over JIT_SSH_SERVER: err %v, block\n%s", err, got)
	}
}

// Nothing unchecked reaches the ssh_config text: every value that could
// end the quoted exec, start a comment, break the line, expand a % token
// or reach the shell is refused with a usage error naming it.
func TestSSHConfigRefuses(t *testing.T) {
	good := sshConfigOptions{group: "staging", hosts: []string{"*.staging.example.com"}, executable: fixedExecutable("/usr/local/bin/jit-ssh")}
	for _, tt := range []struct {
		name   string
		change func(o *sshConfigOptions, vars map[string]string)
		want   string
	}{
		{"group with a space", func(o *sshConfigOptions, _ map[string]string) { o.group = "prod db" }, "not a host group name"},
		{"group with a quote", func(o *sshConfigOptions, _ map[string]string) { o.group = `prod"` }, "not a host group name"},
		{"group in capitals", func(o *sshConfigOptions, _ map[string]string) { o.group = "Prod" }, "not a host group name"},
		{"group with a line break", func(o *sshConfigOptions, _ map[string]string) { o.group = "prod\nHost *" }, "not a host group name"},
		{"group with a percent", func(o *sshConfigOptions, _ map[string]string) { o.group = "prod%h" }, "not a host group name"},
		{"pattern with a tab", func(o *sshConfigOptions, _ map[string]string) { o.hosts = []string{"a\tb"} }, "a tab"},
		{"pattern with a line break", func(o *sshConfigOptions, _ map[string]string) { o.hosts = []string{"a\nIdentityAgent /tmp/x"} }, "a line break"},
		{"pattern with a double quote", func(o *sshConfigOptions, _ map[string]string) { o.hosts = []string{`a" exec "id`} }, `'"'`},
		{"pattern with a single quote", func(o *sshConfigOptions, _ map[string]string) { o.hosts = []string{"a'b"} }, `"'"`},
		{"pattern with a comment", func(o *sshConfigOptions, _ map[string]string) { o.hosts = []string{"a#b"} }, "'#'"},
		{"pattern with a percent", func(o *sshConfigOptions, _ map[string]string) { o.hosts = []string{"%h"} }, "'%'"},
		{"pattern with a backslash", func(o *sshConfigOptions, _ map[string]string) { o.hosts = []string{`a\b`} }, `'\'`},
		{"pattern with a control character", func(o *sshConfigOptions, _ map[string]string) { o.hosts = []string{"a\x1bb"} }, "control character 0x1b"},
		{"pattern with non-ASCII", func(o *sshConfigOptions, _ map[string]string) { o.hosts = []string{"bücher.example"} }, "non-ASCII"},
		{"pattern with ! inside", func(o *sshConfigOptions, _ map[string]string) { o.hosts = []string{"a!b"} }, "'!' may only start"},
		{"bare !", func(o *sshConfigOptions, _ map[string]string) { o.hosts = []string{"!"} }, "empty after '!'"},
		{"exclusions only", func(o *sshConfigOptions, _ map[string]string) { o.hosts = []string{"!a !b"} }, "would match none"},
		{"no pattern", func(o *sshConfigOptions, _ map[string]string) { o.hosts = []string{" , "} }, "names no host pattern"},
		{"pattern too long", func(o *sshConfigOptions, _ map[string]string) { o.hosts = []string{strings.Repeat("a", 256)} }, "longer than 255"},
		{"relative binary", func(o *sshConfigOptions, _ map[string]string) { o.executable = fixedExecutable("bin/jit-ssh") }, "not absolute"},
		{"binary path with a space", func(o *sshConfigOptions, _ map[string]string) {
			o.executable = fixedExecutable("/opt/my tools/jit-ssh")
		}, "a space"},
		{"binary path with a quote", func(o *sshConfigOptions, _ map[string]string) { o.executable = fixedExecutable(`/opt/x"/jit-ssh`) }, `'"'`},
		{"binary path with a percent", func(o *sshConfigOptions, _ map[string]string) { o.executable = fixedExecutable("/opt/%h/jit-ssh") }, "'%'"},
		{"binary path with a command", func(o *sshConfigOptions, _ map[string]string) { o.executable = fixedExecutable("/opt/$(id)/jit-ssh") }, "'$'"},
		{"binary path with a semicolon", func(o *sshConfigOptions, _ map[string]string) { o.executable = fixedExecutable("/opt/a;b/jit-ssh") }, "';'"},
		{"binary path with a line break", func(o *sshConfigOptions, _ map[string]string) { o.executable = fixedExecutable("/opt/a\nb/jit-ssh") }, "a line break"},
		{"no binary path", func(o *sshConfigOptions, _ map[string]string) {
			o.executable = func() (string, error) { return "", errors.New("no /proc") }
		}, "cannot find the path"},
		{"server URL with a query", func(_ *sshConfigOptions, v map[string]string) {
			v["JIT_SSH_SERVER"] = "https://jit.example.com/?a=1&b=2"
		}, "'?'"},
		{"server URL with a percent", func(_ *sshConfigOptions, v map[string]string) { v["JIT_SSH_SERVER"] = "https://jit.example.com/%68" }, "'%'"},
		{"server URL not http", func(_ *sshConfigOptions, v map[string]string) { v["JIT_SSH_SERVER"] = "ftp://jit.example.com" }, "not an http(s) URL"},
		{"server URL plain http off loopback", func(_ *sshConfigOptions, v map[string]string) { v["JIT_SSH_SERVER"] = "http://jit.example.com" }, "plain http"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			vars := map[string]string{}
			tt.change(&o, vars)
			e, out := sshConfigEnv(vars)
			got, err := o.render(e)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("render = %q, %v; want an error with %q", got, err, tt.want)
			}
			if got != "" || out.Len() != 0 {
				t.Errorf("render printed %q / returned %q on refusal", out.String(), got)
			}
		})
	}
}

// The command refuses missing flags and bad input as usage errors (exit
// 2) and prints nothing to stdout then.
func TestSSHConfigUsage(t *testing.T) {
	t.Setenv("JIT_SSH_SERVER", "")
	for _, args := range [][]string{
		{"ssh-config"},
		{"ssh-config", "--group", "staging"},
		{"ssh-config", "--hosts", "*.example.com"},
		{"ssh-config", "--group", "staging", "--hosts", "a#b"},
		{"ssh-config", "--group", "staging", "--hosts", "a", "extra"},
	} {
		r := runCLI(t, args...)
		if r.code != exitUsage || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2, no block, one sentence", args, r.code, r.stdout, r.stderr)
		}
	}
}

// OpenSSH reads the block as meant: for a named host it runs the exec
// command (here a stand-in for jit-ssh that succeeds and records its
// arguments) and applies the options; for an excluded or another host it
// runs nothing and applies nothing.
func TestSSHConfigReadByOpenSSH(t *testing.T) {
	ssh := testenv.RequireBinary(t, "ssh")
	dir := t.TempDir()
	record := filepath.Join(dir, "ran")
	stub := filepath.Join(dir, "jit-ssh")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\necho \"$@\" >> "+record+"\n"), 0o700); err != nil { //nolint:gosec // a test script
		t.Fatal(err)
	}
	o := &sshConfigOptions{group: "staging", hosts: []string{"*.staging.example.test !bastion.staging.example.test"}, executable: fixedExecutable(stub)}
	e, _ := sshConfigEnv(nil)
	block, err := o.render(e)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(cfg, []byte(block+"Host *\n    IdentitiesOnly yes\n    IdentityAgent none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		host    string
		matched bool
	}{
		{"db1.staging.example.test", true},
		{"bastion.staging.example.test", false},
		{"db1.prod.example.test", false},
	} {
		_ = os.Remove(record)
		cmd := exec.Command(ssh, "-F", cfg, "-G", tt.host)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "SHELL=/bin/sh"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ssh -G %s: %v\n%s", tt.host, err, out)
		}
		ran, _ := os.ReadFile(record)
		wantRan, wantAgent, wantOnly := "", "identityagent none", "identitiesonly yes"
		if tt.matched {
			wantRan, wantAgent, wantOnly = "login --ensure staging\n", "identityagent SSH_AUTH_SOCK", "identitiesonly no"
		}
		if string(ran) != wantRan {
			t.Errorf("%s: ssh ran jit-ssh with %q, want %q", tt.host, ran, wantRan)
		}
		for _, want := range []string{wantAgent, wantOnly} {
			if !strings.Contains(string(out), "\n"+want+"\n") {
				t.Errorf("%s: ssh -G lacks %q:\n%s", tt.host, want, out)
			}
		}
	}
}
