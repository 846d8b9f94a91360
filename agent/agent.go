package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"
)

// commentPrefix marks the agent entries this tool owns.
const commentPrefix = "jit-ssh:"

// ErrNoAgent means no ssh-agent could be reached.
var ErrNoAgent = errors.New("agent: no ssh-agent")

// DialError is Dial's failure to connect to the agent at Sock. It wraps
// ErrNoAgent and, as Err, the cause: callers that word their own message
// (jit-ssh doctor) take the cause from it.
type DialError struct {
	Sock string
	Err  error
}

func (e *DialError) Error() string {
	return fmt.Sprintf("%v: cannot connect to %s (%v); start one with: eval \"$(ssh-agent)\"", ErrNoAgent, e.Sock, e.Err)
}

// Unwrap returns ErrNoAgent and the cause.
func (e *DialError) Unwrap() []error { return []error{ErrNoAgent, e.Err} }

// NewKey returns a fresh ed25519 key pair, held only in memory.
func NewKey() (ed25519.PrivateKey, ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: generating key: %w", err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: %w", err)
	}
	return priv, sp, nil
}

// Keyring loads and lists this tool's certificates in an ssh-agent.
type Keyring struct {
	agent sshagent.Agent
	now   func() time.Time
	close func() error
}

// New wraps an agent (a connection to a running one, or
// sshagent.NewKeyring() in tests). now may be nil for time.Now.
func New(a sshagent.Agent, now func() time.Time) *Keyring {
	if now == nil {
		now = time.Now
	}
	return &Keyring{agent: a, now: now, close: func() error { return nil }}
}

// Dial connects to the agent listening at sock, the caller's SSH_AUTH_SOCK
// (this package reads no environment). An empty sock means there is none.
// A failed connection is a *DialError; both failures wrap ErrNoAgent.
func Dial(sock string) (*Keyring, error) {
	if sock == "" {
		return nil, fmt.Errorf("%w: SSH_AUTH_SOCK is not set; start one with: eval \"$(ssh-agent)\"", ErrNoAgent)
	}
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return nil, &DialError{Sock: sock, Err: err}
	}
	k := New(sshagent.NewClient(conn), nil)
	k.close = conn.Close
	return k, nil
}

// Close closes the agent connection.
func (k *Keyring) Close() error { return k.close() }

// Entry is one of this tool's certificates in the agent.
type Entry struct {
	Group       string
	Serial      uint64
	KeyID       string
	Principals  []string
	ValidBefore time.Time
	Comment     string
	cert        *ssh.Certificate
}

// Comment is the agent comment for a certificate of group: it is what
// `ssh-add -l` shows and how this tool recognises its own entries.
// ParseComment reads it back.
func Comment(group string, serial uint64) string {
	return fmt.Sprintf("%sgroup=%s:serial=%d", commentPrefix, group, serial)
}

// ParseComment reads an agent comment written by Comment. ok is false for
// any other comment: the user's own keys, or a jit-ssh comment without a
// group or with a serial that is not a number.
func ParseComment(c string) (group string, serial uint64, ok bool) {
	rest, ok := strings.CutPrefix(c, commentPrefix+"group=")
	if !ok {
		return "", 0, false
	}
	group, s, ok := strings.Cut(rest, ":serial=")
	if !ok || group == "" {
		return "", 0, false
	}
	serial, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return group, serial, true
}

// Lifetime is how long the agent should hold a certificate: its remaining
// validity, rounded up to a whole second, at least one second.
func Lifetime(cert *ssh.Certificate, now time.Time) uint32 {
	if cert.ValidBefore == ssh.CertTimeInfinity || cert.ValidBefore > math.MaxInt64 {
		return math.MaxUint32
	}
	left := time.Unix(int64(cert.ValidBefore), 0).Sub(now)
	secs := int64((left + time.Second - 1) / time.Second)
	return uint32(max(1, min(secs, math.MaxUint32)))
}

// Load removes this tool's older certificates for group, then adds key with
// cert for the certificate's remaining lifetime.
func (k *Keyring) Load(group string, key ed25519.PrivateKey, cert *ssh.Certificate) error {
	if _, err := k.Remove(group); err != nil {
		return err
	}
	err := k.agent.Add(sshagent.AddedKey{
		PrivateKey:   key,
		Certificate:  cert,
		Comment:      Comment(group, cert.Serial),
		LifetimeSecs: Lifetime(cert, k.now()),
	})
	if err != nil {
		return fmt.Errorf("agent: adding the certificate: %w", err)
	}
	return nil
}

// Key is one key the agent holds, of any origin.
type Key struct {
	// Comment is the agent's comment for the key.
	Comment string
	// Cert is the key's certificate; nil for a plain key.
	Cert *ssh.Certificate
	// Group is the host group when the key is one of this tool's
	// certificates (a certificate whose comment ParseComment reads), else "".
	Group string
}

// Keys returns every key in the agent, the user's own included. An error
// wraps the agent's answer.
func (k *Keyring) Keys() ([]Key, error) {
	keys, err := k.agent.List()
	if err != nil {
		return nil, fmt.Errorf("agent: listing keys: %w", err)
	}
	out := make([]Key, 0, len(keys))
	for _, key := range keys {
		kk := Key{Comment: key.Comment}
		if pub, err := ssh.ParsePublicKey(key.Blob); err == nil {
			kk.Cert, _ = pub.(*ssh.Certificate)
		}
		if group, _, ok := ParseComment(key.Comment); ok && kk.Cert != nil {
			kk.Group = group
		}
		out = append(out, kk)
	}
	return out, nil
}

// List returns this tool's certificates in the agent, expired ones included
// (an agent that honours lifetimes will have dropped them already).
func (k *Keyring) List() ([]Entry, error) {
	keys, err := k.Keys()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, key := range keys {
		if key.Group == "" {
			continue
		}
		cert := key.Cert
		out = append(out, Entry{
			Group: key.Group, Serial: cert.Serial, KeyID: cert.KeyId, Principals: cert.ValidPrincipals,
			ValidBefore: time.Unix(int64(min(cert.ValidBefore, math.MaxInt64)), 0), Comment: key.Comment, cert: cert, //nolint:gosec // clamped
		})
	}
	return out, nil
}

// Remove deletes this tool's certificates for group (all groups when group
// is empty) and returns how many it removed. The user's other keys stay.
func (k *Keyring) Remove(group string) (int, error) {
	entries, err := k.List()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if group != "" && e.Group != group {
			continue
		}
		if err := k.agent.Remove(e.cert); err != nil {
			return n, fmt.Errorf("agent: removing %s: %w", e.Comment, err)
		}
		n++
	}
	return n, nil
}
