package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/agent"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/hostconfig"
)

// finding is one doctor result; engineer and host checks share the shape
// (and the JSON form) of hostconfig's.
type finding = hostconfig.Finding

type doctorOptions struct {
	host       bool
	dir        string
	sshdConfig string
	maxKRLAge  time.Duration
}

func newDoctorCmd(e *env) *cobra.Command {
	o := &doctorOptions{}
	cmd := &cobra.Command{
		Use:   "doctor [--host --dir DIR]",
		Short: "Check this machine's jit-ssh set-up and say how to fix what is wrong",
		Long: `Check what jit-ssh depends on and say how to fix each problem found.

For an engineer (the default): ssh-agent is reachable through SSH_AUTH_SOCK;
this tool's certificates in it and their time left; expired certificates still
in the agent; the server is reachable and healthy; your clock agrees with the
server's; the server accepts your token.

For a host (--host): the directory and files written by 'jit-ssh host config'
exist, belong to root and are not writable by group or others; the CA key file
parses and is not empty; a principals file exists; the KRL parses and was
synced within --max-krl-age; 'sshd -t' accepts the sshd configuration; and
'sshd -T' shows that sshd takes TrustedUserCAKeys, AuthorizedPrincipalsFile and
RevokedKeys from DIR, i.e. the drop-in is included.

Exits 1 when any check fails (warnings do not). --output json prints one
object per finding: {"check", "status" (ok, warn, fail), "message", "fix"}.`,
		Example: `  jit-ssh doctor
  sudo jit-ssh doctor --host --dir /etc/ssh/jit-ssh
  jit-ssh doctor --host --dir /etc/ssh/jit-ssh --output json | jq 'select(.status != "ok")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !o.host && (cmd.Flags().Changed("dir") || cmd.Flags().Changed("sshd-config") || cmd.Flags().Changed("max-krl-age")) {
				return &usageError{errors.New("--dir, --sshd-config and --max-krl-age go with --host")}
			}
			var findings []finding
			if o.host {
				dir, err := filepath.Abs(o.dir)
				if err != nil {
					return &usageError{err}
				}
				if o.maxKRLAge <= 0 {
					return &usageError{errors.New("--max-krl-age must be positive")}
				}
				findings = hostconfig.Doctor(cmd.Context(), hostconfig.DoctorOptions{Dir: dir, SSHDConfig: o.sshdConfig, MaxKRLAge: o.maxKRLAge})
			} else {
				ec := &engineerChecks{sock: e.getenv("SSH_AUTH_SOCK"), server: e.serverURL(), token: e.token()}
				findings = ec.run(cmd.Context())
			}
			return printFindings(e, findings)
		},
	}
	cmd.Flags().BoolVar(&o.host, "host", false, "check this host's sshd set-up instead of an engineer's")
	cmd.Flags().StringVar(&o.dir, "dir", "/etc/ssh/jit-ssh", "with --host: the host files directory")
	cmd.Flags().StringVar(&o.sshdConfig, "sshd-config", hostconfig.DefaultSSHDConfig, "with --host: the sshd_config the sshd service reads")
	cmd.Flags().DurationVar(&o.maxKRLAge, "max-krl-age", hostconfig.DefaultMaxKRLAge, "with --host: fail when the KRL was last synced longer ago than this (about two periods of the sync timer)")
	return cmd
}

// printFindings writes the findings and returns an error (exit 1) when any
// of them failed.
func printFindings(e *env, findings []finding) error {
	failed, warned := 0, 0
	for _, f := range findings {
		switch f.Status {
		case hostconfig.StatusFail:
			failed++
		case hostconfig.StatusWarn:
			warned++
		}
	}
	if e.output == "json" {
		for _, f := range findings {
			if err := e.printJSON(f); err != nil {
				return err
			}
		}
	} else {
		for _, f := range findings {
			label := string(f.Status)
			if f.Status == hostconfig.StatusFail {
				label = "FAIL"
			}
			fmt.Fprintf(e.stdout, "%-4s  %-12s  %s\n", label, f.Check, f.Message)
			if f.Fix != "" {
				fmt.Fprintf(e.stdout, "%-4s  %-12s  fix: %s\n", "", "", f.Fix)
			}
		}
		fmt.Fprintf(e.stdout, "%d check(s): %d failed, %d warning(s).\n", len(findings), failed, warned)
	}
	if failed > 0 {
		return fmt.Errorf("doctor found %d failing check(s); each says how to fix it", failed)
	}
	return nil
}

// Thresholds of the engineer checks.
const (
	// clockWarn and clockFail bound the clock skew against the server.
	// Certificates are backdated by ca.DefaultSkew; beyond that, hosts
	// and this machine disagree about when a certificate is valid.
	clockWarn = 30 * time.Second
	clockFail = ca.DefaultSkew
	// shortLeft is when a certificate's remaining time is worth a warning.
	shortLeft = time.Minute
	// maxAgentKeys: sshd's default MaxAuthTries is 6, and ssh offers the
	// agent's keys one by one.
	maxAgentKeys = 5
	// probeTimeout bounds each call to the server.
	probeTimeout = 10 * time.Second
)

// engineerChecks are the checks of `jit-ssh doctor` for an engineer. The
// zero http and now mean http.DefaultClient and time.Now.
type engineerChecks struct {
	sock   string // SSH_AUTH_SOCK
	server string // server URL
	token  string
	http   *http.Client
	now    func() time.Time

	findings []finding
}

func (c *engineerChecks) add(check string, status hostconfig.Status, fix, format string, args ...any) {
	f := finding{Check: check, Status: status, Message: fmt.Sprintf(format, args...)}
	if status != hostconfig.StatusOK {
		f.Fix = fix
	}
	c.findings = append(c.findings, f)
}

func (c *engineerChecks) run(ctx context.Context) []finding {
	if c.now == nil {
		c.now = time.Now
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: probeTimeout}
	}
	c.http = api.SafeRedirects(c.http)
	c.findings = nil
	c.checkAgent()
	if c.checkServer(ctx) {
		c.checkToken(ctx)
	}
	return c.findings
}

const startAgentFix = `start one and point SSH_AUTH_SOCK at it: eval "$(ssh-agent)" (most desktops start one for you; check your shell profile)`

func (c *engineerChecks) checkAgent() {
	if c.sock == "" {
		c.add("agent", hostconfig.StatusFail, startAgentFix, "SSH_AUTH_SOCK is not set: 'jit-ssh login' has no ssh-agent to put certificates in")
		return
	}
	ring, err := agent.Dial(c.sock)
	if err != nil {
		cause := err
		if de := (*agent.DialError)(nil); errors.As(err, &de) {
			cause = de.Err // the connection's own error, as the message words the rest
		}
		c.add("agent", hostconfig.StatusFail, startAgentFix, "cannot reach ssh-agent at %s: %v", c.sock, cause) //nolint:errorlint // message only
		return
	}
	defer ring.Close()
	keys, err := ring.Keys()
	if err != nil {
		// The agent's own answer, without the agent package's prefix.
		c.add("agent", hostconfig.StatusFail, startAgentFix, "ssh-agent at %s does not answer: %v", c.sock, errors.Unwrap(err)) //nolint:errorlint // message only
		return
	}
	c.add("agent", hostconfig.StatusOK, "", "ssh-agent at %s answers (%d key(s))", c.sock, len(keys))
	if len(keys) > maxAgentKeys {
		c.add("agent-keys", hostconfig.StatusWarn,
			"remove keys you do not use (ssh-add -d FILE), or limit what ssh offers with IdentitiesOnly and IdentityFile in ~/.ssh/config",
			"ssh-agent holds %d keys; ssh offers them one by one and sshd stops after MaxAuthTries (6 by default), so the jit-ssh certificate may never be tried", len(keys))
	}

	now := c.now()
	entries, err := ring.List()
	if err != nil {
		c.add("certs", hostconfig.StatusFail, startAgentFix, "cannot list ssh-agent's keys: %v", err) //nolint:errorlint // message only
		return
	}
	live := 0
	for _, en := range entries {
		left := en.ValidBefore.Sub(now)
		switch {
		case left <= 0:
			continue // a stray; reported below
		case left < shortLeft:
			c.add("certs", hostconfig.StatusWarn, "get a fresh one: jit-ssh login "+en.Group,
				"%s certificate (serial %d) expires in %s", en.Group, en.Serial, left.Round(time.Second))
		default:
			c.add("certs", hostconfig.StatusOK, "", "%s certificate (serial %d, principals %s): %s left",
				en.Group, en.Serial, strings.Join(en.Principals, ","), left.Round(time.Second))
		}
		live++
	}
	if live == 0 {
		c.add("certs", hostconfig.StatusOK, "", "no jit-ssh certificate in ssh-agent; 'jit-ssh login GROUP' gets one")
	}

	// Expired certificates of any origin: ssh still offers them.
	stray := 0
	for _, k := range keys {
		cert := k.Cert
		if cert == nil || cert.ValidBefore == ssh.CertTimeInfinity || ca.CertTime(cert.ValidBefore).After(now) {
			continue
		}
		stray++
		ago := now.Sub(ca.CertTime(cert.ValidBefore)).Round(time.Second)
		if k.Group != "" {
			c.add("stray-certs", hostconfig.StatusWarn, "jit-ssh logout "+k.Group,
				"an expired jit-ssh certificate for %s (serial %d, expired %s ago) is still in ssh-agent; ssh offers it and sshd counts it against MaxAuthTries", k.Group, cert.Serial, ago)
			continue
		}
		c.add("stray-certs", hostconfig.StatusWarn, "remove it: ssh-add -d THE-KEY-FILE (or every key: ssh-add -D)",
			"an expired certificate %q (key id %q, expired %s ago) is still in ssh-agent; ssh offers it and sshd counts it against MaxAuthTries", k.Comment, cert.KeyId, ago)
	}
	if stray == 0 {
		c.add("stray-certs", hostconfig.StatusOK, "", "no expired certificate in ssh-agent")
	}
}

// checkServer checks the server's health and, from the Date header of its
// answer, this machine's clock. It reports whether the server answered.
func (c *engineerChecks) checkServer(ctx context.Context) bool {
	serverFix := fmt.Sprintf("check --server / JIT_SSH_SERVER (now %s), your network or VPN, or ask the jit-ssh operators", c.server)
	// The URL passes the API client's rule before anything is sent.
	if _, err := api.ServerURL(c.server); err != nil {
		fix := serverFix
		if errors.Is(err, api.ErrInsecureServer) {
			fix = "use the server's https:// address in --server / JIT_SSH_SERVER"
		}
		c.add("server", hostconfig.StatusFail, fix, "%v", err)
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.server, "/")+"/healthz", nil)
	if err != nil {
		c.add("server", hostconfig.StatusFail, serverFix, "the server URL %q is unusable: %v", c.server, err) //nolint:errorlint // message only
		return false
	}
	t0 := c.now()
	resp, err := c.http.Do(req)
	t1 := c.now()
	if err != nil {
		c.add("server", hostconfig.StatusFail, serverFix, "cannot reach the jit-ssh server at %s: %v", c.server, err) //nolint:errorlint // message only
		return false
	}
	defer resp.Body.Close()
	var h api.Health
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	isJIT := json.Unmarshal(body, &h) == nil && h.Status != ""
	switch {
	case !isJIT:
		c.add("server", hostconfig.StatusFail, serverFix, "%s answered %s without a jit-ssh health report: is it a jit-ssh server?", c.server, resp.Status)
		return false
	case resp.StatusCode != http.StatusOK:
		var down []string
		for dep, state := range h.Checks {
			if state != "ok" {
				down = append(down, dep)
			}
		}
		c.add("server", hostconfig.StatusFail, "no certificate can be issued until it recovers: tell the jit-ssh operators",
			"the jit-ssh server at %s is up but unhealthy (%s unavailable)", c.server, strings.Join(down, ", "))
	default:
		c.add("server", hostconfig.StatusOK, "", "the jit-ssh server at %s is healthy (answered in %s)", c.server, t1.Sub(t0).Round(time.Millisecond))
	}
	c.checkClock(resp.Header.Get("Date"), t0, t1)
	return true
}

// checkClock compares this machine's clock, halfway through the request,
// with the server's Date header. The header has whole seconds, so the
// server's time lies in [Date, Date+1s); the skew reported is what remains
// after that and half the round trip are allowed for.
func (c *engineerChecks) checkClock(date string, t0, t1 time.Time) {
	serverTime, err := http.ParseTime(date)
	if err != nil {
		c.add("clock", hostconfig.StatusWarn, "check your clock against a trusted source: timedatectl status", "the server's answer has no usable Date header; clock not checked")
		return
	}
	local := t0.Add(t1.Sub(t0) / 2)
	skew := local.Sub(serverTime.Add(500 * time.Millisecond)) // > 0: this clock is ahead
	slack := t1.Sub(t0)/2 + 500*time.Millisecond
	off := max(skew.Abs()-slack, 0).Round(time.Second)
	dir, effect := "ahead of", "ssh-agent drops new certificates early, since their lifetime there is counted on this clock"
	if skew < 0 {
		dir, effect = "behind", "ssh-agent keeps certificates after they expire, and ssh keeps offering them"
	}
	fix := "turn on time sync: timedatectl set-ntp true (Linux) or sudo sntp -sS time.apple.com (macOS)"
	switch {
	case off > clockFail:
		c.add("clock", hostconfig.StatusFail, fix, "this clock is %s %s the server's: %s", off, dir, effect)
	case off > clockWarn:
		c.add("clock", hostconfig.StatusWarn, fix, "this clock is %s %s the server's; beyond %s %s", off, dir, clockFail, effect)
	default:
		c.add("clock", hostconfig.StatusOK, "", "this clock agrees with the server's (within %s)", max(off, time.Second))
	}
}

func (c *engineerChecks) checkToken(ctx context.Context) {
	signIn := "sign in: jit-ssh auth login (or set JIT_SSH_TOKEN)"
	if c.token == "" {
		c.add("token", hostconfig.StatusFail, signIn, "no token: JIT_SSH_TOKEN and GITHUB_TOKEN are unset, and there is no stored or gh token")
		return
	}
	cl, err := api.NewClient(c.server, c.token, api.WithHTTPClient(c.http))
	if err != nil {
		c.add("token", hostconfig.StatusFail, signIn, "%v", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if _, err := cl.ListRequests(ctx, api.ListRequestsOptions{Mine: true}); err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			c.add("token", hostconfig.StatusFail, signIn, "the server did not accept your token: %s", ae.Message)
			return
		}
		c.add("token", hostconfig.StatusFail, "try again; if it persists, tell the jit-ssh operators", "could not check your token: %v", err)
		return
	}
	c.add("token", hostconfig.StatusOK, "", "the server accepts your token")
}
