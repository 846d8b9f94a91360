package ca_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// keygenOracle asks the real ssh-keygen whether it reads a KRL: `ssh-keygen
// -Q -f KRL key.pub` loads the KRL with ssh_krl_from_blob, the function sshd
// reads RevokedKeys with, and exits 255 ("Invalid KRL file") when it cannot.
type keygenOracle struct {
	keygen, dir, pub string
}

func newKeygenOracle(t testing.TB) *keygenOracle {
	t.Helper()
	o := &keygenOracle{keygen: testenv.RequireBinary(t, "ssh-keygen"), dir: t.TempDir()}
	k, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)).Public())
	if err != nil {
		t.Fatal(err)
	}
	o.pub = filepath.Join(o.dir, "some.pub")
	if err := os.WriteFile(o.pub, ssh.MarshalAuthorizedKey(k), 0o600); err != nil {
		t.Fatal(err)
	}
	return o
}

// accepts reports whether ssh-keygen reads data as a KRL, and what it said.
func (o *keygenOracle) accepts(t testing.TB, data []byte) (bool, string) {
	t.Helper()
	path := filepath.Join(o.dir, "test.krl")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(o.keygen, "-Q", "-f", path, o.pub).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, string(out) // read, the key not revoked
	case errors.As(err, &ee) && ee.ExitCode() == 1 && strings.Contains(string(out), "REVOKED"):
		return true, string(out) // read, the key revoked
	case errors.As(err, &ee) && ee.ExitCode() == 255:
		return false, string(out)
	default:
		t.Fatalf("ssh-keygen -Q: %v\n%s", err, out)
		return false, ""
	}
}

// check holds ca.ParseKRL to ssh-keygen on data: it never accepts a KRL
// ssh-keygen refuses (sshd would then refuse every certificate), and it
// refuses one ssh-keygen reads only where it is documented to be stricter
// (a CA key jit-ssh does not sign with, or not in canonical form). It
// reports both answers.
func (o *keygenOracle) check(t testing.TB, data []byte) (ours, theirs bool) {
	t.Helper()
	_, err := ca.ParseKRL(data)
	theirs, said := o.accepts(t, data)
	switch {
	case err == nil && !theirs:
		t.Errorf("ParseKRL accepted a KRL that ssh-keygen refuses (%s):\n%x", strings.TrimSpace(said), data)
	case err != nil && !errors.Is(err, ca.ErrBadKRL):
		t.Errorf("ParseKRL error %v is not ErrBadKRL", err)
	case err != nil && theirs && !errors.Is(err, ca.ErrKRLStricter):
		t.Errorf("ParseKRL refused a KRL that ssh-keygen reads: %v\n%x", err, data)
	}
	return err == nil, theirs
}

// caKeyFiles writes CA public keys of each type jit-ssh signs with.
func caKeyFiles(t *testing.T, dir string) map[string]ssh.PublicKey {
	t.Helper()
	keys := map[string]ssh.PublicKey{}
	add := func(name string, raw any) {
		k, err := ssh.NewPublicKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = k
		if err := os.WriteFile(filepath.Join(dir, name+".pub"), ssh.MarshalAuthorizedKey(k), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	add("ed25519", ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public())
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		add("ecdsa-"+c.Params().Name, &k.PublicKey)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	add("rsa", &rk.PublicKey)
	return keys
}

// keygenKRLs has ssh-keygen -k write KRLs of every section and subsection
// type it writes: serial lists, ranges and bitmaps, key IDs, explicit keys,
// SHA1 and SHA256 hashes, per CA key and for any CA (-s none).
func keygenKRLsIn(t *testing.T, o *keygenOracle, caKeys map[string]ssh.PublicKey, caDir string) [][]byte {
	t.Helper()
	dir := t.TempDir()
	var plain []string
	for i := range 3 {
		k, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(20 + i)}, 32)).Public())
		if err != nil {
			t.Fatal(err)
		}
		plain = append(plain, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
	}
	var scattered strings.Builder
	for s := 1000; s < 1400; s += 3 {
		fmt.Fprintf(&scattered, "serial: %d\n", s)
	}
	certSpecs := []string{
		"serial: 5\n",
		"serial: 1\nserial: 5\nserial: 7-9\nserial: 100-20000\n",
		scattered.String(),
		"serial: 18446744073709551615\nserial: 18446744073709551000-18446744073709551010\n",
		"id: jit-ssh:user=alice:group=prod-db:req=r-aaaaaaaaaaaaaaaa:by=bob\nid: other\n",
		"serial: 42\nid: x\n" + scattered.String(),
	}
	keySpecs := []string{
		plain[0] + "\n" + plain[1] + "\n",
		"sha1: " + plain[0] + "\nsha256: " + plain[1] + "\n",
		"key: " + plain[2] + "\nsha256: " + plain[0] + "\nsha1: " + plain[1] + "\n",
	}
	var out [][]byte
	gen := func(args []string, spec string) {
		specPath := filepath.Join(dir, "spec")
		krlPath := filepath.Join(dir, "out.krl")
		os.Remove(krlPath)
		if err := os.WriteFile(specPath, []byte(spec), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(o.keygen, append(append([]string{"-k", "-f", krlPath, "-z", "77"}, args...), specPath)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen %v on %q: %v\n%s", cmd.Args, spec, err, b)
		}
		data, err := os.ReadFile(krlPath)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	for _, name := range slices.Sorted(maps.Keys(caKeys)) {
		for _, spec := range certSpecs {
			gen([]string{"-s", filepath.Join(caDir, name+".pub")}, spec)
		}
	}
	for _, spec := range certSpecs {
		gen([]string{"-s", "none"}, spec)
	}
	for _, spec := range keySpecs {
		gen(nil, spec)
	}
	// All of it in one KRL.
	gen([]string{"-s", filepath.Join(caDir, "ed25519.pub")}, certSpecs[1]+certSpecs[4]+keySpecs[2])
	return out
}

func wire(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// sstr is b as an SSH string: its length, then b.
func sstr(b []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...) } //nolint:gosec // test data
func u64(v uint64) []byte  { return binary.BigEndian.AppendUint64(nil, v) }

// handmadeKRLs are edge cases of each rule of krl.c, each next to the
// nearest case on the other side of it.
func handmadeKRLs(caBlob []byte) [][]byte {
	hdr := wire([]byte("SSHKRL\n\x00"), []byte{0, 0, 0, 1}, u64(9), u64(0), u64(0), sstr(nil), sstr(nil))
	sec := func(t byte, body []byte) []byte { return wire(hdr, []byte{t}, sstr(body)) }
	certs := func(ca []byte, subs ...[]byte) []byte {
		return sec(1, wire(append([][]byte{sstr(ca), sstr(nil)}, subs...)...))
	}
	sub := func(t byte, body []byte) []byte { return wire([]byte{t}, sstr(body)) }
	bitmap := func(lo uint64, bm []byte) []byte { return sub(0x22, wire(u64(lo), sstr(bm))) }
	return [][]byte{
		hdr,
		wire([]byte("SSHKRL\n\x00"), []byte{0, 0, 0, 1}, u64(9), u64(0), u64(0xffff), sstr([]byte("junk")), sstr([]byte("c"))),
		wire([]byte("SSHKRL\n\x00"), []byte{0, 0, 0, 1}, u64(9), u64(0), u64(0), sstr(nil), sstr([]byte("a\x00b"))),
		sec(0, nil), sec(6, nil), sec(255, nil), sec(4, []byte("garbage")), sec(4, caBlob),
		sec(1, nil),
		certs(nil), certs(caBlob), certs(append(slices.Clone(caBlob), 'x')), certs(caBlob[:len(caBlob)-1]),
		sec(1, wire(sstr(nil), sstr([]byte("reserved")))),
		certs(nil, sub(0x20, nil)), certs(nil, sub(0x20, u64(1))), certs(nil, sub(0x20, u64(0))),
		certs(nil, sub(0x20, u64(1)[:7])), certs(nil, sub(0x20, wire(u64(3), u64(3)))),
		certs(nil, sub(0x21, wire(u64(5), u64(5)))), certs(nil, sub(0x21, wire(u64(5), u64(4)))),
		certs(nil, sub(0x21, wire(u64(0), u64(4)))), certs(nil, sub(0x21, wire(u64(1), u64(4), []byte{0}))),
		certs(nil, sub(0x21, u64(1))),
		certs(nil, bitmap(1, nil)), certs(nil, bitmap(0, nil)), certs(nil, bitmap(0, []byte{1})), certs(nil, bitmap(0, []byte{2})),
		certs(nil, bitmap(1, []byte{0x80})), certs(nil, bitmap(1, []byte{0, 0x80})), certs(nil, bitmap(1, []byte{0, 0, 1})),
		certs(nil, bitmap(1, wire([]byte{0x7f}, bytes.Repeat([]byte{0xff}, 2047)))),
		certs(nil, bitmap(1, wire([]byte{0}, bytes.Repeat([]byte{0xff}, 2048)))),
		certs(nil, bitmap(1, wire([]byte{1}, bytes.Repeat([]byte{0xff}, 2048)))),
		certs(nil, bitmap(1, wire([]byte{0, 0}, bytes.Repeat([]byte{0x7f}, 2047)))),
		certs(nil, bitmap(^uint64(0), []byte{1})), certs(nil, bitmap(^uint64(0), []byte{2})), certs(nil, bitmap(^uint64(0), []byte{4})),
		certs(nil, bitmap(^uint64(7), []byte{0xff})), certs(nil, bitmap(^uint64(7), []byte{1, 0})),
		certs(nil, sub(0x22, u64(1))), certs(nil, sub(0x22, wire(u64(1), sstr([]byte{1}), []byte{0}))),
		certs(nil, sub(0x23, sstr(nil))), certs(nil, sub(0x23, sstr([]byte("a\x00b")))), certs(nil, sub(0x23, []byte{0, 0})),
		certs(caBlob, sub(0x24, nil)), certs(caBlob, sub(0x1f, nil)), certs(caBlob, []byte{0x20}),
		sec(2, sstr(nil)), sec(2, sstr([]byte("not a key"))), sec(2, []byte{0, 0, 0, 9}),
		sec(3, sstr(make([]byte, 20))), sec(3, sstr(make([]byte, 19))), sec(3, sstr(make([]byte, 32))),
		sec(5, sstr(make([]byte, 32))), sec(5, sstr(make([]byte, 31))), sec(5, sstr(make([]byte, 20))), sec(5, nil),
		wire(hdr, []byte{1}), wire(hdr, []byte{1, 0, 0, 0}), wire(hdr, []byte{1, 0, 0, 0, 5}),
	}
}

// caKeyEdgeKRLs are certificates sections whose CA key sits on either side
// of OpenSSH's checks: RSA modulus sizes, non-canonical numbers, key types
// jit-ssh does not sign with, a certificate, a wrong curve name.
func caKeyEdgeKRLs(t *testing.T) [][]byte {
	t.Helper()
	rsaBlob := func(bits int, pad bool) []byte {
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1)) //nolint:gosec // small test sizes
		n.Add(n, big.NewInt(12345))
		nb := n.Bytes()
		if nb[0]&0x80 != 0 || pad {
			nb = append([]byte{0}, nb...)
		}
		e := []byte{1, 0, 1}
		if pad {
			e = append([]byte{0}, e...)
		}
		return wire(sstr([]byte(ssh.KeyAlgoRSA)), sstr(e), sstr(nb))
	}
	ed := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, 32))
	edPub, err := ssh.NewPublicKey(ed.Public())
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(ed)
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{Key: edPub, Serial: 1, CertType: ssh.UserCert, KeyId: "k", ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPub, err := ssh.NewPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ecBlob := ecPub.Marshal()
	wrongCurve := bytes.Replace(slices.Clone(ecBlob), []byte("nistp256\x00"), []byte("nistp384\x00"), 1)
	offCurve := slices.Clone(ecBlob)
	offCurve[len(offCurve)-1] ^= 1
	skBlob := wire(sstr([]byte(ssh.KeyAlgoSKED25519)), sstr(edPub.Marshal()[19:]), sstr([]byte("ssh:")))
	var out [][]byte
	hdr := wire([]byte("SSHKRL\n\x00"), []byte{0, 0, 0, 1}, u64(9), u64(0), u64(0), sstr(nil), sstr(nil))
	for _, blob := range [][]byte{
		rsaBlob(1023, false), rsaBlob(1024, false), rsaBlob(2048, false), rsaBlob(2048, true), rsaBlob(16384, false), rsaBlob(16385, false),
		cert.Marshal(), ecBlob, wrongCurve, offCurve, skBlob, edPub.Marshal()[:20],
	} {
		out = append(out, wire(hdr, []byte{1}, sstr(wire(sstr(blob), sstr(nil), []byte{0x20}, sstr(u64(7))))))
	}
	return out
}

// mutate returns n variants of base: bit flips, overwritten bytes,
// truncations, insertions, and garbage of the same length inside one
// section or subsection (framing intact), the case that got through before.
func mutate(r *mrand.Rand, base []byte, n int) [][]byte {
	spans := krlSpans(base)
	var out [][]byte
	for range n {
		m := slices.Clone(base)
		switch op := r.IntN(6); {
		case op == 0 && len(m) > 0:
			i := r.IntN(len(m))
			m[i] ^= 1 << r.IntN(8)
		case op == 1 && len(m) > 0:
			m[r.IntN(len(m))] = byte(r.IntN(256))
		case op == 2 && len(m) > 0:
			m = m[:r.IntN(len(m))]
		case op == 3:
			i := r.IntN(len(m) + 1)
			ins := make([]byte, 1+r.IntN(8))
			for j := range ins {
				ins[j] = byte(r.IntN(256))
			}
			m = slices.Insert(m, i, ins...)
		case len(spans) > 0:
			s := spans[r.IntN(len(spans))]
			k := 1 + r.IntN(4)
			for range k {
				if s[1] > s[0] {
					m[s[0]+r.IntN(s[1]-s[0])] = byte(r.IntN(256))
				}
			}
		default:
			m = append(m, byte(1+r.IntN(6)), 0, 0, 0, 1, byte(r.IntN(256)))
		}
		out = append(out, m)
	}
	return out
}

// krlSpans returns the [start, end) of every section body, and of every
// subsection body of a certificates section, of a well-framed KRL.
func krlSpans(data []byte) [][2]int {
	if len(data) < 8+4+24 {
		return nil
	}
	off := 8 + 4 + 24
	skip := func(off int) int {
		if off+4 > len(data) {
			return -1
		}
		n := int(binary.BigEndian.Uint32(data[off:]))
		if off+4+n > len(data) {
			return -1
		}
		return off + 4 + n
	}
	for range 2 {
		if off = skip(off); off < 0 {
			return nil
		}
	}
	var spans [][2]int
	for off < len(data) {
		t := data[off]
		end := skip(off + 1)
		if end < 0 {
			break
		}
		body := off + 5
		spans = append(spans, [2]int{body, end})
		if t == 1 {
			p := body
			for range 2 {
				if p = skip(p); p < 0 || p > end {
					break
				}
			}
			for p > 0 && p < end {
				q := skip(p + 1)
				if q < 0 || q > end {
					break
				}
				spans = append(spans, [2]int{p + 5, q})
				p = q
			}
		}
		off = end
	}
	return spans
}

// TestParseKRLAgreesWithSSHKeygen holds ParseKRL to ssh-keygen -Q over
// KRLs ssh-keygen wrote (every section and subsection type), MarshalKRL's,
// hand-made edge cases of each rule, and seeded mutations of all of them:
// ParseKRL accepts none that OpenSSH refuses (finding 4 of issue 13: a KRL
// with garbage inside a section was installed and locked every certificate
// out), and refuses none that OpenSSH reads, but for its documented
// strictness about CA keys.
func TestParseKRLAgreesWithSSHKeygen(t *testing.T) {
	o := newKeygenOracle(t)
	caDir := t.TempDir()
	caKeys := caKeyFiles(t, caDir)
	bases := keygenKRLsIn(t, o, caKeys, caDir)
	for i, b := range bases {
		if ours, theirs := o.check(t, b); !ours || !theirs {
			t.Fatalf("ssh-keygen's own KRL %d: ParseKRL ok=%v, ssh-keygen ok=%v", i, ours, theirs)
		}
	}
	gen := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, k := range caKeys {
		m := ca.MarshalKRL(5, gen, "jit-ssh", []ca.RevokedSerials{{CA: k, Serials: []uint64{0, 1, 3, 1 << 63, ^uint64(0)}}})
		if ours, theirs := o.check(t, m); !ours || !theirs {
			t.Fatalf("MarshalKRL: ParseKRL ok=%v, ssh-keygen ok=%v", ours, theirs)
		}
		bases = append(bases, m)
	}
	counts := map[[2]bool]int{}
	for _, h := range append(handmadeKRLs(caKeys["ed25519"].Marshal()), caKeyEdgeKRLs(t)...) {
		ours, theirs := o.check(t, h)
		counts[[2]bool{ours, theirs}]++
		bases = append(bases, h)
	}
	r := mrand.New(mrand.NewPCG(13, 4))
	for _, b := range bases {
		for _, m := range mutate(r, b, 8) {
			ours, theirs := o.check(t, m)
			counts[[2]bool{ours, theirs}]++
		}
	}
	t.Logf("ParseKRL/ssh-keygen (accepted, accepted): %d both, %d neither, %d only ssh-keygen", counts[[2]bool{true, true}], counts[[2]bool{false, false}], counts[[2]bool{false, true}])
	if counts[[2]bool{true, true}] < 50 || counts[[2]bool{false, false}] < 50 {
		t.Errorf("the corpus is one-sided (%v): it would not show the parsers agree", counts)
	}
}
