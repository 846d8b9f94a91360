package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// Revoke marks the matching certificates revoked and ends the open grants
// they were issued under (for a user: all of the user's open grants),
// revoking the unexpired certificates of every grant it ends too, with one
// event per certificate and grant, in one transaction.
func (d *DB) Revoke(ctx context.Context, spec ca.RevokeSpec, actor, reason string, now time.Time) (*ca.Revocation, error) {
	var certWhere string
	var arg any
	switch {
	case spec.Serial != 0:
		certWhere, arg = "serial = ?", int64(spec.Serial) //nolint:gosec // bit-for-bit
	case spec.RequestID != "":
		certWhere, arg = "request_id = ?", spec.RequestID
	case spec.User != "":
		certWhere, arg = "requester = ?", spec.User
	default:
		return nil, errors.New("store: revoke needs a serial, request or user")
	}
	out := &ca.Revocation{}
	d.requests.dropAll() // it may end grants (see requestCache)
	defer d.requests.dropAll()
	err := d.write(ctx, "revoking", func(tx *sql.Tx, c *chain) error {
		hits, err := revokeCerts(ctx, tx, c, certWhere, []any{arg}, actor, reason, now)
		if err != nil {
			return err
		}
		if spec.Serial != 0 && len(hits) == 0 {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM certificates WHERE serial = ?`, arg).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("%w: certificate %d", store.ErrNotFound, spec.Serial)
			}
		}
		requests := map[string]bool{}
		for _, h := range hits {
			out.Serials = append(out.Serials, h.serial)
			requests[h.requestID] = true
		}
		// Grants to end: those of the revoked certificates, the named
		// request, or every grant of the named user.
		grantWhere, grantArg := "", any(nil)
		switch {
		case spec.RequestID != "":
			grantWhere, grantArg = "id = ?", spec.RequestID
		case spec.User != "":
			grantWhere, grantArg = "requester = ?", spec.User
		}
		ids := make([]any, 0, len(requests))
		for id := range requests {
			ids = append(ids, id)
		}
		var conds []string
		var args []any
		if len(ids) > 0 {
			conds = append(conds, "id IN ("+placeholders(len(ids))+")")
			args = append(args, ids...)
		}
		if grantWhere != "" {
			conds = append(conds, grantWhere)
			args = append(args, grantArg)
		}
		if len(conds) == 0 {
			return nil
		}
		q := `SELECT id, version FROM requests WHERE state = 'approved' AND (ended_at IS NULL) AND approved_at + duration_ns > ? AND (` + strings.Join(conds, " OR ") + `)`
		rows, err := tx.QueryContext(ctx, q, append([]any{now.UnixNano()}, args...)...)
		if err != nil {
			return err
		}
		type grant struct {
			id      string
			version int64
		}
		var open []grant
		for rows.Next() {
			var g grant
			if err := rows.Scan(&g.id, &g.version); err != nil {
				rows.Close()
				return err
			}
			open = append(open, g)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, g := range open {
			// A grant that ends takes its other certificates with it (one
			// revoked by serial ends its grant): those a host could still
			// accept, the ones the KRL would list.
			more, err := revokeCerts(ctx, tx, c, "request_id = ? AND valid_before > ?", []any{g.id, now.Add(-ca.DefaultSkew).UnixNano()}, actor, reason, now)
			if err != nil {
				return err
			}
			for _, h := range more {
				out.Serials = append(out.Serials, h.serial)
			}
			// Checked before the change, as revokeCerts checks certificates:
			// a request that no longer matches the event log still has its
			// grant ended, but is not bound as good.
			mismatch := d.checkRequestTx(ctx, tx, g.id)
			if mismatch != nil && !errors.Is(mismatch, store.ErrRowMismatch) {
				return mismatch
			}
			if _, err := tx.ExecContext(ctx, `UPDATE requests SET ended_at = ?, updated_at = ?, version = ? WHERE id = ?`, now.UnixNano(), now.UnixNano(), g.version+1, g.id); err != nil {
				return err
			}
			ev := ca.Event{Time: now, Actor: actor, Type: ca.EventGrantEnded, RequestID: g.id,
				Data: map[string]any{"ended_early": true, "reason": "revoked: " + reason}}
			if mismatch != nil {
				ev.Data[DataRowMismatch] = true
				err = c.append(ctx, tx, ev)
			} else {
				err = appendBound(ctx, tx, c, g.id, actor, now, []ca.Event{ev})
			}
			if err != nil {
				return err
			}
			out.EndedGrants = append(out.EndedGrants, g.id)
		}
		// A named request that is still pending is cancelled, so that it
		// cannot be approved after its access was revoked.
		if spec.RequestID != "" {
			cancelled, err := d.cancelPendingTx(ctx, tx, c, spec.RequestID, actor, reason, now)
			if err != nil {
				return err
			}
			if cancelled {
				out.Cancelled = append(out.Cancelled, spec.RequestID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// cancelPendingTx cancels request id in tx if it is pending, checked and
// bound like a grant Revoke ends; it reports whether it did.
func (d *DB) cancelPendingTx(ctx context.Context, tx *sql.Tx, c *chain, id, actor, reason string, now time.Time) (bool, error) {
	var version int64
	err := tx.QueryRowContext(ctx, `SELECT version FROM requests WHERE id = ? AND state = ?`, id, ca.StatePending).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	mismatch := d.checkRequestTx(ctx, tx, id)
	if mismatch != nil && !errors.Is(mismatch, store.ErrRowMismatch) {
		return false, mismatch
	}
	if _, err := tx.ExecContext(ctx, `UPDATE requests SET state = ?, updated_at = ?, version = ? WHERE id = ?`, ca.StateCancelled, now.UnixNano(), version+1, id); err != nil {
		return false, err
	}
	ev := ca.Event{Time: now, Actor: actor, Type: ca.EventRequestCancelled, RequestID: id,
		Data: map[string]any{"previous_state": ca.StatePending, "reason": "revoked: " + reason}}
	if mismatch != nil {
		ev.Data[DataRowMismatch] = true
		err = c.append(ctx, tx, ev)
	} else {
		err = appendBound(ctx, tx, c, id, actor, now, []ca.Event{ev})
	}
	return err == nil, err
}

// revokedCert is a certificate revokeCerts revoked.
type revokedCert struct {
	serial    uint64
	requestID string
	user      string
}

// revokeCerts marks the unrevoked certificates matching where (with args)
// revoked at now for reason, with one certificate.revoked event each, in
// tx. Every revocation, whatever ends the access, goes through here.
func revokeCerts(ctx context.Context, tx *sql.Tx, c *chain, where string, args []any, actor, reason string, now time.Time) ([]revokedCert, error) {
	rows, err := tx.QueryContext(ctx, `SELECT serial, request_id, requester FROM certificates WHERE `+where+` AND revoked_at IS NULL`, args...)
	if err != nil {
		return nil, err
	}
	var hits []revokedCert
	for rows.Next() {
		var h revokedCert
		var s int64
		if err := rows.Scan(&s, &h.requestID, &h.user); err != nil {
			rows.Close()
			return nil, err
		}
		h.serial = uint64(s) //nolint:gosec // bit-for-bit
		hits = append(hits, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, h := range hits {
		// Checked before the change: a row that no longer matches the event
		// log is still revoked (fail safe), but its content is not bound as
		// good; the event says so and audit verify keeps naming the row.
		mismatch, err := checkCertTx(ctx, tx, c, int64(h.serial)) //nolint:gosec // bit-for-bit
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE certificates SET revoked_at = ?, revoke_reason = ? WHERE serial = ?`, now.UnixNano(), reason, int64(h.serial)); err != nil { //nolint:gosec // bit-for-bit
			return nil, err
		}
		data := map[string]any{"reason": reason, "requester": h.user}
		if mismatch != "" {
			data[DataRowMismatch] = true
		} else {
			// The revocation is the row's last change: its event binds the
			// row as it now is (see bind.go).
			row, _, err := scanCertRow(tx.QueryRowContext(ctx, `SELECT `+certRowColumns+` FROM certificates WHERE serial = ?`, int64(h.serial))) //nolint:gosec // bit-for-bit
			if err != nil {
				return nil, err
			}
			data[DataCertificateSHA256] = row.Digest()
		}
		if err := c.append(ctx, tx, ca.Event{Time: now, Actor: actor, Type: ca.EventRevoked, RequestID: h.requestID, Serial: h.serial, Data: data}); err != nil {
			return nil, err
		}
	}
	return hits, nil
}

// RevokedSerials returns, per CA key fingerprint, the serials of revoked
// certificates that are not yet expired at notAfter, and the KRL version:
// the id of the newest revocation event (0 when there is none), which only
// grows. The listing, the version and checkRevocations read one snapshot.
func (d *DB) RevokedSerials(ctx context.Context, notAfter time.Time) (map[string][]uint64, uint64, error) {
	tx, err := d.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, 0, classify("reading revocations", err)
	}
	defer func() { _ = tx.Rollback() }()
	out := map[string][]uint64{}
	listed := map[uint64]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT ca_fingerprint, serial FROM certificates WHERE revoked_at IS NOT NULL AND valid_before > ? ORDER BY serial`, notAfter.UnixNano())
	if err != nil {
		return nil, 0, classify("reading revocations", err)
	}
	defer rows.Close()
	for rows.Next() {
		var fp string
		var s int64
		if err := rows.Scan(&fp, &s); err != nil {
			return nil, 0, classify("reading revocations", err)
		}
		out[fp] = append(out[fp], uint64(s)) //nolint:gosec // bit-for-bit
		listed[uint64(s)] = true             //nolint:gosec // bit-for-bit
	}
	if err := rows.Err(); err != nil {
		return nil, 0, classify("reading revocations", err)
	}
	rows.Close()
	version, err := d.checkRevocations(ctx, tx, notAfter.UnixNano(), listed)
	if err != nil {
		return nil, 0, err
	}
	return out, uint64(max(version, 0)), nil //nolint:gosec // an event id
}

// revocationsChecked is what checkRevocations found at one chain head:
// the KRL version and, per revoked serial, the row's valid_before (checked
// against the revocation's digest).
type revocationsChecked struct {
	head, version int64
	validBefore   map[uint64]int64
}

// covers reports whether listed (the serials of a listing of revoked
// certificates valid after notAfter) holds every serial m says it must.
func (m *revocationsChecked) covers(notAfter int64, listed map[uint64]bool) bool {
	for s, vb := range m.validBefore {
		if vb > notAfter && !listed[s] {
			return false
		}
	}
	return true
}

// sqlRevocationEvents reads the revocation events from the partial index
// events_revoked (migration 0005): its condition, word for word.
const sqlRevocationEvents = `SELECT id, serial, data FROM events WHERE type = 'certificate.revoked'`

// checkRevocations checks, before a KRL is built from the certificates
// table, that every revocation the event log records is still in it: the
// row exists, is revoked, and matches the digest its certificate.revoked
// event recorded (a revocation is the last change to a certificate row).
// An un-revoked or deleted certificate fails the KRL with ErrRowMismatch
// instead of dropping out of it. It returns the newest revocation's event
// id (the KRL version). It reads in q's snapshot; listed holds the serials
// the KRL lists (revoked, valid after notAfter). The ledger's writer (the
// only process that changes the event log) reads and checks the rows once
// per chain head (hosts fetch the KRL every minute; a new event, as every
// issuance or revocation is, makes the next fetch check again); in between
// it checks that listed still holds every serial the check found revoked
// and unexpired at notAfter, so a row un-revoked, deleted or made to expire
// since still fails the KRL.
func (d *DB) checkRevocations(ctx context.Context, q *sql.Tx, notAfter int64, listed map[uint64]bool) (int64, error) {
	var head int64
	if err := q.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM events`).Scan(&head); err != nil {
		return 0, classify("reading revocations", err)
	}
	writer := d.lock != nil
	if m := d.revChecked.Load(); writer && m != nil && m.head == head && m.covers(notAfter, listed) {
		return m.version, nil
	}
	rows, err := q.QueryContext(ctx, sqlRevocationEvents)
	if err != nil {
		return 0, classify("reading revocations", err)
	}
	type revoked struct {
		ev, serial int64
		sum        string
	}
	var all []revoked
	for rows.Next() {
		var r revoked
		var data string
		if err := rows.Scan(&r.ev, &r.serial, &data); err != nil {
			rows.Close()
			return 0, classify("reading revocations", err)
		}
		var d struct {
			Sum string `json:"certificate_sha256"`
		}
		_ = json.Unmarshal([]byte(data), &d) // unreadable: no digest, the row must still be revoked
		r.sum = d.Sum
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, classify("reading revocations", err)
	}
	get, err := q.PrepareContext(ctx, `SELECT `+certRowColumns+` FROM certificates WHERE serial = ?`)
	if err != nil {
		return 0, classify("reading revocations", err)
	}
	defer get.Close()
	var version int64
	validBefore := make(map[uint64]int64, len(all))
	for _, r := range all {
		version = max(version, r.ev)
		c, _, err := scanCertRow(get.QueryRowContext(ctx, r.serial))
		if errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("%w: certificates row serial=%d, revoked by event row %d, is missing (deleted outside the server); no KRL is served without it; run jit-ssh audit verify", store.ErrRowMismatch, uint64(r.serial), r.ev) //nolint:gosec // bit-for-bit
		}
		if err != nil {
			return 0, classify("reading revocations", err)
		}
		if c.RevokedAt == 0 || (r.sum != "" && c.Digest() != r.sum) {
			return 0, fmt.Errorf("%w: certificates row serial=%s differs from its revocation, event row %d (edited outside the server); no KRL is served without it; run jit-ssh audit verify", store.ErrRowMismatch, c.Serial, r.ev)
		}
		validBefore[uint64(r.serial)] = c.ValidBefore //nolint:gosec // bit-for-bit
	}
	if writer {
		d.revChecked.Store(&revocationsChecked{head: head, version: version, validBefore: validBefore})
	}
	return version, nil
}
