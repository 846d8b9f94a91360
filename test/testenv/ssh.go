package testenv

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// sshTimeout bounds one SSH call.
const sshTimeout = 30 * time.Second

// Client runs the real ssh client against 127.0.0.1 with keys from one
// ssh-agent only: no config file, no identity files, no known_hosts, and
// HOME in a temporary directory. It is safe for concurrent use, so
// benchmarks can share one.
type Client struct {
	// Bin is the path of the ssh binary.
	Bin string
	// Sock is the SSH_AUTH_SOCK of the agent holding the key and certificate.
	Sock string
	// Port is the sshd port on 127.0.0.1.
	Port int
	// Login is the remote user.
	Login string
	// Home is the HOME ssh runs with.
	Home string
}

// NewClient returns a Client for the agent at sock, the sshd on port, and
// the remote user login.
func NewClient(t testing.TB, sock string, port int, login string) *Client {
	t.Helper()
	return &Client{
		Bin:   RequireBinary(t, "ssh"),
		Sock:  sock,
		Port:  port,
		Login: login,
		Home:  TempDir(t),
	}
}

// Command returns the ssh command that runs command on the server, bound
// to ctx. Its arguments are
//
//	ssh -F none -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
//	    -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes -o IdentitiesOnly=no
//	    -o IdentityFile=none -o IdentityAgent=<sock> -o PreferredAuthentications=publickey
//	    -o ConnectTimeout=5 -o LogLevel=ERROR -p <port> <login>@127.0.0.1 <command...>
//
// with an environment of only PATH, HOME and SSH_AUTH_SOCK. -F none keeps
// ssh from reading any config and from creating ~/.ssh; ssh takes ~ from the
// password database, not HOME, so IdentityFile=none is what keeps the
// user's own keys out.
func (c *Client) Command(ctx context.Context, command ...string) *exec.Cmd {
	args := []string{
		"-F", "none",
		"-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=no",
		"-o", "IdentityFile=none",
		"-o", "IdentityAgent=" + c.Sock,
		"-o", "PreferredAuthentications=publickey",
		"-o", "ConnectTimeout=5",
		"-o", "LogLevel=ERROR",
		"-p", strconv.Itoa(c.Port),
		c.Login + "@127.0.0.1",
	}
	args = append(args, command...)
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + c.Home,
		"SSH_AUTH_SOCK=" + c.Sock,
	}
	cmd.WaitDelay = time.Second
	return cmd
}

// Run runs command on the server and returns its stdout and stderr. err is
// non-nil when ssh fails, for example an *exec.ExitError with exit status
// 255 and "Permission denied (publickey)" in stderr when sshd refuses the
// certificate.
func (c *Client) Run(ctx context.Context, command ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, sshTimeout)
	defer cancel()
	var outBuf, errBuf bytes.Buffer
	cmd := c.Command(ctx, command...)
	cmd.Stdout = &outBuf
	cmd.Stderr = &errBuf
	err = cmd.Run()
	return outBuf.String(), errBuf.String(), err
}

// SSH runs command as login on the sshd at 127.0.0.1:port with the real
// ssh client, authenticating only with the keys of the agent at sock (see
// Client.Command for the exact options). It is bounded by the test's
// context and a 30s timeout.
func SSH(t testing.TB, sock string, port int, login string, command ...string) (stdout, stderr string, err error) {
	t.Helper()
	return NewClient(t, sock, port, login).Run(t.Context(), command...)
}
