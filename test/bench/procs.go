package main

import (
	"bufio"
	"context"
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
	"syscall"
	"time"
)

// proc is a child process the bench started and stops at the end.
type proc struct {
	name   string
	cmd    *exec.Cmd
	done   chan struct{}
	logPth string
}

// startProc starts bin with args and env (added to a minimal environment),
// its output in logPath. The child dies with the bench (Pdeathsig).
func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), logPth: logPath}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// pid returns the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process (SIGTERM, then SIGKILL after 5s) and waits.
func (p *proc) stop() {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logPth)
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP polls url until it answers 200, the process exits or timeout.
func waitHTTP(p *proc, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.exited() {
			return fmt.Errorf("%s exited before it was ready:\n%s", p.name, p.tail())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s within %s:\n%s", p.name, url, timeout, p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// jitServer is a running `jit-ssh serve`.
type jitServer struct {
	*proc
	URL string
	Dir string
}

// startJIT runs `jit-ssh serve --dev` (config == "") or with a config file,
// on a free port and the data dir dir, pinned to the CPU list cpu ("": not
// pinned).
func startJIT(bin, dir, config string, env []string, cpu string) (*jitServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // a free port can be taken between probing and binding
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		listen := "127.0.0.1:" + strconv.Itoa(port)
		args := []string{"serve", "--listen", listen, "--data-dir", dir}
		if config == "" {
			args = append(args, "--dev")
		} else {
			args = append(args, "--config", config)
		}
		pbin, pargs := pinned(cpu, bin, args)
		p, err := startProc("jit-ssh serve", filepath.Join(dir, "serve.log"), append([]string{"HOME=" + dir}, env...), pbin, pargs...)
		if err != nil {
			return nil, err
		}
		url := "http://" + listen
		if lastErr = waitHTTP(p, url+"/healthz", 30*time.Second); lastErr == nil {
			return &jitServer{proc: p, URL: url, Dir: dir}, nil
		}
		p.stop()
	}
	return nil, lastErr
}

// vaultServer is a running Vault dev server.
type vaultServer struct {
	*proc
	Addr  string
	Token string
}

// startVault runs `vault server -dev` on a free port, in memory, as
// test/vaulttest does (that package needs a testing.TB), pinned to the CPU
// list cpu ("": not pinned).
func startVault(bin, dir, cpu string) (*vaultServer, error) {
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return nil, fmt.Errorf("no Vault binary at %s; run make vault once (it is reused afterwards)", bin)
	}
	token := "root-bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		env := []string{"HOME=" + dir, "TMPDIR=" + dir, "VAULT_DISABLE_MLOCK=true", "CHECKPOINT_DISABLE=1"}
		pbin, pargs := pinned(cpu, bin, []string{"server", "-dev",
			"-dev-root-token-id=" + token, "-dev-listen-address=127.0.0.1:" + strconv.Itoa(port),
			"-dev-no-store-token", "-log-level=warn"})
		p, err := startProc("vault", filepath.Join(dir, "vault.log"), env, pbin, pargs...)
		if err != nil {
			return nil, err
		}
		addr := "http://127.0.0.1:" + strconv.Itoa(port)
		if lastErr = waitHTTP(p, addr+"/v1/sys/health", 60*time.Second); lastErr == nil {
			return &vaultServer{proc: p, Addr: addr, Token: token}, nil
		}
		p.stop()
	}
	return nil, lastErr
}

// startAgent runs a real ssh-agent on a socket in dir.
func startAgent(dir string) (*proc, string, error) {
	bin, err := exec.LookPath("ssh-agent")
	if err != nil {
		return nil, "", errors.New("ssh-agent not found: install openssh-client")
	}
	sock := filepath.Join(dir, "agent.sock")
	p, err := startProc("ssh-agent", filepath.Join(dir, "agent.log"), nil, bin, "-D", "-a", sock)
	if err != nil {
		return nil, "", err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return p, sock, nil
		}
		if p.exited() || time.Now().After(deadline) {
			p.stop()
			return nil, "", fmt.Errorf("ssh-agent did not come up:\n%s", p.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rssMB reads a process's resident set (VmRSS) or its peak (VmHWM) in MiB.
func rssMB(pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuSeconds returns the user+system CPU time a process has used so far
// (/proc/PID/stat, in clock ticks of 1/100 s).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields count from its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

// selfCPUSeconds returns the bench process's own CPU time (the clients).
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// cpuMeter measures the CPU that processes (and the bench) spend in a
// phase, per operation.
type cpuMeter struct {
	pids  []int
	start []float64
	self  float64
}

func meterCPU(pids ...int) *cpuMeter {
	m := &cpuMeter{pids: pids, self: selfCPUSeconds()}
	for _, p := range pids {
		m.start = append(m.start, cpuSeconds(p))
	}
	return m
}

// perOp returns microseconds of CPU per operation for each process, then
// for the bench itself.
func (m *cpuMeter) perOp(ops int) []float64 {
	out := make([]float64, 0, len(m.pids)+1)
	if ops <= 0 {
		ops = 1
	}
	for i, p := range m.pids {
		out = append(out, (cpuSeconds(p)-m.start[i])*1e6/float64(ops))
	}
	return append(out, (selfCPUSeconds()-m.self)*1e6/float64(ops))
}
