package ca

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/ssh"
)

// OpenSSH key revocation lists (PROTOCOL.krl). jit-ssh revokes certificates
// by serial, per CA key, which is the one section type it needs. No Go KRL
// library is published on the module proxy (stripe/krl and its forks are
// not), so the encoder is here, small, and tested against ssh-keygen -Q.
const (
	krlMagic             = "SSHKRL\n\x00"
	krlFormatVersion     = 1
	krlSectionCerts      = 1
	krlSectionMax        = 5 // KRL_SECTION_FINGERPRINT_SHA256, the last type sshd reads
	krlCertSerialList    = 0x20
	krlHeaderMinimumSize = 8 + 4 + 8 + 8 + 8 + 4 + 4
)

// RevokedSerials lists the revoked serials of one CA key.
type RevokedSerials struct {
	CA      ssh.PublicKey
	Serials []uint64
}

// MarshalKRL encodes a KRL with the given version (which must grow with
// every change), generation time and comment, revoking each set's serials.
func MarshalKRL(version uint64, generated time.Time, comment string, sets []RevokedSerials) []byte {
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

// ParseKRLHeader reads a KRL's header and checks that the sections that
// follow are well framed.
func ParseKRLHeader(data []byte) (*KRLHeader, error) {
	if len(data) < krlHeaderMinimumSize || string(data[:8]) != krlMagic {
		return nil, fmt.Errorf("%w: bad magic or too short", ErrBadKRL)
	}
	r := data[8:]
	if binary.BigEndian.Uint32(r) != krlFormatVersion {
		return nil, fmt.Errorf("%w: format version %d", ErrBadKRL, binary.BigEndian.Uint32(r))
	}
	h := &KRLHeader{Version: binary.BigEndian.Uint64(r[4:]), Generated: CertTime(binary.BigEndian.Uint64(r[12:]))}
	r = r[28:]
	var err error
	if _, r, err = getString(r); err != nil { // reserved
		return nil, err
	}
	var comment []byte
	if comment, r, err = getString(r); err != nil {
		return nil, err
	}
	h.Comment = string(comment)
	for len(r) > 0 {
		// sshd refuses a KRL with a section type it does not know, and
		// then every certificate; such a file is not a usable KRL.
		if t := r[0]; t < krlSectionCerts || t > krlSectionMax {
			return nil, fmt.Errorf("%w: unknown section type %d", ErrBadKRL, t)
		}
		r = r[1:]
		if _, r, err = getString(r); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func putUint32(b *bytes.Buffer, v uint32) { b.Write(binary.BigEndian.AppendUint32(nil, v)) }
func putUint64(b *bytes.Buffer, v uint64) { b.Write(binary.BigEndian.AppendUint64(nil, v)) }

func putString(b *bytes.Buffer, s []byte) {
	putUint32(b, uint32(len(s))) //nolint:gosec // KRL sections are far below 4 GiB
	b.Write(s)
}

func getString(r []byte) ([]byte, []byte, error) {
	if len(r) < 4 {
		return nil, nil, fmt.Errorf("%w: truncated", ErrBadKRL)
	}
	n := binary.BigEndian.Uint32(r)
	if uint64(len(r)-4) < uint64(n) {
		return nil, nil, fmt.Errorf("%w: truncated", ErrBadKRL)
	}
	return r[4 : 4+n], r[4+n:], nil
}
