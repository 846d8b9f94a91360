package ca_test

// Fuzz targets for every parser in ca that reads outside input: subject
// public keys sent to POST /v1/certificates, the names that end up in
// principals files and KeyIds, and KRLs read by `host sync`. Seeds are the
// f.Add calls below plus the files under testdata/fuzz/<target>/ (keys
// written by ssh-keygen, and any crasher found, kept as a regression case).
// `make fuzz` runs each target for a bounded time; `go test` runs the seeds.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
)

// allowedKeyTypes are the subject key types of SPEC section 6.
var allowedKeyTypes = []string{
	ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSA,
}

func FuzzParseSubjectKey(f *testing.F) {
	ed, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public())
	if err != nil {
		f.Fatal(err)
	}
	edLine := authorizedLine(ed)
	for _, s := range []string{
		edLine,
		edLine + " alice@laptop",
		"  " + edLine + "  \n",
		`command="/bin/sh" ` + edLine,
		edLine + "\n" + edLine,
		edLine + "\x00",
		authorizedLine(skEd25519Key(f)),
		authorizedLine(skECDSAKey(f)),
		authorizedLine(ecdsaKey(f, elliptic.P384())),
		authorizedLine(dsaKey(f)),
		"ssh-ed25519 AAAA",
		"ssh-ed25519",
		"",
		"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAAQ==",
		"\xff\xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		pub, err := ca.ParseSubjectKey(line)
		if err != nil {
			if !errors.Is(err, ca.ErrBadKey) && !errors.Is(err, ca.ErrKeyType) {
				t.Fatalf("ParseSubjectKey error %v wraps neither ErrBadKey nor ErrKeyType (the API would answer 500)", err)
			}
			if pub != nil {
				t.Fatalf("ParseSubjectKey returned a key and an error")
			}
			return
		}
		if !slices.Contains(allowedKeyTypes, pub.Type()) {
			t.Fatalf("accepted key type %q, not one of %v", pub.Type(), allowedKeyTypes)
		}
		if _, isCert := pub.(*ssh.Certificate); isCert {
			t.Fatalf("accepted a certificate as a subject key")
		}
		if strings.ContainsAny(strings.TrimSpace(line), "\n\r\x00") {
			t.Fatalf("accepted a key line with a line break or NUL: %q", line)
		}
		if cp, ok := pub.(ssh.CryptoPublicKey); ok {
			if k, ok := cp.CryptoPublicKey().(*rsa.PublicKey); ok && k.N.BitLen() < ca.MinRSABits {
				t.Fatalf("accepted an rsa key of %d bits", k.N.BitLen())
			}
		}
		if err := ca.CheckSubjectKey(pub); err != nil {
			t.Fatalf("ParseSubjectKey accepted what CheckSubjectKey refuses: %v", err)
		}
		// What the server stores and signs round-trips.
		again, err := ca.ParseSubjectKey(string(ssh.MarshalAuthorizedKey(pub)))
		if err != nil {
			t.Fatalf("re-parsing the accepted key: %v", err)
		}
		if !bytes.Equal(again.Marshal(), pub.Marshal()) {
			t.Fatalf("round trip changed the key")
		}
	})
}

// forbiddenInNames are characters that would inject a principal, a KeyId
// field, a path or a config line if a name could carry them.
const forbiddenInNames = ":,\n\r\x00 \t/\\=\"'`$;#*?"

func checkNameChars(t *testing.T, what, s string, maxLen int) {
	t.Helper()
	if s == "" || len(s) > maxLen {
		t.Fatalf("%s %q accepted with length %d (want 1..%d)", what, s, len(s), maxLen)
	}
	if strings.ContainsAny(s, forbiddenInNames) {
		t.Fatalf("%s %q accepted with a forbidden character", what, s)
	}
	for _, r := range s {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			t.Fatalf("%s %q accepted with non-ASCII or unprintable %q", what, s, r)
		}
	}
	if s == "." || s == ".." || strings.HasPrefix(s, "-") || strings.HasPrefix(s, ".") {
		t.Fatalf("%s %q accepted but starts with '.' or '-'", what, s)
	}
}

func FuzzNames(f *testing.F) {
	for _, s := range []string{
		"alice", "a-b", "prod-db", "prod.db_2", "r-abcdefghijklmnop", "..", ".", "-x", "a--b",
		"alice\n", "alice,bob", "alice bob", "alice\x00", "al:ice", "ålice", "ALICE", "root", "a/b",
		strings.Repeat("a", 39), strings.Repeat("a", 40), strings.Repeat("p", 64), strings.Repeat("p", 65),
	} {
		f.Add(s, "prod-db", "r-abcdefghijklmnop", s+"|bob")
	}
	f.Fuzz(func(t *testing.T, s, group, reqID, approvers string) {
		checks := []struct {
			what   string
			check  func(string) error
			maxLen int
		}{
			{"login", ca.CheckLogin, 39},
			{"host group", ca.CheckGroup, 63},
			{"team", ca.CheckTeam, 63},
			{"principal", ca.CheckPrincipal, 64},
			{"request id", ca.CheckRequestID, 18},
		}
		for _, c := range checks {
			err := c.check(s)
			if err != nil {
				if !errors.Is(err, ca.ErrInvalidName) {
					t.Fatalf("Check %s(%q) = %v, want ErrInvalidName", c.what, s, err)
				}
				continue
			}
			checkNameChars(t, c.what, s, c.maxLen)
		}
		if ca.CheckLogin(s) == nil && strings.Contains(s, "--") {
			t.Fatalf("login %q with a double hyphen accepted (GitHub refuses them)", s)
		}
		// A KeyId built from checked names parses back to the same names,
		// so no name can forge a field of the evidence sshd logs.
		var by []string
		if approvers != "" {
			by = strings.Split(approvers, "|")
		}
		for _, user := range []string{s, "alice"} {
			keyID, err := ca.KeyID(user, group, reqID, by)
			if err != nil {
				if !errors.Is(err, ca.ErrInvalidName) {
					t.Fatalf("KeyID error %v is not ErrInvalidName", err)
				}
				continue
			}
			if strings.ContainsAny(keyID, " \t\n\r\x00\"'") || strings.Count(keyID, ":") != 4 {
				t.Fatalf("KeyId %q has whitespace, quotes or a wrong number of fields", keyID)
			}
			u, g, r, a, ok := ca.KeyIDFields(keyID)
			if !ok || u != user || g != group || r != reqID || !slices.Equal(a, by) {
				t.Fatalf("KeyIDFields(%q) = %q %q %q %q %v, want %q %q %q %q", keyID, u, g, r, a, ok, user, group, reqID, by)
			}
		}
		// KeyIDFields on arbitrary text never panics and, when it says ok,
		// the fields rebuild the same KeyId if they are valid names.
		if u, g, r, a, ok := ca.KeyIDFields(s); ok {
			if rebuilt, err := ca.KeyID(u, g, r, a); err == nil && rebuilt != s {
				t.Fatalf("KeyIDFields(%q) rebuilds as %q", s, rebuilt)
			}
		}
	})
}

// FuzzParseKRLHeader holds the KRL parser to the real ssh-keygen (see
// keygenOracle): whatever it accepts, OpenSSH reads.
func FuzzParseKRLHeader(f *testing.F) {
	oracle := newKeygenOracle(f)
	caKey, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)).Public())
	if err != nil {
		f.Fatal(err)
	}
	gen := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	empty := ca.MarshalKRL(1, gen, "", nil)
	full := ca.MarshalKRL(42, gen, "jit-ssh", []ca.RevokedSerials{{CA: caKey, Serials: []uint64{3, 1, 2, 2}}})
	f.Add(empty)
	f.Add(full)
	f.Add(full[:len(full)-1])
	f.Add(append(slices.Clone(empty), 9, 0, 0, 0, 0))   // unknown section type
	f.Add(append(slices.Clone(empty), 1, 0, 0, 0, 200)) // section longer than the data
	f.Add(append(slices.Clone(empty), 1))               // section type with no body
	f.Add([]byte("SSHKRL\n\x00"))
	f.Add([]byte{})
	for _, h := range handmadeKRLs(caKey.Marshal()) {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		oracle.check(t, data)
		h, err := ca.ParseKRLHeader(data)
		if err != nil {
			if !errors.Is(err, ca.ErrBadKRL) {
				t.Fatalf("ParseKRLHeader error %v is not ErrBadKRL", err)
			}
		} else {
			if !bytes.HasPrefix(data, []byte("SSHKRL\n\x00\x00\x00\x00\x01")) {
				t.Fatalf("accepted a KRL without the magic and format version 1")
			}
			if got := binary.BigEndian.Uint64(data[12:]); got != h.Version {
				t.Fatalf("version %d, header says %d", h.Version, got)
			}
			// The header re-encodes to a KRL that parses to the same header.
			again, err := ca.ParseKRLHeader(ca.MarshalKRL(h.Version, h.Generated, h.Comment, nil))
			if err != nil || again.Version != h.Version || !again.Generated.Equal(h.Generated) || again.Comment != h.Comment {
				t.Fatalf("header round trip: %+v, %v; want %+v", again, err, h)
			}
		}
		// Whatever the server marshals from these bytes (as serials and a
		// comment, which ends at a NUL) parses back to what went in, and
		// OpenSSH reads it.
		var serials []uint64
		for b := data; len(b) >= 8; b = b[8:] {
			serials = append(serials, binary.BigEndian.Uint64(b))
		}
		version := uint64(len(data))
		out := ca.MarshalKRL(version, gen, string(data), []ca.RevokedSerials{{CA: caKey, Serials: serials}})
		comment, _, _ := strings.Cut(string(data), "\x00")
		h2, err := ca.ParseKRLHeader(out)
		if err != nil || h2.Version != version || h2.Comment != comment || !h2.Generated.Equal(gen) {
			t.Fatalf("MarshalKRL output does not parse back: %+v, %v", h2, err)
		}
		if ours, theirs := oracle.check(t, out); !ours || !theirs {
			t.Fatalf("MarshalKRL output: ParseKRL ok=%v, ssh-keygen ok=%v", ours, theirs)
		}
	})
}
