package config

// Fuzz targets for the server config: the whole document (Parse) and
// its duration values. Seeds: the fixtures under testdata/config, the f.Add
// calls, and testdata/fuzz/<target>/ (crashers kept as regression cases).

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
)

// laughs is a config whose aliases and merge keys stand for 10^levels
// values: the walk that names key paths must not follow them all.
func laughs(levels int) string {
	var b strings.Builder
	b.WriteString("x0: &a0 {listen: \"1\"}\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "x%d: &a%d {<<: [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", "))
	}
	fmt.Fprintf(&b, "signer: *a%d\n", levels)
	return b.String()
}

// TestConfigAliasBomb is the regression case of a crasher FuzzParseConfig
// found: a config of a few hundred bytes whose aliases stand for millions of
// values kept the key-path walk busy for minutes. The walk now stops.
func TestConfigAliasBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short (make test runs it): parses YAML alias bombs (seconds under -race)")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(laughs(6)), &doc); err != nil {
		t.Fatal(err)
	}
	k := newKeyChecker()
	k.walk(&doc, reflect.TypeFor[Server](), "")
	if k.visits > maxWalk {
		t.Fatalf("walked %d nodes, the bound is %d", k.visits, maxWalk)
	}
	if _, _, err := Parse([]byte(laughs(9))); err == nil {
		t.Fatalf("an alias bomb was accepted")
	}
}

func FuzzParseConfig(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "config", "*.yaml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no config fixtures: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	dev, err := yaml.Marshal(Dev("/var/lib/jit-ssh", "127.0.0.1:7443"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(dev)
	for _, s := range []string{
		"", "{}", "[]", "null", "listen: [", "listen: *x", "a: &a [*a]",
		"host_groups: {prod-db: {principals: [\"root\\n\"], cert_ttl: 1y}}",
		"host_groups: {\"bad group\": {}}",
		"limits: {requests: {per_minute: -1, burst: 100000}}",
		"identity: {type: static, static: {users: {\"a:b\": {token: x}}}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The key-path walk is bounded whatever the aliases say.
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) == nil {
			k := newKeyChecker()
			k.walk(&doc, reflect.TypeFor[Server](), "")
			if k.visits > maxWalk {
				t.Fatalf("walked %d nodes, the bound is %d", k.visits, maxWalk)
			}
		}
		c, comp, err := Parse(data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error %v (%T) is not an Error with problems", err, err)
			}
			for _, p := range ce.Problems {
				if strings.TrimSpace(p) == "" {
					t.Fatalf("an empty problem in %q", ce.Problems)
				}
			}
			// Problems come in the same order every time.
			if _, _, err2 := Parse(data); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("parsing twice gave different problems:\n%v\n%v", err, err2)
			}
			return
		}
		checkAcceptedConfig(t, c, comp)
	})
}

// checkAcceptedConfig asserts what every accepted config guarantees.
func checkAcceptedConfig(t *testing.T, c *Server, comp *Compiled) {
	t.Helper()
	again, err := c.Validate()
	if err != nil {
		t.Fatalf("accepted config does not validate: %v", err)
	}
	if len(again.Policies) != len(comp.Policies) || again.Limits != comp.Limits || len(again.TrustedCAKeys) != len(comp.TrustedCAKeys) {
		t.Fatalf("validating again compiles differently: %+v, then %+v", comp, again)
	}
	if c.Identity.Type == "static" && !isLoopback(c.Listen) {
		t.Fatalf("static identity accepted on %s", c.Listen)
	}
	if c.TLS == nil && !isLoopback(c.Listen) {
		t.Fatalf("no TLS on %s", c.Listen)
	}
	for _, team := range append(append([]string{}, c.Auditors...), c.Admins...) {
		if ca.CheckTeam(team) != nil {
			t.Fatalf("team %q accepted", team)
		}
	}
	if len(comp.TrustedCAKeys) != len(c.TrustedCAKeys) {
		t.Fatalf("%d trusted CA keys compiled of %d", len(comp.TrustedCAKeys), len(c.TrustedCAKeys))
	}
	pols := comp.Policies
	if len(pols) != len(c.HostGroups) || len(pols) == 0 {
		t.Fatalf("%d policies for %d host groups", len(pols), len(c.HostGroups))
	}
	for _, p := range pols {
		if ca.CheckGroup(p.Group) != nil || len(p.Principals) == 0 {
			t.Fatalf("host group %q accepted with principals %q", p.Group, p.Principals)
		}
		for _, pr := range p.Principals {
			if ca.CheckPrincipal(pr) != nil {
				t.Fatalf("principal %q accepted", pr)
			}
		}
		for _, team := range append(append([]string{}, p.Requesters...), p.Approvers...) {
			if ca.CheckTeam(team) != nil {
				t.Fatalf("team %q accepted", team)
			}
		}
		if p.CertTTL <= 0 || p.CertTTL > ca.MaxCertTTL || p.MaxDuration < time.Minute || p.MaxDuration > approval.MaxGrant || p.CertTTL > p.MaxDuration {
			t.Fatalf("group %s: cert_ttl %s, max_duration %s accepted", p.Group, p.CertTTL, p.MaxDuration)
		}
		if p.ApprovalsRequired < 0 || p.ApprovalsRequired > approval.MaxApprovals || p.ApprovalsRequired > 0 && len(p.Approvers) == 0 {
			t.Fatalf("group %s: approvals_required %d with approvers %q accepted", p.Group, p.ApprovalsRequired, p.Approvers)
		}
		for _, a := range p.SourceAddress {
			if _, err := netip.ParsePrefix(a); err != nil {
				if _, err := netip.ParseAddr(a); err != nil {
					t.Fatalf("source address %q accepted", a)
				}
			}
		}
		if c.HostGroups[p.Group].AllowedHours != "" && p.AllowedHours == nil {
			t.Fatalf("group %s: allowed_hours %q not compiled", p.Group, c.HostGroups[p.Group].AllowedHours)
		}
		// Template refuses nothing an accepted config produces.
		if _, err := ca.KeyID("alice", p.Group, "r-abcdefghijklmnop", nil); err != nil {
			t.Fatalf("group %q cannot be put in a KeyId: %v", p.Group, err)
		}
	}
	l := comp.Limits
	for _, r := range []struct {
		per   float64
		burst int
	}{{l.Requests.PerMinute, l.Requests.Burst}, {l.Certificates.PerMinute, l.Certificates.Burst}, {l.Writes.PerMinute, l.Writes.Burst}} {
		if r.per < 0 || r.per > maxPerMinute || r.burst < 1 || r.burst > maxBurst {
			t.Fatalf("limits %+v accepted", l)
		}
	}
}

func FuzzConfigDuration(f *testing.F) {
	for _, s := range []string{"5m", "2h", "0", "-1h", "1.5h", "1e3s", "30", "", "9999999999999999999h", "1h\n", "~", "[1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Line: 1}
		var d Duration
		err := d.UnmarshalYAML(n)
		// The key-path walk and the decoder agree on what is a duration.
		k := newKeyChecker()
		k.walk(n, durationType, "host_groups.g.cert_ttl")
		if (err == nil) != (len(k.problems) == 0) {
			t.Fatalf("%q: UnmarshalYAML says %v, the walk says %q", s, err, k.problems)
		}
		if err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				t.Fatalf("%q: error %T is not a *yaml.TypeError, so decoding would stop at it", s, err)
			}
			return
		}
		out, err := d.MarshalYAML()
		if err != nil {
			t.Fatal(err)
		}
		var again Duration
		if err := again.UnmarshalYAML(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: out.(string)}); err != nil || again != d {
			t.Fatalf("%q -> %v -> %v, %v", s, out, again, err)
		}
	})
}
