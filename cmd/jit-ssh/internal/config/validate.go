package config

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/notify"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

// Compiled is what a valid config compiles to, computed once by Validate:
// what the server is built from besides the settings themselves.
type Compiled struct {
	// Policies are the host groups' approval policies, by group name,
	// allowed_hours parsed.
	Policies []*approval.Policy
	// TrustedCAKeys are trusted_ca_keys, parsed.
	TrustedCAKeys []ssh.PublicKey
	// Limits are the per-identity rate limits, defaults applied.
	Limits api.Limits
}

// Bounds of the config's own settings. The bounds of a host group's policy
// are its owners' (ca.MaxCertTTL, approval.MaxGrant, approval.MaxApprovals).
const (
	maxPerMinute       = 6000
	maxBurst           = 1000
	maxVaultTimeout    = time.Minute
	maxGitHubCacheTTL  = 10 * time.Minute
	maxNotifyTimeout   = time.Minute
	minStaticTokenSize = 6
)

// Compiled on first use: only config loading needs them, and every process
// of the binary (login, version, ...) would otherwise pay for them at start.
var (
	envNameRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`) })
	safePathRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_./-]{0,127}$`) })
)

// isLoopback reports whether a listen address binds only loopback.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	return err == nil && api.IsLoopbackHost(host)
}

// Validate returns every problem with the config, joined in an *Error,
// each with its key path; or, when there is none, what the config compiles
// to.
func (c *Server) Validate() (*Compiled, error) {
	var p []string
	add := func(path, format string, args ...any) { p = append(p, path+": "+fmt.Sprintf(format, args...)) }
	out := &Compiled{}

	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		add("listen", "%q must be host:port, like %s", c.Listen, api.DefaultListen)
	}
	if c.TLS == nil && !isLoopback(c.Listen) {
		add("tls", "required when listen (%s) is not a loopback address", c.Listen)
	}
	if c.TLS != nil && (c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		add("tls", "cert_file and key_file are both required")
	}
	if c.DataDir == "" {
		add("data_dir", "required (the ledger lives there)")
	}

	switch c.Signer.Type {
	case "file":
		if c.Signer.File == nil || c.Signer.File.KeyFile == "" {
			add("signer.file.key_file", "required")
		}
	case "vault":
		if c.Signer.Vault == nil {
			add("signer.vault", "required when signer.type is vault (mount, role)")
		} else {
			v := c.Signer.Vault
			if v.Timeout < 0 || time.Duration(v.Timeout) > maxVaultTimeout {
				add("signer.vault.timeout", "must be between 0 and %s", shortDuration(maxVaultTimeout))
			}
			if !safePathRE().MatchString(v.Mount) {
				add("signer.vault.mount", "%q is not a Vault mount path", v.Mount)
			}
			if !safePathRE().MatchString(v.Role) {
				add("signer.vault.role", "%q is not a Vault role name", v.Role)
			}
			if v.Address != "" {
				if u, err := url.Parse(v.Address); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					add("signer.vault.address", "%q is not an http(s) URL", v.Address)
				}
			}
		}
	case "":
		add("signer.type", "required: vault or file")
	default:
		add("signer.type", "%q is not vault or file", c.Signer.Type)
	}

	switch c.Identity.Type {
	case "github":
		g := c.Identity.GitHub
		if g == nil {
			add("identity.github", "required when identity.type is github (org, api_url, token_env)")
			break
		}
		if g.Org == "" {
			add("identity.github.org", "required")
		}
		if u, err := url.Parse(g.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add("identity.github.api_url", "%q is not an http(s) URL", g.APIURL)
		} else if !api.SecureTransport(u) {
			add("identity.github.api_url", "%q: plain http would send tokens in the clear; use https (http is allowed only to loopback)", g.APIURL)
		}
		if !envNameRE().MatchString(g.TokenEnv) {
			add("identity.github.token_env", "%q is not an environment variable name", g.TokenEnv)
		}
		if g.CacheTTL < 0 || time.Duration(g.CacheTTL) > maxGitHubCacheTTL {
			add("identity.github.cache_ttl", "must be between 0 and %s", shortDuration(maxGitHubCacheTTL))
		}
	case "static":
		if !isLoopback(c.Listen) {
			add("identity.type", "static identity is for dev and tests only and is refused on a non-loopback listener (%s)", c.Listen)
		}
		if c.Identity.Static == nil || len(c.Identity.Static.Users) == 0 {
			add("identity.static.users", "at least one user is required")
			break
		}
		tokens := map[string]string{}
		for _, login := range slices.Sorted(maps.Keys(c.Identity.Static.Users)) {
			u := c.Identity.Static.Users[login]
			path := "identity.static.users." + login
			if ca.CheckLogin(login) != nil {
				add(path, "%q is not a valid login", login)
			} else if ca.IsReservedLogin(login) {
				add(path, "%q is reserved for jit-ssh's own events; pick another login", login)
			}
			if len(u.Token) < minStaticTokenSize {
				add(path+".token", "must be at least %d characters", minStaticTokenSize)
			} else if other, dup := tokens[u.Token]; dup {
				add(path+".token", "same token as %s", other)
			}
			tokens[u.Token] = login
			for i, t := range u.Teams {
				if ca.CheckTeam(t) != nil {
					add(fmt.Sprintf("%s.teams[%d]", path, i), "%q is not a valid team slug", t)
				}
			}
		}
	case "":
		add("identity.type", "required: github or static")
	default:
		add("identity.type", "%q is not github or static", c.Identity.Type)
	}

	for i, t := range c.Auditors {
		if ca.CheckTeam(t) != nil {
			add(fmt.Sprintf("auditors[%d]", i), "%q is not a valid team slug", t)
		}
	}
	for i, t := range c.Admins {
		if ca.CheckTeam(t) != nil {
			add(fmt.Sprintf("admins[%d]", i), "%q is not a valid team slug", t)
		}
	}
	for i, k := range c.TrustedCAKeys {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k))
		if err != nil {
			add(fmt.Sprintf("trusted_ca_keys[%d]", i), "not a public key in authorized_keys form")
			continue
		}
		out.TrustedCAKeys = append(out.TrustedCAKeys, pub)
	}
	p = append(p, c.Ledger.validate()...)
	p = append(p, c.Notify.validate()...)
	p = append(p, c.WorkloadIdentity.validate()...)
	p = append(p, c.Limits.Requests.validate("limits.requests")...)
	p = append(p, c.Limits.Certificates.validate("limits.certificates")...)
	p = append(p, c.Limits.Writes.validate("limits.writes")...)
	out.Limits = c.Limits.compile()
	if c.PendingTTL <= 0 {
		add("pending_ttl", "must be positive")
	}

	if len(c.HostGroups) == 0 {
		add("host_groups", "at least one host group is required")
	}
	for _, name := range slices.Sorted(maps.Keys(c.HostGroups)) {
		pol, problems := c.HostGroups[name].compile("host_groups."+name, name)
		p = append(p, problems...)
		var wp []string
		pol.Workloads, wp = compileWorkloads("host_groups."+name+".workloads", c.HostGroups[name].Workloads, c.WorkloadIdentity.GitHubActions != nil)
		p = append(p, wp...)
		out.Policies = append(out.Policies, pol)
	}
	if len(p) > 0 {
		return nil, &Error{Problems: p}
	}
	return out, nil
}

// shortDuration writes a whole number of minutes as the config would: 1m,
// not 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// compile checks one host group and returns its policy (meaningful only
// when there are no problems) and its problems, each at path.
func (g HostGroup) compile(path, name string) (*approval.Policy, []string) {
	var p []string
	add := func(key, format string, args ...any) { p = append(p, path+key+": "+fmt.Sprintf(format, args...)) }
	if ca.CheckGroup(name) != nil {
		add("", "%q is not a valid host group name (lowercase letters, digits, '.', '_', '-')", name)
	}
	if len(g.Principals) == 0 {
		add(".principals", "at least one principal is required")
	}
	for i, pr := range g.Principals {
		if ca.CheckPrincipal(pr) != nil {
			add(fmt.Sprintf(".principals[%d]", i), "%q is not a valid principal (letters, digits, '.', '_', '-')", pr)
		}
	}
	if len(g.Requesters) == 0 && len(g.Workloads) == 0 {
		add(".requesters", "at least one team is required (or, for a group only CI jobs reach, workloads)")
	}
	for i, t := range g.Requesters {
		if ca.CheckTeam(t) != nil {
			add(fmt.Sprintf(".requesters[%d]", i), "%q is not a valid team slug", t)
		}
	}
	for i, t := range g.Approvers {
		if ca.CheckTeam(t) != nil {
			add(fmt.Sprintf(".approvers[%d]", i), "%q is not a valid team slug", t)
		}
	}
	approvals := 0
	switch n := g.ApprovalsRequired; {
	case n == nil:
		add(".approvals_required", "required (0 auto-approves requesters)")
	case *n < 0 || *n > approval.MaxApprovals:
		add(".approvals_required", "must be between 0 and %d", approval.MaxApprovals)
	case *n > 0 && len(g.Approvers) == 0:
		add(".approvers", "at least one team is required when approvals_required is %d", *n)
	default:
		approvals = *n
	}
	ttl, maxDur := time.Duration(g.CertTTL), time.Duration(g.MaxDuration)
	if ttl <= 0 || ttl > ca.MaxCertTTL {
		add(".cert_ttl", "must be between 1s and %s", ca.MaxCertTTL)
	}
	if maxDur < time.Minute || maxDur > approval.MaxGrant {
		add(".max_duration", "must be between 1m and %s", approval.MaxGrant)
	}
	if ttl > maxDur && maxDur > 0 {
		add(".cert_ttl", "%s is longer than max_duration %s", ttl, maxDur)
	}
	for i, e := range g.Extensions {
		if !ca.IsKnownExtension(e) {
			add(fmt.Sprintf(".extensions[%d]", i), "%q is not one of %s", e, strings.Join(ca.KnownExtensions(), ", "))
		}
	}
	for i, a := range g.SourceAddress {
		if _, err := netip.ParsePrefix(a); err != nil {
			if _, err := netip.ParseAddr(a); err != nil {
				add(fmt.Sprintf(".source_address[%d]", i), "%q is not an address or CIDR", a)
			}
		}
	}
	pol := &approval.Policy{
		Group: name, Principals: g.Principals, Requesters: g.Requesters, Approvers: g.Approvers,
		ApprovalsRequired: approvals, MaxDuration: maxDur, CertTTL: ttl,
		Extensions: g.Extensions, SourceAddress: g.SourceAddress,
	}
	if g.AllowedHours != "" {
		h, err := approval.ParseHours(g.AllowedHours)
		if err != nil {
			add(".allowed_hours", "%v", err)
		}
		pol.AllowedHours = h
	}
	if g.BreakGlass != nil {
		bg, problems := g.BreakGlass.compile(path+".break_glass", g, maxDur)
		p = append(p, problems...)
		pol.BreakGlass = bg
	}
	return pol, p
}

// maxReasonPattern bounds the length of a break_glass reason_pattern.
const maxReasonPattern = 200

// compile checks a host group's break_glass block (the group is g, its
// max_duration maxDur) and returns its policy and problems, each at path.
func (b *BreakGlass) compile(path string, g HostGroup, maxDur time.Duration) (*approval.BreakGlassPolicy, []string) {
	var p []string
	add := func(key, format string, args ...any) { p = append(p, path+key+": "+fmt.Sprintf(format, args...)) }
	if len(b.Teams) == 0 {
		add(".teams", "at least one team is required (who may break glass)")
	}
	for i, t := range b.Teams {
		switch {
		case ca.CheckTeam(t) != nil:
			add(fmt.Sprintf(".teams[%d]", i), "%q is not a valid team slug", t)
		case !slices.Contains(g.Requesters, t):
			add(fmt.Sprintf(".teams[%d]", i), "%q is not one of the group's requesters (%s); a team that may break glass must also be a requester", t, strings.Join(g.Requesters, ", "))
		}
	}
	if len(g.Approvers) == 0 {
		add("", "the group has no approvers, so nobody could do the follow-up review; add approvers or remove break_glass")
	}
	d := time.Duration(b.MaxDuration)
	switch {
	case d < time.Minute || d > approval.MaxGrant:
		add(".max_duration", "must be between 1m and %s", approval.MaxGrant)
	case maxDur >= time.Minute && d > maxDur:
		add(".max_duration", "%s is longer than the group's max_duration %s", d, maxDur)
	}
	within := time.Duration(b.ReviewWithin)
	if within < approval.MinReviewWithin || within > approval.MaxReviewWithin {
		add(".review_within", "must be between %s and %s", shortDuration(approval.MinReviewWithin), approval.MaxReviewWithin)
	}
	pol := &approval.BreakGlassPolicy{Teams: b.Teams, MaxDuration: d, ReviewWithin: within}
	if b.ReasonPattern != "" {
		if len(b.ReasonPattern) > maxReasonPattern {
			add(".reason_pattern", "is longer than %d characters", maxReasonPattern)
		} else if re, err := regexp.Compile(b.ReasonPattern); err != nil {
			add(".reason_pattern", "%q is not a regular expression: %v", b.ReasonPattern, err)
		} else {
			pol.ReasonPattern = re
		}
	}
	return pol, p
}

func (r Rate) validate(path string) []string {
	var p []string
	if r.PerMinute != nil && (*r.PerMinute < 0 || *r.PerMinute > maxPerMinute) {
		p = append(p, fmt.Sprintf("%s.per_minute: must be between 0 (no limit) and %d", path, maxPerMinute))
	}
	if r.Burst != nil && (*r.Burst < 1 || *r.Burst > maxBurst) {
		p = append(p, fmt.Sprintf("%s.burst: must be between 1 and %d", path, maxBurst))
	}
	return p
}

// compile turns the limits block (defaults applied) into the server's rate
// limits.
func (l Limits) compile() api.Limits {
	rate := func(r Rate) api.Rate {
		out := api.Rate{Burst: 1}
		if r.PerMinute != nil {
			out.PerMinute = float64(*r.PerMinute)
		}
		if r.Burst != nil {
			out.Burst = *r.Burst
		}
		return out
	}
	return api.Limits{Requests: rate(l.Requests), Certificates: rate(l.Certificates), Writes: rate(l.Writes)}
}

// validate checks the notify block; the webhook URL is never echoed, it
// may hold a secret.
func (n Notify) validate() []string {
	var p []string
	if n.WebhookURL != "" {
		u, err := url.Parse(n.WebhookURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			p = append(p, "notify.webhook_url: not an http(s) URL")
		case !api.SecureTransport(u):
			p = append(p, "notify.webhook_url: must be https (plain http is allowed only to a loopback address)")
		}
	}
	if n.Timeout < 0 || time.Duration(n.Timeout) > maxNotifyTimeout {
		p = append(p, "notify.timeout: must be between 0 (default "+notify.DefaultTimeout.String()+") and "+maxNotifyTimeout.String())
	}
	return p
}

// maxPostgresConns bounds ledger.postgres.max_conns.
const maxPostgresConns = 1000

func (l Ledger) validate() []string {
	var p []string
	switch l.Type {
	case LedgerSQLite:
		if l.Postgres != nil {
			p = append(p, "ledger.postgres: only with ledger.type postgres (the ledger type is sqlite)")
		}
	case LedgerPostgres:
		pg := l.Postgres
		if !envNameRE().MatchString(pg.DSNEnv) {
			p = append(p, fmt.Sprintf("ledger.postgres.dsn_env: %q is not an environment variable name", pg.DSNEnv))
		}
		if pg.MaxConns < 1 || pg.MaxConns > maxPostgresConns {
			p = append(p, fmt.Sprintf("ledger.postgres.max_conns: must be between 1 and %d", maxPostgresConns))
		}
	default:
		p = append(p, fmt.Sprintf("ledger.type: %q is not sqlite or postgres", l.Type))
	}
	return p
}
