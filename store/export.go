package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// listColumns are certColumns without the request's reason. Listings look
// reasons up through a reasonCache instead of joining every row with
// requests: the join's two B-tree searches were a fifth of the cost of a
// row in an export of a million certificates, for reasons that repeat (a
// request has several certificates).
const listColumns = `c.serial, c.key_id, c.host_group, c.principals, c.valid_after, c.valid_before, c.requester, c.request_id, c.approvers, c.fingerprint, c.ca_fingerprint, c.certificate, c.issued_at, c.revoked_at`

// listCertificates runs q, which selects listColumns from certificates c,
// and calls fn with each row and its request's reason. The reasons are
// read on the same connection while q's cursor is open, so from the same
// snapshot of the ledger as the rows (SQLite keeps one read transaction
// while any statement of the connection is active), as the join did.
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
	for rows.Next() {
		c, err := scanListed(rows)
		if err != nil {
			return classify("listing certificates", err)
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
	rc.m[id] = reason
	rc.size += len(id) + len(reason) + 64
	return reason, nil
}

func (rc *reasonCache) close() {
	if rc.stmt != nil {
		_ = rc.stmt.Close()
	}
}

// scanListed reads a row of listColumns; scanCert's twin without the
// reason, and without encoding/json for plain principals and approvers.
func scanListed(rows *sql.Rows) (*ca.Certificate, error) {
	var c ca.Certificate
	var serial, va, vb, issued int64
	var revoked sql.NullInt64
	var principals, approvers string
	if err := rows.Scan(&serial, &c.KeyID, &c.HostGroup, &principals, &va, &vb, &c.Requester, &c.RequestID, &approvers,
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
