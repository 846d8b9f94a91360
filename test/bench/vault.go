package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// vaultPair is a Vault dev server set up by `jit-ssh vault setup` and a
// jit-ssh server signing through it, with the request makers of the load
// straight to Vault and through jit-ssh.
type vaultPair struct {
	v        *vaultServer
	jv       *jitServer
	straight request
	viaJIT   request
}

func (p *vaultPair) stop() {
	p.jv.stop()
	p.v.stop()
}

// cpus pins the processes of a Vault comparison: Vault, jit-ssh and the
// bench's clients each to a CPU list for taskset -c, "" for no pinning.
type cpus struct{ vault, jit, clients string }

// startVaultPair starts Vault and jit-ssh in dir, pinned as pin says.
func startVaultPair(ctx context.Context, c config, dir string, keys []string, pin cpus) (*vaultPair, error) {
	vdir := filepath.Join(dir, "vault")
	if err := os.MkdirAll(vdir, 0o700); err != nil {
		return nil, err
	}
	v, err := startVault(c.vault, vdir, pin.vault)
	if err != nil {
		return nil, err
	}
	jdir := filepath.Join(dir, "jit-vault")
	if err := os.MkdirAll(jdir, 0o700); err != nil {
		v.stop()
		return nil, err
	}
	cfgPath := filepath.Join(jdir, "config.yaml")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
signer:
  type: vault
  vault: {mount: ssh, role: jit-ssh, address: %q}
identity:
  type: static
  static:
    users:
      alice: {token: dev-alice, teams: [backend]}
      carol: {token: dev-carol, teams: [security]}
auditors: [security]
# Off as in --dev: the bench measures throughput, not the per-login limits.
limits:
  requests: {per_minute: 0}
  certificates: {per_minute: 0}
  writes: {per_minute: 0}
host_groups:
  staging:
    principals: [staging]
    requesters: [backend]
    approvals_required: 0
    max_duration: 1h
    cert_ttl: 5m
    extensions: [permit-pty]
`, jdir, v.Addr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		v.stop()
		return nil, err
	}
	venv := []string{"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + v.Token}
	if _, _, _, err := runTimed(ctx, append(venv, "HOME="+jdir), c.jit, "vault", "setup", "--config", cfgPath); err != nil {
		v.stop()
		return nil, err
	}
	jv, err := startJIT(c.jit, jdir, cfgPath, venv, pin.jit)
	if err != nil {
		v.stop()
		return nil, err
	}
	p := &vaultPair{v: v, jv: jv}
	reqID, err := openGrant(ctx, jv.URL, "dev-alice")
	if err == nil {
		p.viaJIT, err = issueRequests(jv.URL, "dev-alice", reqID, keys)
	}
	if err == nil {
		p.straight, err = vaultSignRequests(v.Addr, v.Token, "ssh", "jit-ssh", reqID, keys)
	}
	if err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// vaultRounds is the outcome of alternating rounds straight to Vault and
// through jit-ssh.
type vaultRounds struct {
	raw, jit       loadResult
	cpuRaw, cpuJIT [3]float64 // CPU seconds of Vault, the jit-ssh server, the bench's clients
}

// cpuPer returns the microseconds of CPU of process k (0 Vault, 1 jit-ssh,
// 2 the clients) per operation of res.
func cpuPer(cpu [3]float64, k int, res loadResult) float64 {
	return cpu[k] * 1e6 / float64(max(res.N, 1))
}

// busy returns the fraction of one CPU that CPU seconds used over res's
// wall time.
func busy(cpuS float64, res loadResult) float64 {
	if res.Elapsed <= 0 {
		return 0
	}
	return cpuS / res.Elapsed.Seconds()
}

// runVaultRounds warms both paths up, then alternates c.rounds rounds of
// the same load straight to Vault and through jit-ssh, so drift hits both.
func runVaultRounds(c config, p *vaultPair, label string) (vaultRounds, error) {
	var out vaultRounds
	hc := newHTTPClient(c.workers)
	_ = runLoad(hc, c.workers, c.loadDur/5, 200, p.straight)
	_ = runLoad(hc, c.workers, c.loadDur/5, 201, p.viaJIT)
	for i := range c.rounds {
		m := meterCPU(p.v.pid(), p.jv.pid())
		a := runLoad(hc, c.workers, c.loadDur, 200, p.straight)
		if err := loadOK(label+"vault ssh/sign", a); err != nil {
			return out, err
		}
		for k, us := range m.perOp(1) {
			out.cpuRaw[k] += us / 1e6
		}
		m = meterCPU(p.v.pid(), p.jv.pid())
		b := runLoad(hc, c.workers, c.loadDur, 201, p.viaJIT)
		if err := loadOK(label+"jit-ssh with the Vault signer", b); err != nil {
			return out, err
		}
		for k, us := range m.perOp(1) {
			out.cpuJIT[k] += us / 1e6
		}
		out.raw, out.jit = out.raw.merge(a), out.jit.merge(b)
		step("  %sround %d: vault %.0f/s, jit-ssh %.0f/s", label, i+1, a.perSec(), b.perSec())
	}
	return out, nil
}

// measureVault runs Vault's ssh/sign straight and jit-ssh with the Vault
// signer under the same load, co-located (both servers and the clients share
// every CPU), then pinned as in production: Vault on CPU 0, jit-ssh and the
// clients on CPU 1 (taskset).
func measureVault(ctx context.Context, c config, r *results, tmp string, keys []string, stops *[]func()) error {
	p, err := startVaultPair(ctx, c, filepath.Join(tmp, "colocated"), keys, cpus{})
	if err != nil {
		return err
	}
	*stops = append(*stops, p.stop)
	res, err := runVaultRounds(c, p, "")
	p.stop()
	if err != nil {
		return err
	}
	raw, jit := res.raw, res.jit
	rawPS, jitPS := raw.perSec(), jit.perSec()
	ratio := jitPS / rawPS
	rp99, jp99 := raw.pct(0.99), jit.pct(0.99)
	r.VaultRawPerS, r.VaultJITPerS, r.VaultRatio, r.VaultRawP99MS, r.VaultJITP99MS = &rawPS, &jitPS, &ratio, &rp99, &jp99
	r.Details.VaultRounds, r.Details.VaultRawP50MS, r.Details.VaultJITP50MS = c.rounds, raw.pct(0.5), jit.pct(0.5)
	r.Details.VaultCPUUSRaw = cpuPer(res.cpuRaw, 0, raw)
	r.Details.VaultClientCPUUSRaw = cpuPer(res.cpuRaw, 2, raw)
	r.Details.VaultCPUUSViaJIT = cpuPer(res.cpuJIT, 0, jit)
	r.Details.JITServerCPUUSVault = cpuPer(res.cpuJIT, 1, jit)
	r.Details.VaultClientCPUUSJIT = cpuPer(res.cpuJIT, 2, jit)

	if why := pinnable(); why != "" {
		r.Skipped = append(r.Skipped, "vault_pinned_*: "+why)
		return nil
	}
	step("Vault pinned: Vault on CPU 0, jit-ssh and the clients on CPU 1, %d rounds of %s each", c.rounds, c.loadDur)
	pin := cpus{vault: "0", jit: "1", clients: "1"}
	p, err = startVaultPair(ctx, c, filepath.Join(tmp, "pinned"), keys, pin)
	if err != nil {
		return err
	}
	*stops = append(*stops, p.stop)
	restore, err := pinSelf(pin.clients)
	if err != nil {
		p.stop()
		return err
	}
	res, err = runVaultRounds(c, p, "pinned ")
	restore()
	p.stop()
	if err != nil {
		return err
	}
	raw, jit = res.raw, res.jit
	prawPS, pjitPS := raw.perSec(), jit.perSec()
	pratio := pjitPS / prawPS
	r.VaultPinnedRawPerS, r.VaultPinnedJITPerS, r.VaultPinnedRatio = &prawPS, &pjitPS, &pratio
	d := &r.Details
	d.VaultPinnedRawP50MS, d.VaultPinnedJITP50MS = raw.pct(0.5), jit.pct(0.5)
	d.VaultPinnedCPUUSRaw = cpuPer(res.cpuRaw, 0, raw)
	d.VaultPinnedClientCPUUSRaw = cpuPer(res.cpuRaw, 2, raw)
	d.VaultPinnedCPUUSViaJIT = cpuPer(res.cpuJIT, 0, jit)
	d.JITServerPinnedCPUUSVault = cpuPer(res.cpuJIT, 1, jit)
	d.VaultPinnedClientCPUUSJIT = cpuPer(res.cpuJIT, 2, jit)
	d.VaultPinnedBusyRaw = busy(res.cpuRaw[0], raw)
	d.VaultPinnedBusyViaJIT = busy(res.cpuJIT[0], jit)
	d.JITPinnedBusy = busy(res.cpuJIT[1]+res.cpuJIT[2], jit)
	d.Notes = append(d.Notes,
		"vault_pinned_*: Vault on CPU 0, jit-ssh and the bench's clients on CPU 1 (taskset -c), as where Vault has machines of its own; the *_busy figures are the share of their CPU each side used (CPU seconds / wall seconds)")
	return nil
}

// pinnable says why the pinned comparison cannot run, or "" when it can.
func pinnable() string {
	if runtime.NumCPU() < 2 {
		return "needs 2 CPUs"
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return "needs taskset (util-linux; tools/setup.sh bench installs it)"
	}
	return ""
}

// pinSelf pins every thread of the bench to the CPU list cpu, with one P,
// and returns what undoes it. Threads the runtime starts later inherit the
// mask from the thread that starts them.
func pinSelf(cpu string) (func(), error) {
	pid := fmt.Sprint(os.Getpid())
	out, err := exec.Command("taskset", "-c", "-p", pid).Output()
	if err != nil {
		return nil, fmt.Errorf("taskset -c -p %s: %w", pid, err)
	}
	_, was, ok := strings.Cut(strings.TrimSpace(string(out)), ": ")
	if !ok {
		return nil, fmt.Errorf("taskset -c -p %s: unexpected output %q", pid, out)
	}
	if out, err := exec.Command("taskset", "-a", "-c", "-p", cpu, pid).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("taskset -a -c -p %s %s: %w: %s", cpu, pid, err, out)
	}
	procs := runtime.GOMAXPROCS(1)
	return func() {
		runtime.GOMAXPROCS(procs)
		if out, err := exec.Command("taskset", "-a", "-c", "-p", was, pid).CombinedOutput(); err != nil {
			step("restoring the CPU affinity: %v: %s", err, out)
		}
	}, nil
}

// pinned returns bin and args run under taskset -c cpu, or unchanged for
// cpu "". taskset execs bin, so the process id is bin's.
func pinned(cpu, bin string, args []string) (string, []string) {
	if cpu == "" {
		return bin, args
	}
	return "taskset", append([]string{"-c", cpu, bin}, args...)
}
