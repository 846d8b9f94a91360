package agent_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"math"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/jit-ssh/jit-ssh/agent"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// testCA signs certificates for the tests.
func testCA(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newCert returns a fresh key and its certificate, valid until validBefore.
func newCert(t *testing.T, ca ssh.Signer, serial uint64, validBefore uint64) (ed25519.PrivateKey, *ssh.Certificate) {
	t.Helper()
	priv, pub, err := agent.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{
		Key: pub, Serial: serial, CertType: ssh.UserCert, KeyId: "jit-ssh:test",
		ValidPrincipals: []string{"deploy"}, ValidAfter: uint64(t0.Add(-time.Minute).Unix()), ValidBefore: validBefore,
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return priv, cert
}

func TestCommentRoundTrip(t *testing.T) {
	tests := []struct {
		group  string
		serial uint64
	}{
		{"staging", 1},
		{"prod-db", 7},
		{"a", math.MaxUint64},
		{"eu.west-1", 0},
	}
	for _, tt := range tests {
		c := agent.Comment(tt.group, tt.serial)
		group, serial, ok := agent.ParseComment(c)
		if !ok || group != tt.group || serial != tt.serial {
			t.Errorf("ParseComment(%q) = %q, %d, %v; want %q, %d, true", c, group, serial, ok, tt.group, tt.serial)
		}
	}
	if got, want := agent.Comment("prod-db", 7), "jit-ssh:group=prod-db:serial=7"; got != want {
		t.Errorf("Comment = %q, want %q (what ssh-add -l shows; other versions parse it)", got, want)
	}
}

func TestParseCommentRejects(t *testing.T) {
	for _, c := range []string{
		"",
		"user@laptop",
		"jit-ssh:",
		"jit-ssh:group=",
		"jit-ssh:group=:serial=7",
		"jit-ssh:group=prod",
		"jit-ssh:group=prod:serial=",
		"jit-ssh:group=prod:serial=x7",
		"jit-ssh:group=prod:serial=-1",
		"jit-ssh:group=prod:serial=18446744073709551616",
		"JIT-SSH:group=prod:serial=7",
		" jit-ssh:group=prod:serial=7",
	} {
		if group, serial, ok := agent.ParseComment(c); ok {
			t.Errorf("ParseComment(%q) = %q, %d, true; want not ok", c, group, serial)
		}
	}
}

func TestLifetime(t *testing.T) {
	tests := []struct {
		name        string
		validBefore uint64
		want        uint32
	}{
		{"whole seconds", uint64(t0.Add(10 * time.Minute).Unix()), 600},
		{"already expired", uint64(t0.Add(-time.Hour).Unix()), 1},
		{"ends now", uint64(t0.Unix()), 1},
		{"forever", ssh.CertTimeInfinity, math.MaxUint32},
		{"beyond int64", math.MaxInt64 + 1, math.MaxUint32},
		{"beyond uint32 seconds", uint64(t0.Unix()) + math.MaxUint32 + 10, math.MaxUint32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := agent.Lifetime(&ssh.Certificate{ValidBefore: tt.validBefore}, t0)
			if got != tt.want {
				t.Errorf("Lifetime = %d, want %d", got, tt.want)
			}
		})
	}
	// Rounded up: half a second left is one second in the agent.
	if got := agent.Lifetime(&ssh.Certificate{ValidBefore: uint64(t0.Unix()) + 60}, t0.Add(500*time.Millisecond)); got != 60 {
		t.Errorf("Lifetime with 59.5s left = %d, want 60", got)
	}
}

// lifetimeAgent records the lifetime each added key asked for; the
// keyring of x/crypto does not report it.
type lifetimeAgent struct {
	sshagent.Agent
	added []sshagent.AddedKey
}

func (a *lifetimeAgent) Add(k sshagent.AddedKey) error {
	a.added = append(a.added, k)
	return a.Agent.Add(k)
}

func TestLoad(t *testing.T) {
	ca := testCA(t)
	la := &lifetimeAgent{Agent: sshagent.NewKeyring()}
	ring := agent.New(la, func() time.Time { return t0 })

	// The user's own key stays through every load and removal.
	_, userPriv, _ := ed25519.GenerateKey(nil)
	if err := la.Agent.Add(sshagent.AddedKey{PrivateKey: userPriv, Comment: "user@laptop"}); err != nil {
		t.Fatal(err)
	}
	key1, cert1 := newCert(t, ca, 1, uint64(t0.Add(30*time.Minute).Unix()))
	if err := ring.Load("staging", key1, cert1); err != nil {
		t.Fatal(err)
	}
	if got := la.added[len(la.added)-1]; got.LifetimeSecs != 1800 || got.Comment != agent.Comment("staging", 1) {
		t.Errorf("added with lifetime %d and comment %q, want 1800 and %q", got.LifetimeSecs, got.Comment, agent.Comment("staging", 1))
	}
	keyDB, certDB := newCert(t, ca, 2, uint64(t0.Add(time.Hour).Unix()))
	if err := ring.Load("prod-db", keyDB, certDB); err != nil {
		t.Fatal(err)
	}
	// A second login for staging replaces the first certificate.
	key3, cert3 := newCert(t, ca, 3, uint64(t0.Add(10*time.Minute).Unix()))
	if err := ring.Load("staging", key3, cert3); err != nil {
		t.Fatal(err)
	}

	entries, err := ring.List()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, e := range entries {
		got[e.Group] = e.Serial
		if e.Comment != agent.Comment(e.Group, e.Serial) {
			t.Errorf("entry comment %q, want %q", e.Comment, agent.Comment(e.Group, e.Serial))
		}
	}
	if len(entries) != 2 || got["staging"] != 3 || got["prod-db"] != 2 {
		t.Fatalf("entries %v, want staging serial 3 and prod-db serial 2", got)
	}
	for _, e := range entries {
		if e.Group == "staging" {
			if !e.ValidBefore.Equal(t0.Add(10*time.Minute)) || e.KeyID != "jit-ssh:test" || len(e.Principals) != 1 || e.Principals[0] != "deploy" {
				t.Errorf("staging entry %+v, want the certificate's fields", e)
			}
		}
	}

	// The agent signs with the loaded certificate: it holds the matching key.
	signers, err := la.Signers()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range signers {
		if c, ok := s.PublicKey().(*ssh.Certificate); ok && c.Serial == 3 {
			found = true
			sig, err := s.Sign(nil, []byte("data"))
			if err != nil || c.Key.Verify([]byte("data"), sig) != nil {
				t.Errorf("the loaded certificate's key does not sign for it: %v", err)
			}
		}
	}
	if !found {
		t.Error("no signer for the loaded certificate")
	}

	keys, err := ring.Keys()
	if err != nil {
		t.Fatal(err)
	}
	var user, own int
	for _, k := range keys {
		switch {
		case k.Comment == "user@laptop" && k.Cert == nil && k.Group == "":
			user++
		case k.Group != "" && k.Cert != nil:
			own++
		}
	}
	if len(keys) != 3 || user != 1 || own != 2 {
		t.Errorf("Keys: %d keys, %d the user's, %d this tool's; want 3, 1, 2", len(keys), user, own)
	}

	if n, err := ring.Remove("prod-db"); err != nil || n != 1 {
		t.Fatalf("Remove(prod-db) = %d, %v; want 1", n, err)
	}
	if n, err := ring.Remove(""); err != nil || n != 1 {
		t.Fatalf("Remove(all) = %d, %v; want 1 (staging)", n, err)
	}
	if n, err := ring.Remove(""); err != nil || n != 0 {
		t.Fatalf("Remove(all) again = %d, %v; want 0", n, err)
	}
	left, err := la.List()
	if err != nil {
		t.Fatal(err)
	}
	var comments []string
	for _, k := range left {
		comments = append(comments, k.Comment)
		if _, _, ok := agent.ParseComment(k.Comment); ok {
			if pub, err := ssh.ParsePublicKey(k.Blob); err == nil {
				if _, isCert := pub.(*ssh.Certificate); isCert {
					t.Errorf("certificate %q left after removing them all", k.Comment)
				}
			}
		}
	}
	if !containsString(comments, "user@laptop") {
		t.Errorf("the user's own key is gone: %q", comments)
	}
}

// A key whose comment looks like this tool's but is no certificate is the
// user's: List skips it and Remove leaves it.
func TestListSkipsLookalikes(t *testing.T) {
	kr := sshagent.NewKeyring()
	_, priv, _ := ed25519.GenerateKey(nil)
	if err := kr.Add(sshagent.AddedKey{PrivateKey: priv, Comment: agent.Comment("staging", 9)}); err != nil {
		t.Fatal(err)
	}
	ring := agent.New(kr, nil)
	entries, err := ring.List()
	if err != nil || len(entries) != 0 {
		t.Fatalf("List = %v, %v; want nothing", entries, err)
	}
	if n, err := ring.Remove(""); err != nil || n != 0 {
		t.Fatalf("Remove = %d, %v; want 0", n, err)
	}
}

// The agent refuses a certificate that does not match the key it comes
// with; Load says so and loads nothing.
func TestLoadRefusesMismatchedKey(t *testing.T) {
	ca := testCA(t)
	kr := sshagent.NewKeyring()
	ring := agent.New(kr, func() time.Time { return t0 })
	_, cert := newCert(t, ca, 4, uint64(t0.Add(time.Hour).Unix()))
	other, _, err := agent.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Load("staging", other, cert); err == nil {
		t.Fatal("Load of a certificate for another key succeeded")
	}
	if entries, _ := ring.List(); len(entries) != 0 {
		t.Fatalf("entries after a refused load: %v", entries)
	}
}

// failingAgent is an agent whose List fails.
type failingAgent struct{ sshagent.Agent }

var errAgentBroken = errors.New("agent refused")

func (failingAgent) List() ([]*sshagent.Key, error) { return nil, errAgentBroken }

// A locked agent refuses the key; an agent that cannot list fails every
// call that needs the listing, with the agent's error wrapped.
func TestAgentFailures(t *testing.T) {
	ca := testCA(t)
	kr := sshagent.NewKeyring()
	if err := kr.Lock([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	key, cert := newCert(t, ca, 5, uint64(t0.Add(time.Hour).Unix()))
	if err := agent.New(kr, nil).Load("staging", key, cert); err == nil {
		t.Error("Load into a locked agent succeeded")
	}

	ring := agent.New(failingAgent{sshagent.NewKeyring()}, nil)
	if _, err := ring.Keys(); !errors.Is(err, errAgentBroken) {
		t.Errorf("Keys = %v, want it to wrap the agent's error", err)
	}
	if _, err := ring.List(); !errors.Is(err, errAgentBroken) {
		t.Errorf("List = %v, want it to wrap the agent's error", err)
	}
	if _, err := ring.Remove(""); !errors.Is(err, errAgentBroken) {
		t.Errorf("Remove = %v, want it to wrap the agent's error", err)
	}
	if err := ring.Load("staging", key, cert); !errors.Is(err, errAgentBroken) {
		t.Errorf("Load = %v, want it to wrap the agent's error (it removes the old entries first)", err)
	}
}

func TestDial(t *testing.T) {
	_, err := agent.Dial("")
	if !errors.Is(err, agent.ErrNoAgent) || !bytes.Contains([]byte(err.Error()), []byte("SSH_AUTH_SOCK is not set")) {
		t.Errorf("Dial(\"\") = %v, want ErrNoAgent naming SSH_AUTH_SOCK", err)
	}
	sock := filepath.Join(t.TempDir(), "gone.sock")
	_, err = agent.Dial(sock)
	var de *agent.DialError
	if !errors.Is(err, agent.ErrNoAgent) || !errors.As(err, &de) || de.Sock != sock || de.Err == nil {
		t.Fatalf("Dial(missing) = %v, want a *DialError for %s wrapping ErrNoAgent", err, sock)
	}
	want := "agent: no ssh-agent: cannot connect to " + sock + " (" + de.Err.Error() + "); start one with: eval \"$(ssh-agent)\""
	if err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
