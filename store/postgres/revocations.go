package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// Revoke marks the matching certificates revoked and ends the open grants
// they were issued under (for a user: all of the user's open grants),
// revoking the unexpired certificates of every grant it ends too, with one
// event per certificate and grant, in one transaction.
func (d *DB) Revoke(ctx context.Context, spec ca.RevokeSpec, actor, reason string, now time.Time) (*ca.Revocation, error) {
	var certCol string
	var arg any
	switch {
	case spec.Serial != 0:
		certCol, arg = "serial", int64(spec.Serial) //nolint:gosec // bit-for-bit
	case spec.RequestID != "":
		certCol, arg = "request_id", spec.RequestID
	case spec.User != "":
		certCol, arg = "requester", spec.User
	default:
		return nil, errors.New("store: revoke needs a serial, request or user")
	}
	var out *ca.Revocation
	err := d.write(ctx, "revoking", func(tx pgx.Tx, c *chain) error {
		out = &ca.Revocation{}
		hits, err := revokeCerts(ctx, tx, c, certCol+" = $1", args{arg}, actor, reason, now)
		if err != nil {
			return err
		}
		if spec.Serial != 0 && len(hits) == 0 {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM certificates WHERE serial = $1`, arg).Scan(&n); err != nil {
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
		var a args
		nowArg := a.add(now.UnixNano())
		var conds []string
		if len(requests) > 0 {
			ids := make([]string, 0, len(requests))
			for id := range requests {
				ids = append(ids, id)
			}
			conds = append(conds, "id = ANY("+a.add(ids)+")")
		}
		switch {
		case spec.RequestID != "":
			conds = append(conds, "id = "+a.add(spec.RequestID))
		case spec.User != "":
			conds = append(conds, "requester = "+a.add(spec.User))
		}
		if len(conds) > 0 {
			if err := d.endGrants(ctx, tx, c, out, `SELECT id, version FROM requests WHERE state = 'approved' AND ended_at IS NULL AND approved_at + duration_ns > `+nowArg+` AND (`+strings.Join(conds, " OR ")+`) ORDER BY id`, a, actor, reason, now); err != nil {
				return err
			}
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

// endGrants ends the open grants q selects (id, version), revoking their
// certificates a host could still accept, each bound like any request
// change (or recorded as mismatching, DataRowMismatch).
func (d *DB) endGrants(ctx context.Context, tx pgx.Tx, c *chain, out *ca.Revocation, q string, a args, actor, reason string, now time.Time) error {
	type grant struct {
		id      string
		version int64
	}
	rows, err := tx.Query(ctx, q, a...)
	if err != nil {
		return err
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
		more, err := revokeCerts(ctx, tx, c, "request_id = $1 AND valid_before > $2", args{g.id, now.Add(-ca.DefaultSkew).UnixNano()}, actor, reason, now)
		if err != nil {
			return err
		}
		for _, h := range more {
			out.Serials = append(out.Serials, h.serial)
		}
		mismatch := d.checkRequestTx(ctx, tx, c, g.id)
		if mismatch != nil && !errors.Is(mismatch, store.ErrRowMismatch) {
			return mismatch
		}
		if _, err := tx.Exec(ctx, `UPDATE requests SET ended_at = $1, updated_at = $1, version = $2 WHERE id = $3`, now.UnixNano(), g.version+1, g.id); err != nil {
			return err
		}
		ev := ca.Event{Time: now, Actor: actor, Type: ca.EventGrantEnded, RequestID: g.id,
			Data: map[string]any{"ended_early": true, "reason": "revoked: " + reason}}
		if mismatch != nil {
			ev.Data[store.DataRowMismatch] = true
			err = c.append(ctx, tx, ev)
		} else {
			err = appendBound(ctx, tx, c, g.id, actor, now, []ca.Event{ev})
		}
		if err != nil {
			return err
		}
		out.EndedGrants = append(out.EndedGrants, g.id)
	}
	return nil
}

// cancelPendingTx cancels request id in tx if it is pending, checked and
// bound like a grant Revoke ends; it reports whether it did.
func (d *DB) cancelPendingTx(ctx context.Context, tx pgx.Tx, c *chain, id, actor, reason string, now time.Time) (bool, error) {
	var version int64
	err := tx.QueryRow(ctx, `SELECT version FROM requests WHERE id = $1 AND state = $2`, id, ca.StatePending).Scan(&version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	mismatch := d.checkRequestTx(ctx, tx, c, id)
	if mismatch != nil && !errors.Is(mismatch, store.ErrRowMismatch) {
		return false, mismatch
	}
	if _, err := tx.Exec(ctx, `UPDATE requests SET state = $1, updated_at = $2, version = $3 WHERE id = $4`, ca.StateCancelled, now.UnixNano(), version+1, id); err != nil {
		return false, err
	}
	ev := ca.Event{Time: now, Actor: actor, Type: ca.EventRequestCancelled, RequestID: id,
		Data: map[string]any{"previous_state": ca.StatePending, "reason": "revoked: " + reason}}
	if mismatch != nil {
		ev.Data[store.DataRowMismatch] = true
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

// revokeCerts marks the unrevoked certificates matching where (with a)
// revoked at now for reason, with one certificate.revoked event each, in
// tx. Every revocation, whatever ends the access, goes through here.
func revokeCerts(ctx context.Context, tx pgx.Tx, c *chain, where string, a args, actor, reason string, now time.Time) ([]revokedCert, error) {
	rows, err := tx.Query(ctx, `SELECT serial, request_id, requester FROM certificates WHERE `+where+` AND revoked_at IS NULL ORDER BY id`, a...)
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
		serial := int64(h.serial) //nolint:gosec // bit-for-bit
		// Checked before the change: a row that no longer matches the event
		// log is still revoked (fail safe), but its content is not bound as
		// good; the event says so and audit verify keeps naming the row.
		mismatch, err := checkCertTx(ctx, tx, c, serial)
		if err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE certificates SET revoked_at = $1, revoke_reason = $2 WHERE serial = $3`, now.UnixNano(), reason, serial); err != nil {
			return nil, err
		}
		data := map[string]any{"reason": reason, "requester": h.user}
		if mismatch != "" {
			data[store.DataRowMismatch] = true
		} else {
			row, _, err := scanCertRow(tx.QueryRow(ctx, `SELECT `+certRowColumns+` FROM certificates WHERE serial = $1`, serial))
			if err != nil {
				return nil, err
			}
			data[store.DataCertificateSHA256] = row.Digest()
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
// grows. The listing and the check of every revocation the event log
// records (checkRevocations) read one snapshot, so every replica serves
// the KRL of the last committed revocation.
func (d *DB) RevokedSerials(ctx context.Context, notAfter time.Time) (map[string][]uint64, uint64, error) {
	out := map[string][]uint64{}
	var version int64
	err := d.readTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT ca_fingerprint, serial FROM certificates WHERE revoked_at IS NOT NULL AND valid_before > $1 ORDER BY serial`, notAfter.UnixNano())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var fp string
			var s int64
			if err := rows.Scan(&fp, &s); err != nil {
				return err
			}
			out[fp] = append(out[fp], uint64(s)) //nolint:gosec // bit-for-bit
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		version, err = checkRevocations(ctx, tx)
		return err
	})
	if err != nil {
		return nil, 0, classify("reading revocations", err)
	}
	return out, uint64(max(version, 0)), nil //nolint:gosec // an event id
}

// checkRevocations checks, before a KRL is built from the certificates
// table, that every revocation the event log records is still in it: the
// row exists, is revoked, and matches the digest its certificate.revoked
// event recorded. An un-revoked or deleted certificate fails the KRL with
// ErrRowMismatch instead of dropping out of it. It returns the newest
// revocation's event id (the KRL version).
func checkRevocations(ctx context.Context, q pgx.Tx) (int64, error) {
	rows, err := q.Query(ctx, `SELECT e.id, e.serial, e.data, c.serial, c.key_id, c.host_group, c.principals, c.valid_after, c.valid_before,
		c.requester, c.request_id, c.approvers, c.fingerprint, c.ca_fingerprint, c.certificate, c.issued_at, coalesce(c.revoked_at, 0), coalesce(c.revoke_reason, '')
		FROM events e LEFT JOIN certificates c ON c.serial = e.serial
		WHERE e.type = 'certificate.revoked' ORDER BY e.id`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var version int64
	for rows.Next() {
		var ev, serial int64
		var data string
		var cs *int64
		var cr store.CertRow
		var keyID, group, principals, requester, reqID, approvers, fp, cafp, cert, revReason *string
		var va, vb, issued, revokedAt *int64
		if err := rows.Scan(&ev, &serial, &data, &cs, &keyID, &group, &principals, &va, &vb, &requester, &reqID,
			&approvers, &fp, &cafp, &cert, &issued, &revokedAt, &revReason); err != nil {
			return 0, err
		}
		version = max(version, ev)
		if cs == nil {
			return 0, fmt.Errorf("%w: certificates row serial=%d, revoked by event row %d, is missing (deleted outside the server); no KRL is served without it; run jit-ssh audit verify", store.ErrRowMismatch, uint64(serial), ev) //nolint:gosec // bit-for-bit
		}
		cr = store.CertRow{Serial: fmt.Sprint(uint64(*cs)), KeyID: *keyID, HostGroup: *group, Principals: *principals, //nolint:gosec // bit-for-bit
			ValidAfter: *va, ValidBefore: *vb, Requester: *requester, RequestID: *reqID, Approvers: *approvers,
			Fingerprint: *fp, CAFingerprint: *cafp, Certificate: *cert, IssuedAt: *issued, RevokedAt: *revokedAt, RevokeReason: *revReason}
		var d struct {
			Sum string `json:"certificate_sha256"`
		}
		_ = json.Unmarshal([]byte(data), &d) // unreadable: no digest, the row must still be revoked
		if cr.RevokedAt == 0 || (d.Sum != "" && cr.Digest() != d.Sum) {
			return 0, fmt.Errorf("%w: certificates row serial=%s differs from its revocation, event row %d (edited outside the server); no KRL is served without it; run jit-ssh audit verify", store.ErrRowMismatch, cr.Serial, ev)
		}
	}
	return version, rows.Err()
}
