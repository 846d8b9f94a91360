package api

import (
	"time"
	"unicode/utf8"
)

// jsonAppender is a listing row that can write its own JSON: stream uses
// it instead of encoding/json, which costs several microseconds a row in
// reflection and allocation (an export is a million rows). ok is false
// when the value needs encoding/json after all (b is then unspecified).
type jsonAppender interface {
	appendJSON(b []byte) (_ []byte, ok bool)
}

var _ jsonAppender = Certificate{}

// appendJSON appends c exactly as a json.Encoder with SetEscapeHTML(false)
// writes it (without the newline): the same fields, order and escaping.
// A time encoding/json refuses (a year outside 0 to 9999) is left to
// encoding/json, so it fails the same way.
func (c Certificate) appendJSON(b []byte) ([]byte, bool) {
	ok := true
	b = append(b, `{"serial":`...)
	b = appendJSONString(b, c.Serial)
	b = append(b, `,"key_id":`...)
	b = appendJSONString(b, c.KeyID)
	b = append(b, `,"host_group":`...)
	b = appendJSONString(b, c.HostGroup)
	b = append(b, `,"principals":`...)
	b = appendJSONStrings(b, c.Principals)
	b = append(b, `,"valid_after":`...)
	b = appendJSONTime(b, c.ValidAfter, &ok)
	b = append(b, `,"valid_before":`...)
	b = appendJSONTime(b, c.ValidBefore, &ok)
	b = append(b, `,"requester":`...)
	b = appendJSONString(b, c.Requester)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, c.RequestID)
	b = append(b, `,"approvers":`...)
	b = appendJSONStrings(b, c.Approvers)
	b = append(b, `,"fingerprint":`...)
	b = appendJSONString(b, c.Fingerprint)
	b = append(b, `,"ca_fingerprint":`...)
	b = appendJSONString(b, c.CAFingerprint)
	b = append(b, `,"certificate":`...)
	b = appendJSONString(b, c.Certificate)
	b = append(b, `,"issued_at":`...)
	b = appendJSONTime(b, c.IssuedAt, &ok)
	b = append(b, `,"revoked_at":`...)
	if c.RevokedAt == nil {
		b = append(b, "null"...)
	} else {
		b = appendJSONTime(b, *c.RevokedAt, &ok)
	}
	if c.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, c.Reason)
	}
	return append(b, '}'), ok
}

// appendJSONStrings appends s as a JSON array; nil is null, as
// encoding/json has it.
func appendJSONStrings(b []byte, s []string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, v := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, v)
	}
	return append(b, ']')
}

// appendJSONTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, trailing zeros dropped) and clears *ok where MarshalJSON
// would fail: a year that is not four digits, a zone hour outside 0 to 23.
func appendJSONTime(b []byte, t time.Time, ok *bool) []byte {
	b = append(b, '"')
	n0 := len(b)
	b = t.AppendFormat(b, time.RFC3339Nano)
	switch {
	case b[n0+len("9999")] != '-':
		*ok = false
	case b[len(b)-1] != 'Z':
		c := b[len(b)-len("Z07:00")]
		if ('0' <= c && c <= '9') || 10*(b[len(b)-5]-'0')+(b[len(b)-4]-'0') >= 24 {
			*ok = false
		}
	}
	return append(b, '"')
}

// jsonSafe[b] says an ASCII byte stands for itself inside a JSON string
// as encoding/json writes it without HTML escaping: everything from space
// on except '"' and '\\'.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for b := ' '; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json quotes a string
// without HTML escaping: '"' and '\\' escaped, \b \f \n \r \t by name,
// other control characters as \u00XX, invalid UTF-8 as \ufffd, and
// U+2028 and U+2029 as \u2028 and \u2029.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Eight bytes at a time while none needs a closer look: a
		// certificate is some 600 bytes of base64.
		for i+8 <= len(s) && plain8(s[i:i+8]) {
			i += 8
		}
		if i == len(s) {
			break
		}
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// plain8 says none of the eight bytes of s (len(s) == 8) needs escaping or
// decoding: each is printable ASCII other than '"' and '\\'. Each test
// is the "has a byte less than n" trick of Bit Twiddling Hacks, exact as
// to whether any byte matches.
func plain8(s string) bool {
	_ = s[7]
	x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote, backslash := x^(ones*'"'), x^(ones*'\\')
	control := (x - ones*' ') &^ x
	quote = (quote - ones) &^ quote
	backslash = (backslash - ones) &^ backslash
	return (x|control|quote|backslash)&highs == 0
}
