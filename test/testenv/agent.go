package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/agent"
)

// startTimeout bounds how long StartAgent and StartSSHD wait for their
// process to answer.
const startTimeout = 10 * time.Second

// StartAgent starts a real `ssh-agent -D -a <sock>` and returns the socket
// path once the agent answers a List request. The agent is killed at
// cleanup.
func StartAgent(t testing.TB) string {
	t.Helper()
	bin := RequireBinary(t, "ssh-agent")
	dir := TempDir(t)
	sock := filepath.Join(dir, "agent.sock")
	logPath := filepath.Join(dir, "ssh-agent.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer logFile.Close()

	cmd := exec.Command(bin, "-D", "-a", sock)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: starting ssh-agent: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a killed process is of no interest
		close(done)
	}()
	t.Cleanup(func() { stop(cmd, done) })

	deadline := time.Now().Add(startTimeout)
	for {
		if agentAnswers(sock) {
			return sock
		}
		select {
		case <-done:
			t.Fatalf("testenv: ssh-agent exited before answering on %s:\n%s", sock, readFile(logPath))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: ssh-agent did not answer on %s within %v:\n%s", sock, startTimeout, readFile(logPath))
		}
	}
}

func agentAnswers(sock string) bool {
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	_, err = agent.NewClient(conn).List()
	return err == nil
}

// stop ends a process this package started: SIGTERM to its process group,
// then SIGKILL if it has not exited after a few seconds. done is closed
// when cmd.Wait has returned.
func stop(cmd *exec.Cmd, done <-chan struct{}) {
	select {
	case <-done:
		return // already exited and reaped; its pid may belong to someone else now
	default:
	}
	pid := cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-done
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}
