package hostconfig

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// doctorSetup writes correct host files and an sshd_config that Includes
// the drop-in first (as Debian's does), with its own host key.
func doctorSetup(t *testing.T) (Files, DoctorOptions) {
	t.Helper()
	f := validFiles(t)
	if _, err := Write(f); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp("", "jit-doctor-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	hostKey := filepath.Join(tmp, "ssh_host_ed25519_key")
	if err := writeHostKey(hostKey); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(tmp, "sshd_config")
	writeSSHDConfig(t, cfg, "Include "+f.DropInPath(), "HostKey "+hostKey, "PidFile none", "UsePAM no")
	return f, DoctorOptions{Dir: f.Dir, SSHDConfig: cfg, SSHD: testenv.RequireBinary(t, "sshd")}
}

func writeSSHDConfig(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sshdConfigLines returns the sshd_config's lines without the one starting
// with drop.
func sshdConfigLines(t *testing.T, path, drop string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if drop == "" || !strings.HasPrefix(l, drop) {
			out = append(out, l)
		}
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDoctorHost(t *testing.T) {
	testenv.EnsurePrivsepDir(t)
	allChecks := []string{"dir", "drop-in", "ca-keys", "principals", "krl", "krl-fresh", "sshd-t", "sshd-include"}
	tests := []struct {
		name      string
		breakIt   func(t *testing.T, f Files, o *DoctorOptions)
		wantCheck string // "" : every check passes
		wantMsg   string
	}{
		{name: "correct set-up", breakIt: func(*testing.T, Files, *DoctorOptions) {}},
		{
			name: "drop-in not included",
			breakIt: func(t *testing.T, _ Files, o *DoctorOptions) {
				writeSSHDConfig(t, o.SSHDConfig, sshdConfigLines(t, o.SSHDConfig, "Include")...)
			},
			wantCheck: "sshd-include", wantMsg: "does not include",
		},
		{
			name: "another TrustedUserCAKeys first",
			breakIt: func(t *testing.T, _ Files, o *DoctorOptions) {
				writeSSHDConfig(t, o.SSHDConfig, append([]string{"TrustedUserCAKeys /etc/ssh/other_ca.pub"}, sshdConfigLines(t, o.SSHDConfig, "")...)...)
			},
			wantCheck: "sshd-include", wantMsg: "TrustedUserCAKeys is /etc/ssh/other_ca.pub",
		},
		{
			name: "sshd_config invalid",
			breakIt: func(t *testing.T, _ Files, o *DoctorOptions) {
				writeSSHDConfig(t, o.SSHDConfig, append(sshdConfigLines(t, o.SSHDConfig, ""), "PubkeyAuthentication maybe")...)
			},
			wantCheck: "sshd-t", wantMsg: "maybe",
		},
		{
			name:      "sshd_config missing",
			breakIt:   func(_ *testing.T, _ Files, o *DoctorOptions) { o.SSHDConfig = "/nonexistent/sshd_config" },
			wantCheck: "sshd-t", wantMsg: "cannot read /nonexistent/sshd_config",
		},
		{
			name:      "directory group-writable",
			breakIt:   func(t *testing.T, f Files, _ *DoctorOptions) { must(t, os.Chmod(f.Dir, 0o775)) },
			wantCheck: "dir", wantMsg: "writable by group or others (mode 0775)",
		},
		{
			name:      "directory missing",
			breakIt:   func(t *testing.T, f Files, _ *DoctorOptions) { must(t, os.RemoveAll(f.Dir)) },
			wantCheck: "dir", wantMsg: "no such file",
		},
		{
			name:      "CA keys world-writable",
			breakIt:   func(t *testing.T, f Files, _ *DoctorOptions) { must(t, os.Chmod(f.CAKeysPath(), 0o666)) },
			wantCheck: "ca-keys", wantMsg: "writable by group or others",
		},
		{
			name: "CA keys owned by someone else",
			breakIt: func(t *testing.T, f Files, o *DoctorOptions) {
				if os.Geteuid() == 0 {
					must(t, os.Chown(f.CAKeysPath(), 65534, 65534))
					return
				}
				other := os.Geteuid() + 1 // our files are then someone else's
				o.UID = &other
			},
			wantCheck: "ca-keys", wantMsg: "owned by uid",
		},
		{
			name: "CA keys empty",
			breakIt: func(t *testing.T, f Files, _ *DoctorOptions) {
				must(t, os.WriteFile(f.CAKeysPath(), []byte("# none\n"), 0o644))
			},
			wantCheck: "ca-keys", wantMsg: "holds no CA key",
		},
		{
			name: "CA keys garbage",
			breakIt: func(t *testing.T, f Files, _ *DoctorOptions) {
				must(t, os.WriteFile(f.CAKeysPath(), []byte("<html>oops</html>\n"), 0o644))
			},
			wantCheck: "ca-keys", wantMsg: "line 1 is not a public key",
		},
		{
			name:      "drop-in missing",
			breakIt:   func(t *testing.T, f Files, _ *DoctorOptions) { must(t, os.Remove(f.DropInPath())) },
			wantCheck: "drop-in", wantMsg: "no such file",
		},
		{
			name:      "principals file empty",
			breakIt:   func(t *testing.T, f Files, _ *DoctorOptions) { must(t, os.WriteFile(f.PrincipalsPath(), nil, 0o644)) },
			wantCheck: "principals", wantMsg: "is empty",
		},
		{
			name:      "no principals file",
			breakIt:   func(t *testing.T, f Files, _ *DoctorOptions) { must(t, os.Remove(f.PrincipalsPath())) },
			wantCheck: "principals", wantMsg: "has no principals file",
		},
		{
			name:      "KRL missing",
			breakIt:   func(t *testing.T, f Files, _ *DoctorOptions) { must(t, os.Remove(f.KRLPath())) },
			wantCheck: "krl", wantMsg: "missing: sshd refuses every certificate",
		},
		{
			name: "KRL garbage",
			breakIt: func(t *testing.T, f Files, _ *DoctorOptions) {
				must(t, os.WriteFile(f.KRLPath(), []byte("garbage"), 0o644))
			},
			wantCheck: "krl", wantMsg: "not a usable KRL",
		},
		{
			name: "KRL not synced for a while",
			breakIt: func(t *testing.T, f Files, _ *DoctorOptions) {
				old := time.Now().Add(-10 * time.Minute)
				must(t, os.Chtimes(f.KRLPath(), old, old))
			},
			wantCheck: "krl-fresh", wantMsg: "last synced 10m0s ago (at most 3m0s allowed)",
		},
		{
			name: "KRL older than --max-krl-age",
			breakIt: func(_ *testing.T, _ Files, o *DoctorOptions) {
				o.MaxKRLAge = time.Minute
				o.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
			},
			wantCheck: "krl-fresh", wantMsg: "at most 1m0s allowed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, o := doctorSetup(t)
			tt.breakIt(t, f, &o)
			findings := Doctor(t.Context(), o)
			var checks []string
			var found bool
			for _, fi := range findings {
				t.Logf("%-4s %-12s %s (fix: %s)", fi.Status, fi.Check, fi.Message, fi.Fix)
				checks = append(checks, fi.Check)
				if fi.Status != StatusOK && fi.Fix == "" {
					t.Errorf("finding %+v says nothing about how to fix it", fi)
				}
				if tt.wantCheck == "" {
					if fi.Status != StatusOK {
						t.Errorf("correct set-up: %s: %s %s", fi.Check, fi.Status, fi.Message)
					}
					continue
				}
				if fi.Check == tt.wantCheck && fi.Status == StatusFail && strings.Contains(fi.Message, tt.wantMsg) {
					found = true
				}
			}
			if tt.wantCheck == "" {
				for _, c := range allChecks {
					if !slices.Contains(checks, c) {
						t.Errorf("correct set-up: check %s did not run (ran %v)", c, checks)
					}
				}
			} else if !found {
				t.Errorf("no failing %s finding saying %q", tt.wantCheck, tt.wantMsg)
			}
		})
	}
}

func TestOwnerOK(t *testing.T) {
	tests := []struct {
		owner, uid int
		want       bool
	}{
		{0, 0, true},
		{0, 1000, true},
		{1000, 1000, true},
		{1000, 0, false},
		{1001, 1000, false},
	}
	for _, tt := range tests {
		if got := ownerOK(tt.owner, tt.uid); got != tt.want {
			t.Errorf("ownerOK(owner %d, running as %d) = %v, want %v", tt.owner, tt.uid, got, tt.want)
		}
	}
}
