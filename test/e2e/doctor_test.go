package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/hostconfig"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// findingsOf decodes `doctor -o json` and returns the findings that are
// not ok, by check.
func findingsOf(t *testing.T, out string) (all []hostconfig.Finding, bad map[string]hostconfig.Finding) {
	t.Helper()
	all = jsonLines[hostconfig.Finding](t, out)
	bad = map[string]hostconfig.Finding{}
	for _, f := range all {
		if f.Status != hostconfig.StatusOK {
			bad[f.Check] = f
		}
	}
	return all, bad
}

// TestDoctorEngineerCLI runs `jit-ssh doctor` as an engineer after a real
// login, then with a token the server refuses and without an agent.
func TestDoctorEngineerCLI(t *testing.T) {
	srv := startDev(t)
	sock := testenv.StartAgent(t)
	alice := srv.as(t, "alice", sock)
	alice.ok("login", "staging")

	r := alice.ok("doctor")
	if !strings.Contains(r.Stdout, "staging certificate") || !strings.Contains(r.Stdout, "0 failed, 0 warning(s)") {
		t.Errorf("doctor after login printed:\n%s", r.Stdout)
	}
	all, bad := findingsOf(t, alice.ok("doctor", "-o", "json").Stdout)
	if len(all) < 6 || len(bad) != 0 {
		t.Errorf("doctor -o json after login: %d findings, not ok: %+v", len(all), bad)
	}

	r = srv.as(t, "mallory", sock).run("doctor", "-o", "json")
	_, bad = findingsOf(t, r.Stdout)
	if r.Code != 1 || bad["token"].Status != hostconfig.StatusFail || !strings.Contains(r.Stderr, "doctor found 1 failing check") {
		t.Errorf("doctor with a refused token: exit %d, findings %+v, stderr %q; want exit 1 and a failing token check", r.Code, bad, r.Stderr)
	}

	r = srv.as(t, "alice", "").run("doctor")
	if r.Code != 1 || !strings.Contains(r.Stdout, "FAIL  agent") || !strings.Contains(r.Stdout, `fix: start one`) {
		t.Errorf("doctor without SSH_AUTH_SOCK: exit %d, stdout:\n%s", r.Code, r.Stdout)
	}

	if r := alice.run("doctor", "--dir", "/etc/ssh/jit-ssh"); r.Code != 2 {
		t.Errorf("doctor --dir without --host: exit %d, want 2", r.Code)
	}
}

// TestDoctorHostCLI runs `jit-ssh doctor --host` against a real sshd's
// configuration: it passes on the set-up `host config` wrote, finds seeded
// problems, and passes again once they are fixed.
func TestDoctorHostCLI(t *testing.T) {
	srv := startDev(t)
	operator := srv.as(t, "nobody", "")
	dir, host := hostDir(t, operator, "staging")
	doctor := []string{"doctor", "--host", "--dir", dir, "--sshd-config", host.ConfigPath, "-o", "json"}
	caPath, krlPath := filepath.Join(dir, "ca.pub"), filepath.Join(dir, "revoked.krl")

	r := operator.run(doctor...)
	if all, bad := findingsOf(t, r.Stdout); r.Code != 0 || len(bad) != 0 || len(all) != 8 {
		t.Fatalf("doctor --host on a fresh set-up: exit %d, %d findings, not ok %+v\nstderr: %s", r.Code, len(all), bad, r.Stderr)
	}

	tests := []struct {
		name    string
		breakIt func(t *testing.T)
		fixIt   func(t *testing.T)
		check   string
	}{
		{
			name:    "CA keys world-writable",
			breakIt: func(t *testing.T) { must(t, os.Chmod(caPath, 0o666)) },
			fixIt:   func(t *testing.T) { must(t, os.Chmod(caPath, 0o644)) },
			check:   "ca-keys",
		},
		{
			name: "KRL not synced for ten minutes",
			breakIt: func(t *testing.T) {
				old := time.Now().Add(-10 * time.Minute)
				must(t, os.Chtimes(krlPath, old, old))
			},
			fixIt: func(*testing.T) { operator.ok("host", "sync", "--dir", dir) },
			check: "krl-fresh",
		},
		{
			name: "drop-in not included",
			breakIt: func(t *testing.T) {
				data, err := os.ReadFile(host.ConfigPath)
				must(t, err)
				must(t, os.WriteFile(host.ConfigPath, []byte(strings.Replace(string(data), "Include ", "#Include ", 1)), 0o600))
			},
			fixIt: func(t *testing.T) {
				data, err := os.ReadFile(host.ConfigPath)
				must(t, err)
				must(t, os.WriteFile(host.ConfigPath, []byte(strings.Replace(string(data), "#Include ", "Include ", 1)), 0o600))
			},
			check: "sshd-include",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.breakIt(t)
			r := operator.run(doctor...)
			_, bad := findingsOf(t, r.Stdout)
			f, ok := bad[tt.check]
			if r.Code != 1 || !ok || f.Status != hostconfig.StatusFail || f.Fix == "" {
				t.Errorf("doctor --host with %s: exit %d, not ok %+v; want exit 1 and a failing %s check with a fix", tt.name, r.Code, bad, tt.check)
			}
			tt.fixIt(t)
			if r := operator.run(doctor...); r.Code != 0 {
				_, bad := findingsOf(t, r.Stdout)
				t.Errorf("doctor --host after fixing %s: exit %d, not ok %+v", tt.name, r.Code, bad)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
