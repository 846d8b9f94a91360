package ca_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
)

// t0 is the fixed "now" of the ca tests: a Monday morning.
var t0 = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)

const reqID = "r-abcdefghijklmnop"

// testGrant returns a grant for alice on prod-db, approved by bob and dave,
// ending an hour after t0.
func testGrant() ca.Grant {
	return ca.Grant{
		RequestID: reqID,
		User:      "alice",
		Group:     "prod-db",
		Approvers: []string{"bob", "dave"},
		Ends:      t0.Add(time.Hour),
		Profile: ca.Profile{
			Principals: []string{"prod-db", "dba"},
			CertTTL:    5 * time.Minute,
			Extensions: []string{"permit-pty"},
		},
	}
}

func newEd25519(t testing.TB) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyIDFormat(t *testing.T) {
	tests := []struct {
		name      string
		user      string
		group     string
		approvers []string
		want      string
	}{
		{"two approvers", "alice", "prod-db", []string{"bob", "dave"}, "jit-ssh:user=alice:group=prod-db:req=" + reqID + ":by=bob,dave"},
		{"one approver", "erin", "eu.db_1", []string{"bob"}, "jit-ssh:user=erin:group=eu.db_1:req=" + reqID + ":by=bob"},
		{"auto-approved", "alice", "staging", nil, "jit-ssh:user=alice:group=staging:req=" + reqID + ":by=-"},
		{"empty approver list", "alice", "staging", []string{}, "jit-ssh:user=alice:group=staging:req=" + reqID + ":by=-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ca.KeyID(tt.user, tt.group, reqID, tt.approvers)
			if err != nil {
				t.Fatalf("KeyID: %v", err)
			}
			if got != tt.want {
				t.Errorf("KeyID = %q, want %q", got, tt.want)
			}
			user, group, id, approvers, ok := ca.KeyIDFields(got)
			if !ok {
				t.Fatalf("KeyIDFields(%q) ok = false, want true", got)
			}
			if user != tt.user || group != tt.group || id != reqID {
				t.Errorf("KeyIDFields = %q, %q, %q, want %q, %q, %q", user, group, id, tt.user, tt.group, reqID)
			}
			if !slices.Equal(approvers, tt.approvers) {
				t.Errorf("KeyIDFields approvers = %q, want %q", approvers, tt.approvers)
			}
		})
	}
}

func TestKeyIDFieldsRefusesOtherStrings(t *testing.T) {
	for _, s := range []string{
		"",
		"alice",
		"jit-ssh:",
		"jit-ssh:user=alice:group=prod-db:req=" + reqID,                     // no by=
		"jit-ssh:user=alice:group=prod-db:req=" + reqID + ":by=bob:x=y",     // extra field
		"jit-ssh:group=prod-db:user=alice:req=" + reqID + ":by=bob",         // fields out of order
		"vault:user=alice:group=prod-db:req=" + reqID + ":by=bob",           // wrong prefix
		"jit-ssh:usr=alice:group=prod-db:req=" + reqID + ":by=bob",          // wrong key
		"JIT-SSH:user=alice:group=prod-db:req=" + reqID + ":by=bob",         // prefix is case-sensitive
		"jit-ssh:user=alice:group=prod-db:req=" + reqID + ":by=bob\n:extra", // extra field after a newline
	} {
		t.Run(s, func(t *testing.T) {
			if u, g, r, a, ok := ca.KeyIDFields(s); ok {
				t.Errorf("KeyIDFields(%q) = %q, %q, %q, %q, true; want ok = false", s, u, g, r, a)
			}
		})
	}
}

func TestKeyIDRefusesInjectedNames(t *testing.T) {
	for _, in := range injected {
		fields := []struct {
			field     string
			user      string
			group     string
			id        string
			approvers []string
		}{
			{"user", in.s, "prod-db", reqID, []string{"bob"}},
			{"group", "alice", in.s, reqID, []string{"bob"}},
			{"request id", "alice", "prod-db", in.s, []string{"bob"}},
			{"approver", "alice", "prod-db", reqID, []string{"bob", in.s}},
		}
		for _, f := range fields {
			t.Run(f.field+"/"+in.name, func(t *testing.T) {
				got, err := ca.KeyID(f.user, f.group, f.id, f.approvers)
				if !errors.Is(err, ca.ErrInvalidName) {
					t.Errorf("KeyID with %s %q = %q, %v; want an error wrapping ca.ErrInvalidName", f.field, in.s, got, err)
				}
				if got != "" {
					t.Errorf("KeyID returned %q alongside an error, want \"\"", got)
				}
			})
		}
	}
}

func TestTemplate(t *testing.T) {
	subject := newEd25519(t)
	tests := []struct {
		name       string
		edit       func(*ca.Grant)
		now        time.Time
		skew       time.Duration
		wantBefore time.Time
		wantCrit   map[string]string
		wantExt    []string
	}{
		{
			name:       "cert_ttl ends first",
			now:        t0,
			skew:       ca.DefaultSkew,
			wantBefore: t0.Add(5 * time.Minute),
			wantExt:    []string{"permit-pty"},
		},
		{
			name:       "grant ends first",
			now:        t0.Add(58 * time.Minute),
			skew:       ca.DefaultSkew,
			wantBefore: t0.Add(time.Hour),
			wantExt:    []string{"permit-pty"},
		},
		{
			name:       "grant and cert_ttl end together",
			now:        t0.Add(55 * time.Minute),
			skew:       30 * time.Second,
			wantBefore: t0.Add(time.Hour),
			wantExt:    []string{"permit-pty"},
		},
		{
			name:       "no extensions in the policy means none in the certificate",
			edit:       func(g *ca.Grant) { g.Profile.Extensions = nil },
			now:        t0,
			skew:       ca.DefaultSkew,
			wantBefore: t0.Add(5 * time.Minute),
		},
		{
			name: "several extensions and source-address",
			edit: func(g *ca.Grant) {
				g.Profile.Extensions = []string{"permit-pty", "permit-port-forwarding"}
				g.Profile.SourceAddress = []string{"10.0.0.0/8", "192.168.1.7"}
			},
			now:        t0,
			skew:       0,
			wantBefore: t0.Add(5 * time.Minute),
			wantCrit:   map[string]string{"source-address": "10.0.0.0/8,192.168.1.7"},
			wantExt:    []string{"permit-port-forwarding", "permit-pty"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testGrant()
			if tt.edit != nil {
				tt.edit(&g)
			}
			c, err := ca.Template(g, subject, tt.now, tt.skew, rand.Reader)
			if err != nil {
				t.Fatalf("Template: %v", err)
			}
			if c.CertType != ssh.UserCert {
				t.Errorf("CertType = %d, want %d (user)", c.CertType, ssh.UserCert)
			}
			if !bytes.Equal(c.Key.Marshal(), subject.Marshal()) {
				t.Errorf("Key is not the subject key")
			}
			if !slices.Equal(c.ValidPrincipals, g.Profile.Principals) {
				t.Errorf("ValidPrincipals = %q, want exactly %q", c.ValidPrincipals, g.Profile.Principals)
			}
			if got, want := ca.CertTime(c.ValidAfter), tt.now.Add(-tt.skew); !got.Equal(want) {
				t.Errorf("ValidAfter = %s, want now - skew = %s", got, want)
			}
			if got := ca.CertTime(c.ValidBefore); !got.Equal(tt.wantBefore) {
				t.Errorf("ValidBefore = %s, want %s", got, tt.wantBefore)
			}
			if got := ca.CertTime(c.ValidBefore); got.After(g.Ends) {
				t.Errorf("ValidBefore %s outlives the grant (ends %s)", got, g.Ends)
			}
			wantKeyID, _ := ca.KeyID(g.User, g.Group, g.RequestID, g.Approvers)
			if c.KeyId != wantKeyID {
				t.Errorf("KeyId = %q, want %q", c.KeyId, wantKeyID)
			}
			if c.Serial == 0 || c.Serial >= 1<<63 {
				t.Errorf("Serial = %d, want in [1, 2^63)", c.Serial)
			}
			if !maps.Equal(c.CriticalOptions, tt.wantCrit) {
				t.Errorf("CriticalOptions = %v, want %v", c.CriticalOptions, tt.wantCrit)
			}
			if got := slices.Sorted(maps.Keys(c.Extensions)); !slices.Equal(got, tt.wantExt) {
				t.Errorf("Extensions = %q, want %q", got, tt.wantExt)
			}
			for k, v := range c.Extensions {
				if v != "" {
					t.Errorf("extension %s = %q, want empty value", k, v)
				}
			}
			if c.Signature != nil || c.SignatureKey != nil {
				t.Errorf("template is signed, want unsigned")
			}
		})
	}
}

func TestTemplateDoesNotAliasPolicy(t *testing.T) {
	g := testGrant()
	c, err := ca.Template(g, newEd25519(t), t0, ca.DefaultSkew, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	g.Profile.Principals[0] = "root"
	if c.ValidPrincipals[0] != "prod-db" {
		t.Errorf("changing the policy after Template changed the certificate's principals to %q", c.ValidPrincipals)
	}
}

func TestTemplateRefuses(t *testing.T) {
	subject := newEd25519(t)
	tests := []struct {
		name    string
		edit    func(*ca.Grant)
		now     time.Time
		wantErr error // nil: any error
	}{
		{"grant ended an hour ago", nil, t0.Add(2 * time.Hour), ca.ErrGrantEnded},
		{"grant ends exactly now", nil, t0.Add(time.Hour), ca.ErrGrantEnded},
		{"grant ended early", func(g *ca.Grant) { g.Ends = t0.Add(-time.Second) }, t0, ca.ErrGrantEnded},
		{"zero grant end", func(g *ca.Grant) { g.Ends = time.Time{} }, t0, ca.ErrGrantEnded},
		{"no principals", func(g *ca.Grant) { g.Profile.Principals = nil }, t0, nil},
		{"principal with a comma", func(g *ca.Grant) { g.Profile.Principals = []string{"prod-db,root"} }, t0, ca.ErrInvalidName},
		{"principal with a space", func(g *ca.Grant) { g.Profile.Principals = []string{"prod-db root"} }, t0, ca.ErrInvalidName},
		{"principal dot-dot", func(g *ca.Grant) { g.Profile.Principals = []string{".."} }, t0, ca.ErrInvalidName},
		{"zero cert_ttl", func(g *ca.Grant) { g.Profile.CertTTL = 0 }, t0, nil},
		{"negative cert_ttl", func(g *ca.Grant) { g.Profile.CertTTL = -time.Minute }, t0, nil},
		{"injected user", func(g *ca.Grant) { g.User = "alice:by=mallory" }, t0, ca.ErrInvalidName},
		{"injected approver", func(g *ca.Grant) { g.Approvers = []string{"bob\n"} }, t0, ca.ErrInvalidName},
		{"malformed request id", func(g *ca.Grant) { g.RequestID = "42" }, t0, ca.ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testGrant()
			if tt.edit != nil {
				tt.edit(&g)
			}
			c, err := ca.Template(g, subject, tt.now, ca.DefaultSkew, rand.Reader)
			if err == nil {
				t.Fatalf("Template = %+v, nil; want an error", c)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Template error = %v, want it to wrap %v", err, tt.wantErr)
			}
			if c != nil {
				t.Errorf("Template returned a certificate alongside error %v", err)
			}
		})
	}
}

// errReader fails every read.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestRandomSerial(t *testing.T) {
	tests := []struct {
		name    string
		r       io.Reader
		want    uint64
		wantErr bool
	}{
		{"zero draw is skipped", bytes.NewReader(append(make([]byte, 8), 0, 0, 0, 0, 0, 0, 0, 2)), 1, false},
		{"top bit is dropped", bytes.NewReader(bytes.Repeat([]byte{0xff}, 8)), 1<<63 - 1, false},
		{"one draw is skipped, short read fails", bytes.NewReader(make([]byte, 12)), 0, true},
		{"reader error", errReader{}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ca.RandomSerial(tt.r)
			if (err != nil) != tt.wantErr {
				t.Fatalf("RandomSerial error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("RandomSerial = %d, want %d", got, tt.want)
			}
		})
	}

	seen := map[uint64]bool{}
	for range 1000 {
		s, err := ca.RandomSerial(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if s == 0 || s >= 1<<63 || seen[s] {
			t.Fatalf("RandomSerial = %d (seen before: %v), want a fresh value in [1, 2^63)", s, seen[s])
		}
		seen[s] = true
	}
}

func TestTemplateRandomSerialError(t *testing.T) {
	_, err := ca.Template(testGrant(), newEd25519(t), t0, ca.DefaultSkew, errReader{})
	if err == nil || !strings.Contains(err.Error(), "entropy exhausted") {
		t.Errorf("Template with a failing reader = %v, want the reader's error", err)
	}
}

func TestCertTime(t *testing.T) {
	tests := []struct {
		in   uint64
		want time.Time
	}{
		{0, time.Unix(0, 0).UTC()},
		{uint64(t0.Unix()), t0},
		{ssh.CertTimeInfinity, time.Unix(1<<62, 0).UTC()},
	}
	for _, tt := range tests {
		if got := ca.CertTime(tt.in); !got.Equal(tt.want) {
			t.Errorf("CertTime(%d) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestKeyIDFieldsRefusesLookAlikes: KeyIDFields says ok only for a string
// KeyID or BreakGlassKeyID writes, so a look-alike in a host's log (a
// hand-made certificate, another CA's) is not read as jit-ssh evidence.
func TestKeyIDFieldsRefusesLookAlikes(t *testing.T) {
	for _, s := range []string{
		"jit-ssh:user=:group=:req=:by=",
		"jit-ssh:user=alice smith:group=prod-db:req=" + reqID + ":by=-",
		"jit-ssh:user=alice:group=Prod-DB:req=" + reqID + ":by=-",
		"jit-ssh:user=alice:group=prod-db:req=r-1:by=-",
		"jit-ssh:user=alice:group=prod-db:req=" + reqID + ":by=",
		"jit-ssh:user=alice:group=prod-db:req=" + reqID + ":by=bob,",
		"jit-ssh:user=alice:group=prod-db:req=" + reqID + ":by=bob,break-glass",
		"jit-ssh:user=alice:group=prod-db:req=" + reqID + ":by=jit-ssh",
		"jit-ssh:user=alice:group=prod-db:req=" + reqID + ":by=bob\x1b[2J",
		"jit-ssh:user=gha:acme/web:run=1:group=prod-db:req=" + reqID + ":by=bob\n",
		"jit-ssh:user=gha:acme/web:run=x1:group=prod-db:req=" + reqID + ":by=-",
		"jit-ssh:user=gha:acme/web:run=1:group=prod db:req=" + reqID + ":by=-",
		"jit-ssh:user=gha:acme/web:run=1:group=prod-db:req=" + reqID + ":by=-,-",
	} {
		if u, g, r, a, ok := ca.KeyIDFields(s); ok {
			t.Errorf("KeyIDFields(%q) = %q, %q, %q, %q, true; want ok = false", s, u, g, r, a)
		}
	}
	if _, err := ca.KeyID("alice", "prod-db", reqID, []string{ca.BreakGlassBy}); err == nil {
		t.Error("KeyID accepted the reserved approver break-glass: an approved grant's KeyId would read by=break-glass")
	}
}

// TestKeyIDFieldsRoundTrips: every KeyId written (a person's, a
// workload's, approved, auto-approved, break glass) parses back exactly.
func TestKeyIDFieldsRoundTrips(t *testing.T) {
	for _, user := range []string{"alice", "a-1", "gha:acme/web:run=123", "gha:Acme-1/web.site_x:run=9"} {
		for _, by := range [][]string{nil, {"bob"}, {"bob", "carol"}} {
			id, err := ca.KeyID(user, "prod-db", reqID, by)
			if err != nil {
				t.Fatalf("KeyID(%q, %q): %v", user, by, err)
			}
			u, g, r, a, ok := ca.KeyIDFields(id)
			if !ok || u != user || g != "prod-db" || r != reqID || !slices.Equal(a, by) {
				t.Errorf("KeyIDFields(%q) = %q %q %q %q %v", id, u, g, r, a, ok)
			}
		}
		id, err := ca.BreakGlassKeyID(user, "prod-db", reqID)
		if err != nil {
			t.Fatal(err)
		}
		u, g, r, a, ok := ca.KeyIDFields(id)
		if !ok || u != user || g != "prod-db" || r != reqID || !slices.Equal(a, []string{ca.BreakGlassBy}) {
			t.Errorf("KeyIDFields(%q) = %q %q %q %q %v; want by [break-glass]", id, u, g, r, a, ok)
		}
	}
}
