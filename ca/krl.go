package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"math/bits"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// OpenSSH key revocation lists (PROTOCOL.krl). jit-ssh revokes certificates
// by serial, per CA key, which is the one section type it writes. No Go KRL
// library is published on the module proxy (stripe/krl and its forks are
// not), so the codec is here, small, and tested against ssh-keygen -Q.
const (
	krlMagic         = "SSHKRL\n\x00"
	krlFormatVersion = 1

	// Section types.
	krlSectionCerts       = 1
	krlSectionExplicitKey = 2
	krlSectionSHA1        = 3
	krlSectionSignature   = 4
	krlSectionSHA256      = 5

	// Subsection types of a certificates section.
	krlCertSerialList   = 0x20
	krlCertSerialRange  = 0x21
	krlCertSerialBitmap = 0x22
	krlCertKeyID        = 0x23

	// krlMaxBignumBytes is OpenSSH's SSHBUF_MAX_BIGNUM (16384 bits), the
	// longest serial bitmap it reads.
	krlMaxBignumBytes = 16384 / 8
)

// RevokedSerials lists the revoked serials of one CA key.
type RevokedSerials struct {
	CA      ssh.PublicKey
	Serials []uint64
}

// MarshalKRL encodes a KRL with the given version (which must grow with
// every change), generation time and comment, revoking each set's serials.
// The output is always a KRL sshd reads: the comment ends at its first NUL
// byte, if any, and serial 0 is left out (OpenSSH refuses a KRL that lists
// it, and never revokes a certificate by serial 0 anyway).
func MarshalKRL(version uint64, generated time.Time, comment string, sets []RevokedSerials) []byte {
	comment, _, _ = strings.Cut(comment, "\x00")
	var b bytes.Buffer
	b.WriteString(krlMagic)
	putUint32(&b, krlFormatVersion)
	putUint64(&b, version)
	putUint64(&b, unixSeconds(generated))
	putUint64(&b, 0) // flags
	putString(&b, nil)
	putString(&b, []byte(comment))
	for _, set := range sets {
		if len(set.Serials) == 0 {
			continue
		}
		serials := slices.Clone(set.Serials)
		slices.Sort(serials)
		serials = slices.Compact(serials)
		if serials[0] == 0 {
			serials = serials[1:]
		}
		if len(serials) == 0 {
			continue
		}
		var list bytes.Buffer
		for _, s := range serials {
			putUint64(&list, s)
		}
		var sec bytes.Buffer
		putString(&sec, set.CA.Marshal())
		putString(&sec, nil) // reserved
		sec.WriteByte(krlCertSerialList)
		putString(&sec, list.Bytes())
		b.WriteByte(krlSectionCerts)
		putString(&b, sec.Bytes())
	}
	return b.Bytes()
}

// KRLHeader is the header of a KRL.
type KRLHeader struct {
	Version   uint64
	Generated time.Time
	Comment   string
}

// ErrBadKRL means data is not an OpenSSH KRL.
var ErrBadKRL = errors.New("ca: not an OpenSSH KRL")

// ErrKRLStricter marks the refusals where ParseKRL is stricter than
// OpenSSH on purpose (a signature section, a CA key of a type jit-ssh does
// not sign with or not in canonical form); they wrap ErrBadKRL too.
var ErrKRLStricter = errors.New("ca: stricter than OpenSSH")

// ParseKRLHeader is ParseKRL: it returns the header of a KRL only once the
// whole KRL has been read the way OpenSSH reads it.
func ParseKRLHeader(data []byte) (*KRLHeader, error) { return ParseKRL(data) }

// ParseKRL reads a KRL the way OpenSSH's ssh_krl_from_blob (krl.c) does,
// every section and subsection of it, and returns its header. sshd refuses
// every certificate while its RevokedKeys file does not parse, so a KRL
// ParseKRL accepts must be one OpenSSH accepts; the test holds it to
// ssh-keygen -Q over generated and mutated KRLs. Where reading like OpenSSH
// would take more than jit-ssh needs, ParseKRL is stricter: it refuses a
// signature section (jit-ssh never signs its KRL), and it reads a CA key
// only of the types jit-ssh signs with (ed25519, ECDSA, RSA), in canonical
// encoding. Errors wrap ErrBadKRL and name the section and what is wrong.
func ParseKRL(data []byte) (*KRLHeader, error) {
	if len(data) < 8 || string(data[:8]) != krlMagic {
		return nil, fmt.Errorf("%w: bad magic or too short", ErrBadKRL)
	}
	r := krlReader{data[8:]}
	format, ok := r.u32()
	if !ok {
		return nil, fmt.Errorf("%w: truncated header", ErrBadKRL)
	}
	if format != krlFormatVersion {
		return nil, fmt.Errorf("%w: format version %d", ErrBadKRL, format)
	}
	h := &KRLHeader{}
	version, ok1 := r.u64()
	generated, ok2 := r.u64()
	_, ok3 := r.u64() // flags: OpenSSH reads any
	_, ok4 := r.str() // reserved
	comment, ok5 := r.str()
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return nil, fmt.Errorf("%w: truncated header", ErrBadKRL)
	}
	if bytes.IndexByte(comment, 0) >= 0 {
		return nil, fmt.Errorf("%w: the comment holds a NUL byte", ErrBadKRL)
	}
	h.Version, h.Generated, h.Comment = version, CertTime(generated), string(comment)
	for n := 1; len(r.b) > 0; n++ {
		t, _ := r.u8()
		body, ok := r.str()
		if !ok {
			return nil, fmt.Errorf("%w: section %d (type %d) is truncated", ErrBadKRL, n, t)
		}
		var err error
		switch t {
		case krlSectionCerts:
			err = checkKRLCerts(body)
		case krlSectionExplicitKey:
			err = checkKRLBlobs(body, 0)
		case krlSectionSHA1:
			err = checkKRLBlobs(body, 20)
		case krlSectionSHA256:
			err = checkKRLBlobs(body, 32)
		case krlSectionSignature:
			err = fmt.Errorf("a signature, which jit-ssh never writes (%w)", ErrKRLStricter)
		default:
			// sshd refuses a KRL with a section type it does not know,
			// and then every certificate.
			return nil, fmt.Errorf("%w: unknown section type %d (section %d)", ErrBadKRL, t, n)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: section %d (type %d): %w", ErrBadKRL, n, t, err)
		}
	}
	return h, nil
}

// checkKRLCerts checks a certificates section: a CA key (empty: any CA), a
// reserved string, and subsections OpenSSH's parse_revoked_certs accepts.
func checkKRLCerts(body []byte) error {
	r := krlReader{body}
	caKey, ok1 := r.str()
	_, ok2 := r.str() // reserved
	if !ok1 || !ok2 {
		return errors.New("truncated CA key or reserved field")
	}
	if len(caKey) > 0 {
		if err := checkKRLCAKey(caKey); err != nil {
			return fmt.Errorf("CA key (%w): %w", ErrKRLStricter, err)
		}
	}
	for n := 1; len(r.b) > 0; n++ {
		t, _ := r.u8()
		sub, ok := r.str()
		if !ok {
			return fmt.Errorf("subsection %d (type 0x%02x) is truncated", n, t)
		}
		var err error
		switch t {
		case krlCertSerialList:
			err = checkKRLSerialList(sub)
		case krlCertSerialRange:
			err = checkKRLSerialRange(sub)
		case krlCertSerialBitmap:
			err = checkKRLSerialBitmap(sub)
		case krlCertKeyID:
			err = checkKRLKeyIDs(sub)
		default:
			err = errors.New("unknown certificate subsection type")
		}
		if err != nil {
			return fmt.Errorf("subsection %d (type 0x%02x): %w", n, t, err)
		}
	}
	return nil
}

func checkKRLSerialList(sub []byte) error {
	if len(sub)%8 != 0 {
		return errors.New("serial list is not a whole number of serials")
	}
	for r := (krlReader{sub}); len(r.b) > 0; {
		if s, _ := r.u64(); s == 0 {
			return errors.New("serial list holds serial 0")
		}
	}
	return nil
}

func checkKRLSerialRange(sub []byte) error {
	r := krlReader{sub}
	lo, ok1 := r.u64()
	hi, ok2 := r.u64()
	switch {
	case !ok1 || !ok2:
		return errors.New("serial range is truncated")
	case len(r.b) > 0:
		return errors.New("serial range has trailing bytes")
	case lo == 0 || lo > hi:
		return fmt.Errorf("serial range %d-%d is empty or starts at 0", lo, hi)
	}
	return nil
}

// checkKRLSerialBitmap checks a bitmap subsection: a first serial and an
// mpint whose bit i revokes serial first+i, read as OpenSSH's
// sshbuf_get_bignum2 and parse_revoked_certs read it.
func checkKRLSerialBitmap(sub []byte) error {
	r := krlReader{sub}
	lo, ok1 := r.u64()
	bm, ok2 := r.str()
	switch {
	case !ok1 || !ok2:
		return errors.New("serial bitmap is truncated")
	case len(r.b) > 0:
		return errors.New("serial bitmap has trailing bytes")
	case len(bm) > 0 && bm[0]&0x80 != 0:
		return errors.New("serial bitmap is a negative number")
	case len(bm) > krlMaxBignumBytes+1 || (len(bm) == krlMaxBignumBytes+1 && bm[0] != 0):
		return fmt.Errorf("serial bitmap is longer than %d bits", krlMaxBignumBytes*8)
	}
	for len(bm) > 0 && bm[0] == 0 {
		bm = bm[1:]
	}
	if len(bm) == 0 {
		return nil
	}
	nbits := uint64(len(bm)-1)*8 + uint64(bits.Len8(bm[0]))
	// OpenSSH walks serials lo+0 .. lo+nbits-1 and refuses the KRL if one
	// of them wraps to 0, set or not; serial 0 itself may not be revoked.
	if lo != 0 && -lo <= nbits-1 {
		return errors.New("serial bitmap runs past the last serial")
	}
	if lo == 0 && bm[len(bm)-1]&1 != 0 {
		return errors.New("serial bitmap revokes serial 0")
	}
	return nil
}

func checkKRLKeyIDs(sub []byte) error {
	for r := (krlReader{sub}); len(r.b) > 0; {
		id, ok := r.str()
		if !ok {
			return errors.New("key ID list is truncated")
		}
		if bytes.IndexByte(id, 0) >= 0 {
			return errors.New("a key ID holds a NUL byte")
		}
	}
	return nil
}

// checkKRLBlobs checks a section of strings: public key blobs (size 0:
// OpenSSH keeps them unparsed) or hashes of exactly size bytes.
func checkKRLBlobs(body []byte, size int) error {
	for r := (krlReader{body}); len(r.b) > 0; {
		b, ok := r.str()
		if !ok {
			return errors.New("an entry is truncated")
		}
		if size > 0 && len(b) != size {
			return fmt.Errorf("a hash of %d bytes, want %d", len(b), size)
		}
	}
	return nil
}

// checkKRLCAKey accepts a CA key blob OpenSSH's sshkey_from_blob reads,
// limited to the key types jit-ssh signs with, in canonical encoding (no
// trailing bytes, no padded numbers), with OpenSSH's own checks: RSA of
// 1024 to 16384 bits, ECDSA points that pass sshkey_ec_validate_public.
func checkKRLCAKey(blob []byte) error {
	k, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return fmt.Errorf("unreadable: %w", err)
	}
	if !bytes.Equal(k.Marshal(), blob) {
		return errors.New("not in canonical form, or followed by trailing bytes")
	}
	ck, ok := k.(ssh.CryptoPublicKey)
	if !ok {
		return fmt.Errorf("type %s is not a plain public key", k.Type())
	}
	switch t := k.Type(); t {
	case ssh.KeyAlgoED25519:
		return nil
	case ssh.KeyAlgoRSA:
		pk, ok := ck.CryptoPublicKey().(*rsa.PublicKey)
		if !ok || pk.N.Sign() <= 0 || pk.N.BitLen() < 1024 || pk.N.BitLen() > krlMaxBignumBytes*8 {
			return errors.New("RSA modulus outside 1024 to 16384 bits")
		}
		return nil
	case ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		pk, ok := ck.CryptoPublicKey().(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("type %s is not an ECDSA key", t)
		}
		// sshkey_ec_validate_public: both coordinates longer than half
		// the group order and below order-1 (on the curve: checked by
		// ParsePublicKey). The point is 0x04 || x || y.
		point, err := pk.Bytes()
		if err != nil || len(point) < 3 || point[0] != 4 {
			return fmt.Errorf("type %s with an unusable point", t)
		}
		n := (len(point) - 1) / 2
		x, y := new(big.Int).SetBytes(point[1:1+n]), new(big.Int).SetBytes(point[1+n:])
		order := pk.Curve.Params().N
		half := order.BitLen() / 2
		last := new(big.Int).Sub(order, big.NewInt(1))
		if x.BitLen() <= half || y.BitLen() <= half || x.Cmp(last) >= 0 || y.Cmp(last) >= 0 {
			return errors.New("ECDSA point that OpenSSH refuses")
		}
		return nil
	default:
		return fmt.Errorf("type %s, which jit-ssh does not sign with", t)
	}
}

// krlReader reads SSH wire values (RFC 4251) off the front of b.
type krlReader struct{ b []byte }

func (r *krlReader) u8() (byte, bool) {
	if len(r.b) < 1 {
		return 0, false
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v, true
}

func (r *krlReader) u32() (uint32, bool) {
	if len(r.b) < 4 {
		return 0, false
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v, true
}

func (r *krlReader) u64() (uint64, bool) {
	if len(r.b) < 8 {
		return 0, false
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v, true
}

func (r *krlReader) str() ([]byte, bool) {
	n, ok := r.u32()
	if !ok || uint64(len(r.b)) < uint64(n) {
		return nil, false
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v, true
}

func putUint32(b *bytes.Buffer, v uint32) { b.Write(binary.BigEndian.AppendUint32(nil, v)) }
func putUint64(b *bytes.Buffer, v uint64) { b.Write(binary.BigEndian.AppendUint64(nil, v)) }

func putString(b *bytes.Buffer, s []byte) {
	putUint32(b, uint32(len(s))) //nolint:gosec // KRL sections are far below 4 GiB
	b.Write(s)
}
