package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// Row bindings (package store): the event that last changed a request
// (with its reviews) or a certificate holds the digest of the row after
// the change; reads the server decides from check it, and so do the
// server's own writes before they change a bound row.

const certRowColumns = `serial, key_id, host_group, principals, valid_after, valid_before, requester, request_id, approvers, fingerprint, ca_fingerprint, certificate, issued_at, coalesce(revoked_at, 0), coalesce(revoke_reason, '')`

func scanCertRow(s pgx.Row) (*store.CertRow, uint64, error) {
	var c store.CertRow
	var serial int64
	if err := s.Scan(&serial, &c.KeyID, &c.HostGroup, &c.Principals, &c.ValidAfter, &c.ValidBefore, &c.Requester, &c.RequestID,
		&c.Approvers, &c.Fingerprint, &c.CAFingerprint, &c.Certificate, &c.IssuedAt, &c.RevokedAt, &c.RevokeReason); err != nil {
		return nil, 0, err
	}
	u := uint64(serial) //nolint:gosec // bit-for-bit
	c.Serial = strconv.FormatUint(u, 10)
	return &c, u, nil
}

const (
	requestColumns = `id, host_group, requester, state, reason, duration_ns, created_at, updated_at, approved_at, ended_at, version, break_glass, follow_up, review_due_at, followed_up_at`
	reviewColumns  = `id, request_id, reviewer, event, body, created_at, dismissed`
	sqlGetRequest  = `SELECT ` + requestColumns + ` FROM requests WHERE id = $1`
	sqlGetReviews  = `SELECT ` + reviewColumns + ` FROM reviews WHERE request_id = $1 ORDER BY id`
	// sqlLatestBinding is the newest event that binds a request; its
	// condition is the one of the partial index events_binding_request.
	sqlLatestBinding = `SELECT ` + storedEventColumns + ` FROM events WHERE request_id = $1 AND type <> 'certificate.issued' AND strpos(data, '"request_sha256":') > 0 ORDER BY id DESC LIMIT 1`
	sqlEventLink     = `SELECT prev_hash FROM events WHERE id = $1`
	// sqlLatestCertBinding is the newest event that binds certificate
	// serial (or that recorded it mismatching).
	sqlLatestCertBinding = `SELECT ` + storedEventColumns + ` FROM events WHERE serial = $1 AND serial <> 0 AND (strpos(data, '"certificate_sha256":') > 0 OR strpos(data, '"row_mismatch":true') > 0) ORDER BY id DESC LIMIT 1`
)

func scanRequest(s pgx.Row) (*ca.Request, error) {
	var r ca.Request
	var dur, created, updated int64
	var approved, ended, due, followed *int64
	if err := s.Scan(&r.ID, &r.HostGroup, &r.Requester, &r.State, &r.Reason, &dur, &created, &updated, &approved, &ended, &r.Version,
		&r.BreakGlass, &r.FollowUp, &due, &followed); err != nil {
		return nil, err
	}
	r.ReviewDueAt = fromNanos(due)
	r.FollowedUpAt = fromNanos(followed)
	r.Duration = time.Duration(dur)
	r.CreatedAt = time.Unix(0, created).UTC()
	r.UpdatedAt = time.Unix(0, updated).UTC()
	r.ApprovedAt = fromNanos(approved)
	r.EndedAt = fromNanos(ended)
	return &r, nil
}

func scanReview(s pgx.Row) (ca.Review, error) {
	var rv ca.Review
	var at int64
	if err := s.Scan(&rv.ID, &rv.RequestID, &rv.Reviewer, &rv.Event, &rv.Body, &at, &rv.Dismissed); err != nil {
		return rv, err
	}
	rv.CreatedAt = time.Unix(0, at).UTC()
	return rv, nil
}

// readRequestTx reads request id with its reviews in q; pgx.ErrNoRows when
// there is no such request.
func readRequestTx(ctx context.Context, q queryer, id string) (*ca.Request, error) {
	r, err := scanRequest(q.QueryRow(ctx, sqlGetRequest, id))
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, sqlGetReviews, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	r.Reviews = []ca.Review{}
	for rows.Next() {
		rv, err := scanReview(rows)
		if err != nil {
			return nil, err
		}
		r.Reviews = append(r.Reviews, rv)
	}
	return r, rows.Err()
}

// appendBound appends events, the last of which binds request id as it now
// is in tx (an EventRowsBound event is added when there is none).
func appendBound(ctx context.Context, tx pgx.Tx, c *chain, id, actor string, at time.Time, events []ca.Event) error {
	r, err := readRequestTx(ctx, tx, id)
	if err != nil {
		return fmt.Errorf("binding request %s: %w", id, err)
	}
	if len(events) == 0 {
		events = []ca.Event{{Time: at, Actor: actor, Type: ca.EventRowsBound, RequestID: id}}
	}
	for i, ev := range events {
		if i == len(events)-1 {
			if ev.Type == ca.EventCertIssued {
				// sqlLatestBinding (and its index) skip these events.
				return fmt.Errorf("store: a %s event cannot bind request %s", ev.Type, id)
			}
			ev = store.WithData(ev, store.DataRequestSHA256, store.RequestDigest(r), store.DataReviewsSHA256, store.ReviewsDigest(r))
		}
		if err := c.append(ctx, tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// checkRequestBinding checks r (read in q's snapshot with its reviews)
// against the newest event that binds it: that event must be intact (its
// hash covers its content, its MAC is this server's, the next row links to
// it) and hold r's digests.
func (d *DB) checkRequestBinding(ctx context.Context, q queryer, r *ca.Request, checkedThrough int64) error {
	var ev storedEvent
	err := q.QueryRow(ctx, sqlLatestBinding, r.ID).Scan(ev.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: requests row %s is not recorded in the event log (inserted outside the server); run jit-ssh audit verify", store.ErrRowMismatch, r.ID)
	}
	if err != nil {
		return classify("reading the request's event", err)
	}
	if reason := ev.check(store.MACKeyFor(d.macKey, checkedThrough, ev.ce.ID)); reason != "" {
		return fmt.Errorf("%w: event row %d, which records requests row %s, %s; run jit-ssh audit verify", store.ErrRowMismatch, ev.ce.ID, r.ID, reason)
	}
	var next string
	err = q.QueryRow(ctx, sqlEventLink, ev.ce.ID+1).Scan(&next)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return classify("reading the request's event", err)
	case next != ev.hash:
		return fmt.Errorf("%w: event row %d, which records requests row %s, was edited (row %d no longer links to it); run jit-ssh audit verify", store.ErrRowMismatch, ev.ce.ID, r.ID, ev.ce.ID+1)
	}
	var data map[string]any
	if err := json.Unmarshal(ev.ce.Data, &data); err != nil {
		return fmt.Errorf("%w: event row %d has unreadable data", store.ErrRowMismatch, ev.ce.ID)
	}
	if data[store.DataRequestSHA256] != store.RequestDigest(r) {
		return fmt.Errorf("%w: requests row %s differs from what event row %d recorded (edited outside the server); run jit-ssh audit verify", store.ErrRowMismatch, r.ID, ev.ce.ID)
	}
	if data[store.DataReviewsSHA256] != store.ReviewsDigest(r) {
		return fmt.Errorf("%w: the reviews of request %s differ from what event row %d recorded (a review was edited, inserted or deleted outside the server); run jit-ssh audit verify", store.ErrRowMismatch, r.ID, ev.ce.ID)
	}
	return nil
}

// checkRequestTx checks request id, as it is in tx, against the newest
// event that binds it, before a write changes it: a write binds the row as
// it is after the change, so a row edited outside the server would
// otherwise come out of the server's own write bound as good. A request
// that is not there is left to the write to report.
func (d *DB) checkRequestTx(ctx context.Context, tx pgx.Tx, c *chain, id string) error {
	r, err := readRequestTx(ctx, tx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return d.checkRequestBinding(ctx, tx, r, c.checkedThrough)
}

// checkCertTx returns why certificate serial, as it is in tx, does not
// match the newest event that binds it, or the baseline of a ledger copied
// from SQLite when no event does ("" when it matches).
func checkCertTx(ctx context.Context, tx pgx.Tx, c *chain, serial int64) (string, error) {
	row, _, err := scanCertRow(tx.QueryRow(ctx, `SELECT `+certRowColumns+` FROM certificates WHERE serial = $1`, serial))
	if err != nil {
		return "", err
	}
	var ev storedEvent
	err = tx.QueryRow(ctx, sqlLatestCertBinding, serial).Scan(ev.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		var sum string
		err := tx.QueryRow(ctx, `SELECT sha256 FROM certificate_baseline WHERE serial = $1`, serial).Scan(&sum)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return "is not recorded in the event log (inserted outside the server)", nil
		case err != nil:
			return "", err
		case sum != row.Digest():
			return "differs from what the ledger's upgrade recorded of it (edited outside the server)", nil
		}
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if reason := ev.check(store.MACKeyFor(c.macKey, c.checkedThrough, ev.ce.ID)); reason != "" {
		return fmt.Sprintf("is recorded by event row %d, which %s", ev.ce.ID, reason), nil
	}
	var next string
	switch err := tx.QueryRow(ctx, sqlEventLink, ev.ce.ID+1).Scan(&next); {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return "", err
	case next != ev.hash:
		return fmt.Sprintf("is recorded by event row %d, which was edited (row %d no longer links to it)", ev.ce.ID, ev.ce.ID+1), nil
	}
	var data struct {
		Sum      string `json:"certificate_sha256"`
		Mismatch bool   `json:"row_mismatch"`
	}
	if err := json.Unmarshal(ev.ce.Data, &data); err != nil {
		return fmt.Sprintf("is recorded by event row %d, whose data is unreadable", ev.ce.ID), nil
	}
	if data.Mismatch || data.Sum != row.Digest() {
		return fmt.Sprintf("differs from what event row %d recorded of it (edited outside the server)", ev.ce.ID), nil
	}
	return "", nil
}
