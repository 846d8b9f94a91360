package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

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

// listCertificates runs q, which selects listColumns from certificates c,
// and calls fn with each row and its request's reason. Reasons and rows
// read again are read on the same connection while q's cursor is open, so
// from the same snapshot of the ledger as the rows (SQLite keeps one read
// transaction while any statement of the connection is active).
func (d *DB) listCertificates(ctx context.Context, q string, args []any, fn func(*ca.Certificate) error) error {
	conn, err := d.r.Conn(ctx)
	if err != nil {
		return classify("listing certificates", err)
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return classify("listing certificates", err)
	}
	defer rows.Close()
	reasons := &reasonCache{conn: conn}
	defer reasons.close()
	var plain *sql.Stmt // reads a row unpack cannot, prepared when first needed
	defer func() {
		if plain != nil {
			_ = plain.Close()
		}
	}()
	var packed string
	for rows.Next() {
		if err := rows.Scan(&packed); err != nil {
			return classify("listing certificates", err)
		}
		c, id, ok := unpack(packed)
		if !ok {
			if plain == nil {
				if plain, err = conn.PrepareContext(ctx, `SELECT `+plainColumns+` FROM certificates c WHERE c.id = ?`); err != nil {
					return classify("listing certificates", err)
				}
			}
			if c, err = scanListed(plain.QueryRowContext(ctx, id)); err != nil {
				return classify("listing certificates", err)
			}
		}
		if c.Reason, err = reasons.get(ctx, c.RequestID); err != nil {
			return classify("listing certificates", err)
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return classify("listing certificates", rows.Err())
}

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

// reasonCacheBytes bounds a listing's cache of reasons (ids, reasons and
// about 64 bytes of map overhead each); a full cache starts over, so
// memory stays flat however many requests a listing meets. A variable for
// the tests.
var reasonCacheBytes = 4 << 20

// reasonCache maps request ids to their reasons for one listing.
type reasonCache struct {
	conn *sql.Conn
	stmt *sql.Stmt
	m    map[string]string
	size int
}

// get returns the reason of request id: "" for an unknown request, as
// the LEFT JOIN had it.
func (rc *reasonCache) get(ctx context.Context, id string) (string, error) {
	if r, ok := rc.m[id]; ok {
		return r, nil
	}
	if rc.stmt == nil {
		stmt, err := rc.conn.PrepareContext(ctx, `SELECT reason FROM requests WHERE id = ?`)
		if err != nil {
			return "", err
		}
		rc.stmt, rc.m = stmt, map[string]string{}
	}
	var reason string
	if err := rc.stmt.QueryRowContext(ctx, id).Scan(&reason); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("reason of request %s: %w", id, err)
	}
	if rc.size > reasonCacheBytes {
		clear(rc.m)
		rc.size = 0
	}
	// A copy: id is a slice of its row's whole packed value, which the
	// cache would otherwise keep alive (a kilobyte per request).
	rc.m[strings.Clone(id)] = reason
	rc.size += len(id) + len(reason) + 64
	return reason, nil
}

func (rc *reasonCache) close() {
	if rc.stmt != nil {
		_ = rc.stmt.Close()
	}
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

// decodeStrings decodes a JSON array of strings, the form principals and
// approvers are stored in, exactly as json.Unmarshal into a []string does.
// The arrays RecordCertificate writes (json.Marshal of logins and group
// names: printable ASCII, no escapes, no spaces) are split directly;
// anything else goes through encoding/json.
func decodeStrings(s string) ([]string, error) {
	if s == "[]" {
		return []string{}, nil
	}
	if len(s) >= len(`[""]`) && s[:2] == `["` && s[len(s)-2:] == `"]` {
		inner := s[2 : len(s)-2]
		out := make([]string, 0, strings.Count(inner, `","`)+1)
		for {
			part, rest, more := strings.Cut(inner, `","`)
			if !plainJSONString(part) {
				break
			}
			out = append(out, part)
			if !more {
				return out, nil
			}
			inner = rest
		}
	}
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// plainJSONString says s, found between two quotes, is a JSON string's
// whole content that decodes to itself: printable ASCII without '"' or
// '\\' (no escapes, no bytes encoding/json would replace).
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
