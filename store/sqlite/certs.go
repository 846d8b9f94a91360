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
	"github.com/jit-ssh/jit-ssh/store"
)

// RecordCertificate commits an issued certificate and its
// certificate.issued event durably before it returns. Concurrent calls
// share a transaction (group commit); an error means this certificate was
// not recorded.
func (d *DB) RecordCertificate(ctx context.Context, c *ca.Certificate) error {
	// The event binds the row as inserted (bind.go); both are store's, as
	// every backend makes them.
	row, err := store.NewCertRow(c)
	if err != nil {
		return err
	}
	principals, approvers := row.Principals, row.Approvers
	ev := store.CertificateIssuedEvent(c, &row)
	data, err := eventData(ev) // encoded here, not in the commit's critical section
	if err != nil {
		return err
	}
	// Group commit: concurrent certificates share a transaction and its
	// fsync; this call still returns only once its own row is committed.
	// The write is not cancelled with the caller.
	ctx = context.WithoutCancel(ctx)
	return d.writeGrouped("recording certificate", func(tx *sql.Tx, ch *chain) error {
		// The grant was checked before signing, but a revocation, end or
		// denial may have committed since: under the writer's lock, the
		// certificate is recorded (and so handed out) only if its grant is
		// still open at the moment of issue.
		var open int
		if err := ch.stmts.queryRow(ctx, tx, sqlGrantOpenAt, c.RequestID, c.IssuedAt.UnixNano()).Scan(&open); err != nil {
			return err
		}
		if open == 0 {
			return fmt.Errorf("%w: the grant of request %s ended or was revoked while the certificate was being signed; none was issued", ca.ErrGrantEnded, c.RequestID)
		}
		_, err := ch.stmts.exec(ctx, tx, sqlInsertCert,
			int64(c.Serial), c.KeyID, c.HostGroup, principals, c.ValidAfter.UnixNano(), c.ValidBefore.UnixNano(), //nolint:gosec // bit-for-bit
			c.Requester, c.RequestID, approvers, c.Fingerprint, c.CAFingerprint, c.Certificate, c.IssuedAt.UnixNano())
		if err != nil {
			return err
		}
		return ch.appendEncoded(ctx, tx, ev, data)
	})
}

// certColumns and certFrom read a certificate with the reason of the
// request it was issued under.
const (
	certColumns = `c.serial, c.key_id, c.host_group, c.principals, c.valid_after, c.valid_before, c.requester, c.request_id, c.approvers, c.fingerprint, c.ca_fingerprint, c.certificate, c.issued_at, c.revoked_at, coalesce(r.reason, '')`
	certFrom    = `certificates c LEFT JOIN requests r ON r.id = c.request_id`
)

// ListCertificates calls fn for each matching certificate, newest first,
// streaming rows rather than loading the listing into memory. An error from
// fn stops the listing and is returned.
func (d *DB) ListCertificates(ctx context.Context, f ca.CertFilter, fn func(*ca.Certificate) error) error {
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.User != "" {
		add("c.requester = ?", f.User)
	}
	if f.Group != "" {
		add("c.host_group = ?", f.Group)
	}
	if !f.Since.IsZero() {
		add("c.issued_at >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("c.issued_at < ?", f.Until.UnixNano())
	}
	if !f.ValidAt.IsZero() {
		t := f.ValidAt.UnixNano()
		add("c.valid_before > ?", t)
		add("c.valid_after <= ?", t)
		// Bounded below by the longest lifetime in the ledger: a short range
		// of certificates_by_valid_after (migration 0003), not a scan of
		// everything issued after t. Unqualified names work with or without
		// a join (requests has no validity columns).
		add("valid_after > ? - (SELECT coalesce(max(valid_before - valid_after), 0) FROM certificates)", t)
		add("(c.revoked_at IS NULL OR c.revoked_at > ?)", t)
	}
	if f.Serial != 0 {
		add("c.serial = ?", int64(f.Serial)) //nolint:gosec // bit-for-bit
	}
	if f.KeyID != "" {
		add("c.key_id = ?", f.KeyID)
	}
	q := `SELECT ` + listColumns + ` FROM certificates c`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY c.issued_at DESC"
	if f.Limit > 0 {
		q += " LIMIT " + strconv.Itoa(f.Limit)
	}
	return d.listCertificates(ctx, q, args, fn)
}

// GetCertificate returns the certificate with the given serial.
func (d *DB) GetCertificate(ctx context.Context, serial uint64) (*ca.Certificate, error) {
	c, err := scanCert(d.r.QueryRowContext(ctx, `SELECT `+certColumns+` FROM `+certFrom+` WHERE c.serial = ?`, int64(serial))) //nolint:gosec // bit-for-bit
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: certificate %d", store.ErrNotFound, serial)
	}
	if err != nil {
		return nil, classify("reading certificate", err)
	}
	return c, nil
}

func scanCert(s interface{ Scan(...any) error }) (*ca.Certificate, error) {
	var c ca.Certificate
	var serial, va, vb, issued int64
	var revoked sql.NullInt64
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
