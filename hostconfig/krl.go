package hostconfig

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// KRL header constants from OpenSSH's PROTOCOL.krl.
const (
	krlMagic         = "SSHKRL\n\x00"
	krlFormatVersion = 1
	krlHeaderLen     = 8 + 4 + 8 + 8 + 8 + 4 + 4 // magic, format, version, date, flags, reserved, comment
)

// EmptyKRL returns an OpenSSH key revocation list that revokes nothing, in
// the binary format of PROTOCOL.krl: the magic "SSHKRL\n\0", format version
// 1, the given krl_version, generated_date (seconds since the epoch; 0 for a
// time before it), flags 0, an empty reserved string, an empty comment and
// no sections. sshd reads it as "no key revoked"; `ssh-keygen -k` writes
// the same bytes.
func EmptyKRL(version uint64, generated time.Time) []byte {
	b := make([]byte, 0, krlHeaderLen)
	b = append(b, krlMagic...)
	b = binary.BigEndian.AppendUint32(b, krlFormatVersion)
	b = binary.BigEndian.AppendUint64(b, version)
	var date uint64
	if s := generated.Unix(); s > 0 {
		date = uint64(s)
	}
	b = binary.BigEndian.AppendUint64(b, date)
	b = binary.BigEndian.AppendUint64(b, 0) // flags
	b = binary.BigEndian.AppendUint32(b, 0) // reserved: empty string
	b = binary.BigEndian.AppendUint32(b, 0) // comment: empty string
	return b
}

// CheckKRLHeader returns an error unless data starts with a KRL header of
// format version 1. It checks the framing only, not the sections; sshd
// refuses every certificate when it cannot parse the KRL, so `host sync`
// uses this to refuse an obviously wrong download before it replaces the
// last good copy.
func CheckKRLHeader(data []byte) error {
	if len(data) < krlHeaderLen || !bytes.HasPrefix(data, []byte(krlMagic)) {
		return fmt.Errorf("%w: not an OpenSSH KRL (bad magic or too short)", ErrInvalidFiles)
	}
	if v := binary.BigEndian.Uint32(data[8:12]); v != krlFormatVersion {
		return fmt.Errorf("%w: KRL format version %d, want %d", ErrInvalidFiles, v, krlFormatVersion)
	}
	return nil
}
