package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// TestSSHConfigLogsInByItself: the block 'jit-ssh ssh-config' prints,
// used as the real ssh's config, makes plain 'ssh HOST' get the certificate
// by itself. With an empty agent ssh runs 'jit-ssh login --ensure staging',
// which logs in (its progress on ssh's stderr, nothing in ssh's stdout) and
// the session works; several ssh at once share one login. With the
// certificate in the agent the server is not needed at all: stopped, ssh
// still gets in. Once the certificate is gone, the stopped server is
// missed and ssh fails with jit-ssh's reason; a host the block excludes
// never runs jit-ssh.
func TestSSHConfigLogsInByItself(t *testing.T) {
	srv := startDev(t)
	sock := testenv.StartAgent(t)
	alice := srv.as(t, "alice", sock)
	host := hostFor(t, alice, "staging")
	sshBin := testenv.RequireBinary(t, "ssh")

	block := alice.ok("ssh-config", "--group", "staging", "--hosts", "*.staging.example.test !bastion.staging.example.test").Stdout
	bin := jitBinary(t)
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	if !strings.Contains(block, `exec "`+bin+` login --ensure staging --server `+srv.URL+`"`) {
		t.Fatalf("ssh-config block does not run this binary by its absolute path with the server:\n%s", block)
	}
	// The block first, as the README says; then what points every test
	// host name at this sshd and keeps ssh off the machine's own files.
	dir := testenv.TempDir(t)
	cfg := filepath.Join(dir, "ssh_config")
	rest := strings.Join([]string{
		"Host *.example.test",
		"    Hostname 127.0.0.1",
		"    Port " + strconv.Itoa(host.Port),
		"    User " + testenv.Login(t),
		"    StrictHostKeyChecking no",
		"    UserKnownHostsFile /dev/null",
		"    GlobalKnownHostsFile /dev/null",
		"    BatchMode yes",
		"    IdentityFile none",
		"    PreferredAuthentications publickey",
		"    ConnectTimeout 5",
		"    LogLevel ERROR",
		"",
	}, "\n")
	if err := os.WriteFile(cfg, []byte(block+"\n"+rest), 0o600); err != nil {
		t.Fatal(err)
	}
	home := testenv.TempDir(t)
	ssh := func(target string) (stdout, stderr string, err error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, sshBin, "-F", cfg, target, "echo", "hello-from-"+target)
		// What an engineer's shell has: the agent, the token, a shell for
		// ssh's exec. The server comes from the block's --server.
		cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + home, "SHELL=/bin/sh",
			"SSH_AUTH_SOCK=" + sock, "JIT_SSH_TOKEN=" + alice.token,
		}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err = cmd.Run()
		return out.String(), errb.String(), err
	}

	// No certificate: ssh has jit-ssh log in, then gets in with it.
	stdout, stderr, err := ssh("db1.staging.example.test")
	if err != nil || stdout != "hello-from-db1.staging.example.test\n" {
		t.Fatalf("first ssh: err=%v stdout=%q (want only the remote command's output) stderr=%q\nsshd log:\n%s", err, stdout, stderr, host.Log())
	}
	if !strings.Contains(stderr, "approved by policy") || !strings.Contains(stderr, "loaded into ssh-agent") {
		t.Errorf("first ssh: stderr %q lacks the login's progress", stderr)
	}
	if strings.Contains(stderr, "Now run: ssh") {
		t.Errorf("first ssh: stderr %q tells the user to run ssh, which is running", stderr)
	}
	if n := len(auditCerts(t, srv, "--user", "alice")); n != 1 {
		t.Fatalf("after the first ssh alice has %d certificates, want 1", n)
	}

	// Four ssh at once with an empty agent (pssh, Ansible): one login
	// between them, and all get in.
	alice.ok("logout", "staging")
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			target := "par" + strconv.Itoa(i) + ".staging.example.test"
			stdout, stderr, err := ssh(target)
			if err == nil && stdout != "hello-from-"+target+"\n" {
				err = errors.New("stdout " + strconv.Quote(stdout))
			}
			if err != nil {
				err = fmt.Errorf("%s: %w (stderr %q)", target, err, stderr)
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("parallel ssh: %v", err)
		}
	}
	if n := len(auditCerts(t, srv, "--user", "alice")); n != 2 {
		t.Errorf("after four parallel ssh with an empty agent alice has %d certificates, want 2 (one more)", n)
	}

	// With the certificate held, the server is not asked: stopped, ssh
	// still gets in, and jit-ssh prints nothing.
	srv.Stop(t)
	stdout, stderr, err = ssh("db2.staging.example.test")
	if err != nil || stdout != "hello-from-db2.staging.example.test\n" || stderr != "" {
		t.Fatalf("ssh with the certificate held and the server stopped: err=%v stdout=%q stderr=%q (want no output from jit-ssh)\nsshd log:\n%s", err, stdout, stderr, host.Log())
	}

	// With the agent emptied, an excluded host does not run jit-ssh: no
	// login, so the host refuses, and jit-ssh says nothing.
	alice.ok("logout", "staging")
	if _, stderr, err = ssh("bastion.staging.example.test"); err == nil || strings.Contains(stderr, "jit-ssh") {
		t.Errorf("ssh to the excluded host with an empty agent: err=%v stderr=%q; want a refusal without jit-ssh running", err, stderr)
	}

	// Without the certificate the stopped server is needed and missed:
	// ssh fails, and says why through jit-ssh.
	stdout, stderr, err = ssh("db3.staging.example.test")
	if err == nil || stdout != "" || !strings.Contains(stderr, "jit-ssh: ") {
		t.Errorf("ssh with no certificate and the server stopped: err=%v stdout=%q stderr=%q; want a failure that names jit-ssh's error", err, stdout, stderr)
	}
}
