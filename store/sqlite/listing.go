package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jit-ssh/jit-ssh/ca"
)

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
