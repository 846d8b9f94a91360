package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// RecordCertificate commits an issued certificate and its
// certificate.issued event durably before it returns. The grant is checked
// again in the same statement that records it, in a transaction holding
// the chain's lock: a revocation, end, cancellation or denial committed
// before it stops the record (and so the certificate), and none can commit
// between the check and the record. A serial recorded already is
// store.ErrDuplicate. Concurrent calls share a transaction (commit.go); an
// error means this certificate was not recorded.
func (d *DB) RecordCertificate(_ context.Context, c *ca.Certificate) error {
	row, err := store.NewCertRow(c)
	if err != nil {
		return err
	}
	op := &certOp{c: c, row: row, ev: store.CertificateIssuedEvent(c, &row)}
	// The record must land even if the client has gone away: it is not
	// cancelled with the caller.
	if d.readOnly {
		return errors.New("store: recording certificate: the ledger was opened read-only")
	}
	return d.recordGrouped(op)
}

// certColumns and certFrom read a certificate with the reason of the
// request it was issued under.
const (
	certColumns = `c.serial, c.key_id, c.host_group, c.principals, c.valid_after, c.valid_before, c.requester, c.request_id, c.approvers, c.fingerprint, c.ca_fingerprint, c.certificate, c.issued_at, c.revoked_at, coalesce(r.reason, '')`
	certFrom    = `certificates c LEFT JOIN requests r ON r.id = c.request_id`
)

// ListCertificates calls fn for each matching certificate, newest first,
// streaming rows. An error from fn stops the listing and is returned.
func (d *DB) ListCertificates(ctx context.Context, f ca.CertFilter, fn func(*ca.Certificate) error) error {
	var where []string
	var a args
	if f.User != "" {
		where = append(where, "c.requester = "+a.add(f.User))
	}
	if f.Group != "" {
		where = append(where, "c.host_group = "+a.add(f.Group))
	}
	if !f.Since.IsZero() {
		where = append(where, "c.issued_at >= "+a.add(f.Since.UnixNano()))
	}
	if !f.Until.IsZero() {
		where = append(where, "c.issued_at < "+a.add(f.Until.UnixNano()))
	}
	if !f.ValidAt.IsZero() {
		t := a.add(f.ValidAt.UnixNano())
		where = append(where, "c.valid_before > "+t, "c.valid_after <= "+t,
			// Bounded below by the longest lifetime in the ledger: a short
			// range of certificates_by_valid_after.
			"c.valid_after > "+t+" - (SELECT coalesce(max(valid_before - valid_after), 0) FROM certificates)",
			"(c.revoked_at IS NULL OR c.revoked_at > "+t+")")
	}
	if f.Serial != 0 {
		where = append(where, "c.serial = "+a.add(int64(f.Serial))) //nolint:gosec // bit-for-bit
	}
	if f.KeyID != "" {
		where = append(where, "c.key_id = "+a.add(f.KeyID))
	}
	q := `SELECT ` + certColumns + ` FROM ` + certFrom
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY c.issued_at DESC, c.id DESC"
	if f.Limit > 0 {
		q += " LIMIT " + strconv.Itoa(f.Limit)
	}
	var fnErr error
	err := d.readTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q, a...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanCert(rows)
			if err != nil {
				return err
			}
			if err := fn(c); err != nil {
				fnErr = err
				return err
			}
		}
		return rows.Err()
	})
	if fnErr != nil {
		return fnErr
	}
	return classify("listing certificates", err)
}

// GetCertificate returns the certificate with the given serial.
func (d *DB) GetCertificate(ctx context.Context, serial uint64) (*ca.Certificate, error) {
	c, err := scanCert(d.pool.QueryRow(ctx, `SELECT `+certColumns+` FROM `+certFrom+` WHERE c.serial = $1`, int64(serial))) //nolint:gosec // bit-for-bit
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: certificate %d", store.ErrNotFound, serial)
	}
	if err != nil {
		return nil, classify("reading certificate", err)
	}
	return c, nil
}

func scanCert(s pgx.Row) (*ca.Certificate, error) {
	var c ca.Certificate
	var serial, va, vb, issued int64
	var revoked *int64
	var principals, approvers string
	if err := s.Scan(&serial, &c.KeyID, &c.HostGroup, &principals, &va, &vb, &c.Requester, &c.RequestID, &approvers,
		&c.Fingerprint, &c.CAFingerprint, &c.Certificate, &issued, &revoked, &c.Reason); err != nil {
		return nil, err
	}
	c.Serial = uint64(serial) //nolint:gosec // bit-for-bit
	if err := json.Unmarshal([]byte(principals), &c.Principals); err != nil {
		return nil, fmt.Errorf("principals of %d: %w", c.Serial, err)
	}
	if err := json.Unmarshal([]byte(approvers), &c.Approvers); err != nil {
		return nil, fmt.Errorf("approvers of %d: %w", c.Serial, err)
	}
	c.ValidAfter = time.Unix(0, va).UTC()
	c.ValidBefore = time.Unix(0, vb).UTC()
	c.IssuedAt = time.Unix(0, issued).UTC()
	c.RevokedAt = fromNanos(revoked)
	return &c, nil
}
