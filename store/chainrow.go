package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
)

// The computations every backend makes the same way, so that two ledgers
// holding the same rows hold the same hashes, digests and MACs byte for
// byte (and a ledger can be copied from one backend to another): the event
// chain's row hash, the digests that bind request, review and certificate
// rows to the chain, and the row MAC.

// CanonicalEvent is the encoding an event row's hash covers. Field order
// is fixed by the struct; Data is the exact stored JSON text and Serial
// the uint64 serial in decimal.
type CanonicalEvent struct {
	ID        int64           `json:"id"`
	At        int64           `json:"at"`
	Actor     string          `json:"actor"`
	Type      string          `json:"type"`
	RequestID string          `json:"request_id"`
	Serial    string          `json:"serial"`
	Data      json.RawMessage `json:"data"`
	PrevHash  string          `json:"prev_hash"`
}

// Hash returns the hex SHA-256 of e's canonical encoding: the hash the
// event row must carry.
func (e *CanonicalEvent) Hash() string {
	b, err := json.Marshal(e)
	if err != nil {
		// Only RawMessage can fail, and it holds JSON we produced.
		panic(fmt.Sprintf("store: encoding event: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// EventRowHash returns the hash an event row must carry: the hex SHA-256
// of its canonical encoding, which covers the previous row's hash. It is
// the chain's definition, for tools that build ledgers outside the server
// (the benchmarks' generated ledgers) or check them.
func EventRowHash(id, at int64, actor, typ, requestID string, serial uint64, data, prevHash string) string {
	ce := CanonicalEvent{ID: id, At: at, Actor: actor, Type: typ, RequestID: requestID,
		Serial: strconv.FormatUint(serial, 10), Data: json.RawMessage(data), PrevHash: prevHash}
	return ce.Hash()
}

// EventData encodes ev's data as stored ("{}" when it has none).
func EventData(ev ca.Event) ([]byte, error) {
	if len(ev.Data) == 0 {
		return []byte("{}"), nil
	}
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return nil, fmt.Errorf("store: encoding event data: %w", err)
	}
	return data, nil
}

// CheckEventRow returns why an event row read back is not intact ("" when
// it is): its data must be JSON, its hash must cover its content and, when
// macKey is set and the row carries a MAC (mac != ""), the MAC must be the
// one macKey makes.
func CheckEventRow(ce *CanonicalEvent, hash, mac string, macKey []byte) string {
	if !json.Valid(ce.Data) {
		return "has data that is not valid JSON"
	}
	if ce.Hash() != hash {
		return "does not match its hash (the row was edited)"
	}
	if macKey != nil && mac != "" && mac != EventMAC(macKey, ce.ID, hash) {
		return "carries a MAC this server did not make (the row was forged)"
	}
	return ""
}

// macKeyMessage is signed once at open to derive the MAC key. A
// deterministic signature (ed25519, RSA PKCS#1 v1.5) is a secret only the
// checkpoint key's holder can compute, and the same after every restart.
const macKeyMessage = "jit-ssh ledger row mac key v1"

// DeriveMACKey returns the key that marks the event rows a server writes,
// or nil when s is nil or signs non-deterministically (ECDSA): then rows
// carry no MAC and VerifyTail checks the tail's chain and rows only.
func DeriveMACKey(s ssh.Signer) []byte {
	if s == nil {
		return nil
	}
	a, err := s.Sign(rand.Reader, []byte(macKeyMessage))
	if err != nil {
		return nil
	}
	b, err := s.Sign(rand.Reader, []byte(macKeyMessage))
	if err != nil || !bytes.Equal(a.Blob, b.Blob) {
		return nil
	}
	k := sha256.Sum256(append([]byte(macKeyMessage+"\x00"), a.Blob...))
	return k[:]
}

// EventMAC is the MAC of event row id with hash h: HMAC-SHA256 truncated
// to 128 bits (as RFC 4868 does), 32 hex digits on every row.
func EventMAC(key []byte, id int64, h string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strconv.FormatInt(id, 10) + ":" + h))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// MACKeyFor is the key the MAC of event row id must verify under, for a
// server whose start-up check (VerifyTail) read rows up to checkedThrough:
// none for those (they may carry an earlier checkpoint key's MAC, after a
// clean key rotation), this server's key for the rows written since.
func MACKeyFor(key []byte, checkedThrough, id int64) []byte {
	if id <= checkedThrough {
		return nil
	}
	return key
}

// WithData returns a copy of ev whose data also holds kv (pairs of key and
// value); the caller's map is not changed.
func WithData(ev ca.Event, kv ...string) ca.Event {
	d := make(map[string]any, len(ev.Data)+len(kv)/2)
	maps.Copy(d, ev.Data)
	for i := 0; i+1 < len(kv); i += 2 {
		d[kv[i]] = kv[i+1]
	}
	ev.Data = d
	return ev
}
