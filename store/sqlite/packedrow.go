package sqlite

import (
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// The packed certificate row: the listing's fast path (listColumns,
// unpack, with decodeStrings' direct split of the JSON arrays) and its
// fallback, one column a value (plainColumns, scanListed).
//
// The fast path stays because the export benchmark still needs it:
// BenchmarkListCertificates1M/store over 100,000 certificates
// (JIT_SSH_BENCH_CERTS=100000, -benchtime 5x, 2 shared cores, December
// 2026) read 6.3 to 7.5 us a row with it and 8.9 to 9.7 us a row with
// plain columns and encoding/json instead, with a fifth more peak heap.

// listColumns selects a certificate, without its request's reason, as one
// text value: the row id, then the columns of plainColumns, separated by
// the byte 0x1F, revoked_at prefixed with "r" (empty when NULL). One column
// instead of fourteen: the SQLite driver takes a mutex several times and
// makes a Go string for every column of every row (concat_ws builds the
// value in one allocation; a chain of || reallocates at every step and
// was no faster). A store scan of 100,000 certificates went from 4.5 to
// 3.6 us a row. unpack reads it back; a row it cannot read unambiguously
// (a value holding 0x1F, a number that is not an integer: nothing the
// store writes) is read again through plainColumns.
//
// Listings look reasons up through a reasonCache instead of joining every
// row with requests: the join's two B-tree searches were a fifth of the
// cost of a row in an export of a million certificates, for reasons that
// repeat (a request has several certificates).
const listColumns = `concat_ws(x'1f', c.id, c.serial, c.key_id, c.host_group, c.principals, c.valid_after, c.valid_before, ` +
	`c.requester, c.request_id, c.approvers, c.fingerprint, c.ca_fingerprint, c.certificate, c.issued_at, ifnull('r' || c.revoked_at, ''))`

// plainColumns are certColumns without the reason, one column each.
const plainColumns = `c.serial, c.key_id, c.host_group, c.principals, c.valid_after, c.valid_before, c.requester, c.request_id, c.approvers, c.fingerprint, c.ca_fingerprint, c.certificate, c.issued_at, c.revoked_at`

// packedFields is the number of values in a row of listColumns.
const packedFields = 15

// unpack reads a row of listColumns: the certificate and true, or the row
// id and false when the row is not unambiguous (a value holding the
// separator, a number that is not a plain integer, arrays encoding/json
// refuses) and must be read through plainColumns. The row id is an integer
// and comes first: it is always read.
func unpack(s string) (_ *ca.Certificate, id int64, ok bool) {
	var f [packedFields]string
	n := 0
	for n < packedFields-1 {
		i := strings.IndexByte(s, 0x1f)
		if i < 0 {
			break
		}
		f[n], s = s[:i], s[i+1:]
		n++
	}
	f[n] = s
	id, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || n != packedFields-1 || strings.IndexByte(s, 0x1f) >= 0 {
		return nil, id, false
	}
	var ints [5]int64
	for i, k := range [...]int{1, 5, 6, 13} {
		if ints[i], err = strconv.ParseInt(f[k], 10, 64); err != nil {
			return nil, id, false
		}
	}
	c := &ca.Certificate{
		Serial: uint64(ints[0]), KeyID: f[2], HostGroup: f[3], Requester: f[7], RequestID: f[8], //nolint:gosec // bit-for-bit
		Fingerprint: f[10], CAFingerprint: f[11], Certificate: f[12],
		ValidAfter: time.Unix(0, ints[1]).UTC(), ValidBefore: time.Unix(0, ints[2]).UTC(), IssuedAt: time.Unix(0, ints[3]).UTC(),
	}
	if revoked, isSet := strings.CutPrefix(f[14], "r"); isSet {
		if ints[4], err = strconv.ParseInt(revoked, 10, 64); err != nil {
			return nil, id, false
		}
		c.RevokedAt = time.Unix(0, ints[4]).UTC()
	} else if f[14] != "" {
		return nil, id, false
	}
	if c.Principals, err = decodeStrings(f[4]); err != nil {
		return nil, id, false
	}
	if c.Approvers, err = decodeStrings(f[9]); err != nil {
		return nil, id, false
	}
	return c, id, true
}

// scanListed reads a row of plainColumns; scanCert's twin without the
// reason.
func scanListed(row *sql.Row) (*ca.Certificate, error) {
	var c ca.Certificate
	var serial, va, vb, issued int64
	var revoked sql.NullInt64
	var principals, approvers string
	if err := row.Scan(&serial, &c.KeyID, &c.HostGroup, &principals, &va, &vb, &c.Requester, &c.RequestID, &approvers,
		&c.Fingerprint, &c.CAFingerprint, &c.Certificate, &issued, &revoked); err != nil {
		return nil, err
	}
	c.Serial = uint64(serial) //nolint:gosec // bit-for-bit
	var err error
	if c.Principals, err = decodeStrings(principals); err != nil {
		return nil, fmt.Errorf("principals of %d: %w", c.Serial, err)
	}
	if c.Approvers, err = decodeStrings(approvers); err != nil {
		return nil, fmt.Errorf("approvers of %d: %w", c.Serial, err)
	}
	c.ValidAfter = time.Unix(0, va).UTC()
	c.ValidBefore = time.Unix(0, vb).UTC()
	c.IssuedAt = time.Unix(0, issued).UTC()
	c.RevokedAt = fromNanos(revoked)
	return &c, nil
}
