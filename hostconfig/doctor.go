package hostconfig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Status is the outcome of one doctor check.
type Status string

// Outcomes of a check. Only StatusFail makes `jit-ssh doctor` exit non-zero.
const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn"
	StatusFail Status = "fail"
)

// Finding is one result of a doctor check: what was found and, unless it
// is fine, how to fix it.
type Finding struct {
	// Check names the check, stable for scripts: "krl-fresh", "sshd-include", ...
	Check   string `json:"check"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	// Fix says what to run or change; empty when Status is StatusOK.
	Fix string `json:"fix,omitempty"`
}

// DefaultSSHDConfig is the sshd_config `jit-ssh doctor --host` reads.
const DefaultSSHDConfig = "/etc/ssh/sshd_config"

// DefaultMaxKRLAge is how old the last good sync may be before doctor
// fails: two periods of the shipped timer (1 minute plus up to 15 seconds
// of random delay) with room for one slow run.
const DefaultMaxKRLAge = 3 * time.Minute

// DoctorOptions says which host set-up Doctor checks.
type DoctorOptions struct {
	// Dir is the host files directory (`jit-ssh host config --dir`).
	Dir string
	// SSHDConfig is the sshd_config the running sshd reads; empty means
	// DefaultSSHDConfig.
	SSHDConfig string
	// SSHD is the sshd binary; empty means FindSSHD.
	SSHD string
	// MaxKRLAge is how long ago the KRL may have last been synced; zero
	// means DefaultMaxKRLAge.
	MaxKRLAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// UID is the one owner besides root that host files may have; nil
	// means the effective uid of this process.
	UID *int
}

// Doctor checks a host's jit-ssh set-up: the directory and files exist with
// safe owners and modes, the CA key file parses and is not empty, there is
// a principals file, the KRL parses and was synced within MaxKRLAge,
// `sshd -t` accepts the sshd configuration, and `sshd -T` shows that it
// takes TrustedUserCAKeys, AuthorizedPrincipalsFile and RevokedKeys from
// Dir. It returns one finding per check, each saying how to fix what it
// found.
func Doctor(ctx context.Context, o DoctorOptions) []Finding {
	if o.SSHDConfig == "" {
		o.SSHDConfig = DefaultSSHDConfig
	}
	if o.MaxKRLAge <= 0 {
		o.MaxKRLAge = DefaultMaxKRLAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	uid := os.Geteuid()
	if o.UID != nil {
		uid = *o.UID
	}
	d := &doctor{o: o, uid: uid, dir: filepath.Clean(o.Dir)}
	d.checkDir()
	d.checkDropIn()
	d.checkCAKeys()
	d.checkPrincipals()
	d.checkKRL()
	d.checkSSHD(ctx)
	return d.findings
}

type doctor struct {
	o        DoctorOptions
	uid      int
	dir      string
	findings []Finding
}

func (d *doctor) add(check string, status Status, fix, format string, args ...any) {
	f := Finding{Check: check, Status: status, Message: fmt.Sprintf(format, args...)}
	if status != StatusOK {
		f.Fix = fix
	}
	d.findings = append(d.findings, f)
}

func (d *doctor) hostConfigFix() string {
	return fmt.Sprintf("rerun: jit-ssh host config --group GROUP --user LOGIN --dir %s", d.dir)
}

// safe checks that path is owned by root (or the allowed uid) and not
// writable by group or others: whoever can write these files decides who
// logs in. It reports the problem under check and returns false.
func (d *doctor) safe(check, path string, st fs.FileInfo) bool {
	if st.Mode().Perm()&0o022 != 0 {
		d.add(check, StatusFail, fmt.Sprintf("chmod go-w %s", path),
			"%s is writable by group or others (mode %04o): anyone who can write it decides who logs in", path, st.Mode().Perm())
		return false
	}
	if owner, ok := ownerOf(st); ok && !ownerOK(owner, d.uid) {
		d.add(check, StatusFail, fmt.Sprintf("chown root:root %s", path),
			"%s is owned by uid %d; it must belong to root (sshd trusts it as root)", path, owner)
		return false
	}
	return true
}

// ownerOK reports whether a host file owned by owner is acceptable when
// the checker runs as uid: root always; the checker's own uid too (a test
// or a non-root sshd).
func ownerOK(owner, uid int) bool { return owner == 0 || owner == uid }

func ownerOf(st fs.FileInfo) (int, bool) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(sys.Uid), true
}

func (d *doctor) checkDir() {
	if err := CheckDir(d.o.Dir); err != nil {
		d.add("dir", StatusFail, "pass an absolute --dir of plain ASCII letters, digits, '/', '.', '-' and '_'", "%s", strings.TrimPrefix(err.Error(), "hostconfig: "))
		return
	}
	st, err := os.Stat(d.dir)
	switch {
	case err != nil:
		d.add("dir", StatusFail, d.hostConfigFix(), "cannot use %s: %v", d.dir, err) //nolint:errorlint // message only
		return
	case !st.IsDir():
		d.add("dir", StatusFail, d.hostConfigFix(), "%s is not a directory", d.dir)
		return
	}
	if d.safe("dir", d.dir, st) {
		d.add("dir", StatusOK, "", "%s exists, owned by root or you, not writable by others", d.dir)
	}
}

// file stats a host file and checks its owner and mode; it reports and
// returns false when it is missing or unsafe.
func (d *doctor) file(check, path string) bool {
	st, err := os.Stat(path)
	if err != nil {
		d.add(check, StatusFail, d.hostConfigFix(), "cannot read %s: %v", path, err) //nolint:errorlint // message only
		return false
	}
	if !st.Mode().IsRegular() {
		d.add(check, StatusFail, d.hostConfigFix(), "%s is not a regular file", path)
		return false
	}
	return d.safe(check, path, st)
}

func (d *doctor) checkDropIn() {
	path := filepath.Join(d.dir, DropInName)
	if d.file("drop-in", path) {
		d.add("drop-in", StatusOK, "", "%s exists", path)
	}
}

func (d *doctor) checkCAKeys() {
	path := filepath.Join(d.dir, CAKeysName)
	if !d.file("ca-keys", path) {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		d.add("ca-keys", StatusFail, d.hostConfigFix(), "cannot read %s: %v", path, err) //nolint:errorlint // message only
		return
	}
	syncFix := fmt.Sprintf("run: jit-ssh host sync --dir %s", d.dir)
	n := 0
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			d.add("ca-keys", StatusFail, syncFix, "%s line %d is not a public key (%v); sshd skips it", path, i+1, err) //nolint:errorlint // message only
			return
		}
		if _, isCert := k.(*ssh.Certificate); isCert {
			d.add("ca-keys", StatusFail, syncFix, "%s line %d is a certificate, not a CA key", path, i+1)
			return
		}
		n++
	}
	if n == 0 {
		d.add("ca-keys", StatusFail, syncFix, "%s holds no CA key: sshd trusts no jit-ssh certificate", path)
		return
	}
	d.add("ca-keys", StatusOK, "", "%s holds %d CA key(s)", path, n)
}

func (d *doctor) checkPrincipals() {
	dir := filepath.Join(d.dir, PrincipalsDir)
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		d.add("principals", StatusFail, d.hostConfigFix(), "%s is missing or not a directory: no login accepts a jit-ssh certificate", dir)
		return
	}
	if !d.safe("principals", dir, st) {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		d.add("principals", StatusFail, d.hostConfigFix(), "cannot list %s: %v", dir, err) //nolint:errorlint // message only
		return
	}
	var logins []string
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if !d.file("principals", path) {
			return
		}
		data, err := os.ReadFile(path)
		if err != nil {
			d.add("principals", StatusFail, d.hostConfigFix(), "cannot read %s: %v", path, err) //nolint:errorlint // message only
			return
		}
		n := 0
		for _, p := range strings.Fields(string(data)) {
			if ca.CheckPrincipal(p) != nil {
				d.add("principals", StatusFail, d.hostConfigFix(), "%s lists %q, which is not a principal jit-ssh issues", path, p)
				return
			}
			n++
		}
		if n == 0 {
			d.add("principals", StatusFail, d.hostConfigFix(), "%s is empty: nobody can log in as %s with a certificate", path, e.Name())
			return
		}
		logins = append(logins, e.Name())
	}
	if len(logins) == 0 {
		d.add("principals", StatusFail, d.hostConfigFix(), "%s has no principals file: no login accepts a jit-ssh certificate", dir)
		return
	}
	d.add("principals", StatusOK, "", "principals files for %s", strings.Join(logins, ", "))
}

func (d *doctor) checkKRL() {
	path := filepath.Join(d.dir, KRLName)
	syncFix := fmt.Sprintf("run: jit-ssh host sync --dir %s", d.dir)
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		d.add("krl", StatusFail, syncFix, "%s is missing: sshd refuses every certificate", path)
		return
	}
	if !d.file("krl", path) {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		d.add("krl", StatusFail, syncFix, "cannot read %s: %v", path, err) //nolint:errorlint // message only
		return
	}
	h, err := ca.ParseKRLHeader(data)
	if err != nil {
		d.add("krl", StatusFail, syncFix, "%s is not a usable KRL (%v): sshd refuses every certificate", path, err) //nolint:errorlint // message only
		return
	}
	d.add("krl", StatusOK, "", "%s is a KRL, version %d", path, h.Version)

	now := d.o.Now()
	age := now.Sub(st.ModTime())
	timerFix := fmt.Sprintf("see why syncs stop: systemctl status jit-ssh-host-sync.timer; journalctl -u jit-ssh-host-sync.service; then %s", syncFix)
	switch {
	case age < -time.Minute:
		d.add("krl-fresh", StatusWarn, "check this host's clock: timedatectl status",
			"%s was last synced %s in the future; this host's clock may be wrong", path, (-age).Round(time.Second))
	case age > d.o.MaxKRLAge:
		d.add("krl-fresh", StatusFail, timerFix,
			"%s was last synced %s ago (at most %s allowed): revocations since then do not reach this host", path, age.Round(time.Second), d.o.MaxKRLAge)
	default:
		d.add("krl-fresh", StatusOK, "", "%s was synced %s ago (at most %s allowed)", path, max(age, 0).Round(time.Second), d.o.MaxKRLAge)
	}
}

func (d *doctor) checkSSHD(ctx context.Context) {
	sshd := d.o.SSHD
	if sshd == "" {
		p, err := FindSSHD()
		if err != nil {
			d.add("sshd-t", StatusFail, "install openssh-server", "%s", strings.TrimPrefix(err.Error(), "hostconfig: "))
			return
		}
		sshd = p
	}
	cfg := d.o.SSHDConfig
	if _, err := os.Stat(cfg); err != nil {
		d.add("sshd-t", StatusFail, "pass the sshd_config the sshd service reads with --sshd-config", "cannot read %s: %v", cfg, err) //nolint:errorlint // message only
		return
	}
	if _, err := runSSHD(ctx, sshd, "-t", "-f", cfg); err != nil {
		d.add("sshd-t", StatusFail, "fix what sshd names, check again with: sshd -t -f "+cfg, "sshd -t -f %s fails: %v", cfg, err)
		return
	}
	d.add("sshd-t", StatusOK, "", "sshd -t -f %s passes", cfg)

	out, err := runSSHD(ctx, sshd, "-T", "-f", cfg)
	if err != nil {
		d.add("sshd-include", StatusFail, "fix what sshd names, check again with: sshd -T -f "+cfg, "sshd -T -f %s fails: %v", cfg, err)
		return
	}
	eff := effectiveSettings(out)
	dropIn := filepath.Join(d.dir, DropInName)
	want := []struct{ keyword, value string }{
		{"TrustedUserCAKeys", filepath.Join(d.dir, CAKeysName)},
		{"AuthorizedPrincipalsFile", filepath.Join(d.dir, PrincipalsDir, "%u")},
		{"RevokedKeys", filepath.Join(d.dir, KRLName)},
	}
	var unset, other []string
	for _, w := range want {
		switch got := eff[strings.ToLower(w.keyword)]; {
		case got == "" || got == "none":
			unset = append(unset, w.keyword)
		case got != w.value:
			other = append(other, fmt.Sprintf("%s is %s, not %s", w.keyword, got, w.value))
		}
	}
	includeFix := fmt.Sprintf("add 'Include %s' near the top of %s (before any other setting of these keywords; sshd keeps the first value), or copy the drop-in into /etc/ssh/sshd_config.d/; then: systemctl reload ssh", dropIn, cfg)
	switch {
	case len(unset) == len(want):
		d.add("sshd-include", StatusFail, includeFix, "%s does not include %s: sshd does not trust jit-ssh certificates", cfg, dropIn)
	case len(unset) > 0 || len(other) > 0:
		problems := other
		if len(unset) > 0 {
			problems = append(problems, strings.Join(unset, ", ")+" not set")
		}
		d.add("sshd-include", StatusFail, includeFix, "sshd's effective configuration from %s does not take the jit-ssh files from %s: %s", cfg, d.dir, strings.Join(problems, "; "))
	default:
		d.add("sshd-include", StatusOK, "", "sshd -T shows TrustedUserCAKeys, AuthorizedPrincipalsFile and RevokedKeys from %s (reload sshd if you changed its configuration since it started)", d.dir)
	}
}

// runSSHD runs sshd in a test mode and returns its stdout; the error
// carries sshd's stderr in one line.
func runSSHD(ctx context.Context, sshd string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, sshd, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(stderr.String()), "\n", " | ")), " ")
		if msg == "" {
			msg = err.Error()
		}
		if strings.Contains(msg, "Missing privilege separation directory") {
			msg += " (the sshd service creates it at start; to check now: install -d -m 0755 /run/sshd)"
		}
		return nil, errors.New(msg)
	}
	return stdout.Bytes(), nil
}
