package hostconfig

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// sshdFallback is where Debian and most distributions install sshd; it is
// often missing from an unprivileged user's PATH.
const sshdFallback = "/usr/sbin/sshd"

// FindSSHD returns the absolute path of the sshd binary: the one on PATH,
// else /usr/sbin/sshd. It returns an error wrapping ErrNoSSHD when there is
// none.
func FindSSHD() (string, error) {
	if p, err := exec.LookPath("sshd"); err == nil {
		return filepath.Abs(p)
	}
	if st, err := os.Stat(sshdFallback); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
		return sshdFallback, nil
	}
	return "", fmt.Errorf("%w in PATH or at %s; install openssh-server to check the drop-in", ErrNoSSHD, sshdFallback)
}

// CheckWithSSHD checks the drop-in at dropInPath with the real sshd at
// sshdPath. It writes a throwaway sshd_config that Includes the drop-in
// first, plus a freshly generated host key, into a temporary directory and
// runs `sshd -T` on it (the extended test mode: it parses and validates
// the configuration like `sshd -t`, then prints the effective settings).
// It fails, with an error wrapping ErrSSHDRejected that carries sshd's
// stderr, when sshd rejects the configuration; when the effective
// configuration lacks TrustedUserCAKeys, AuthorizedPrincipalsFile or
// RevokedKeys (sshd silently ignores an Include that matches no file); or
// when the CA key file or the KRL it names is missing or unreadable, since
// sshd then refuses every certificate.
//
// As root, OpenSSH needs its privilege separation directory (/run/sshd on
// Debian) even in test mode; sshd's message says so and CheckWithSSHD does
// not create it.
func CheckWithSSHD(ctx context.Context, sshdPath, dropInPath string) error {
	if !filepath.IsAbs(dropInPath) {
		return fmt.Errorf("%w: drop-in %q is relative; sshd needs an absolute path", ErrInvalidPath, dropInPath)
	}
	if err := checkPathChars(dropInPath); err != nil {
		return err
	}
	st, err := os.Stat(dropInPath)
	if err != nil {
		return fmt.Errorf("hostconfig: drop-in: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: drop-in %s is not a regular file", ErrInvalidPath, dropInPath)
	}

	tmp, err := os.MkdirTemp("", "jit-ssh-sshd-check-")
	if err != nil {
		return fmt.Errorf("hostconfig: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := checkPathChars(tmp); err != nil {
		return err
	}
	hostKey := filepath.Join(tmp, "ssh_host_ed25519_key")
	if err := writeHostKey(hostKey); err != nil {
		return err
	}
	cfg := filepath.Join(tmp, "sshd_config")
	conf := fmt.Sprintf("Include %s\nHostKey %s\nPidFile none\n", dropInPath, hostKey)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("hostconfig: %w", err)
	}

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, sshdPath, "-T", "-f", cfg)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("hostconfig: checking %s with sshd: %w", dropInPath, ctx.Err())
		}
		msg := strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(stderr.String()), "\n", " | ")), " ")
		if msg == "" {
			msg = err.Error()
		}
		if _, dir, ok := strings.Cut(msg, "Missing privilege separation directory: "); ok {
			dir = strings.TrimSpace(dir)
			msg += fmt.Sprintf(" (the sshd service creates it when it starts; to check now, create it with: install -d -m 0755 %s)", dir)
		}
		if !strings.Contains(msg, dropInPath) {
			msg = dropInPath + ": " + msg
		}
		return fmt.Errorf("%w: %s", ErrSSHDRejected, msg)
	}

	eff := effectiveSettings(stdout.Bytes())
	var errs []error
	for _, kw := range []string{"TrustedUserCAKeys", "AuthorizedPrincipalsFile", "RevokedKeys"} {
		if v := eff[strings.ToLower(kw)]; v == "" || v == "none" {
			errs = append(errs, fmt.Errorf("%w: %s does not set %s", ErrSSHDRejected, dropInPath, kw))
		}
	}
	if errs != nil {
		return errors.Join(errs...)
	}
	if err := checkCAKeysFile(eff["trustedusercakeys"]); err != nil {
		return err
	}
	return checkKRLFile(eff["revokedkeys"])
}

// effectiveSettings parses `sshd -T` output: one "keyword value" per line,
// keywords in lower case.
func effectiveSettings(out []byte) map[string]string {
	m := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if _, seen := m[k]; !seen {
			m[k] = v
		}
	}
	return m
}

func checkCAKeysFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: TrustedUserCAKeys: %w", ErrSSHDRejected, err)
	}
	n := 0
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
			return fmt.Errorf("%w: TrustedUserCAKeys %s line %d: %v", ErrSSHDRejected, path, i+1, err) //nolint:errorlint // the parser's errors are strings only
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%w: TrustedUserCAKeys %s holds no key", ErrSSHDRejected, path)
	}
	return nil
}

func checkKRLFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: RevokedKeys (sshd refuses every certificate without it): %w", ErrSSHDRejected, err)
	}
	if err := CheckKRLHeader(data); err != nil {
		return fmt.Errorf("%w: RevokedKeys %s: %w", ErrSSHDRejected, path, err)
	}
	return nil
}

// writeHostKey writes a fresh ed25519 private key in OpenSSH format with
// mode 0600, as sshd requires of host keys.
func writeHostKey(path string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("hostconfig: generating host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return fmt.Errorf("hostconfig: encoding host key: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("hostconfig: %w", err)
	}
	return nil
}
