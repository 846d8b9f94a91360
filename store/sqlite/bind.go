package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// Row bindings (store/rowdigest.go): the event-data keys and digests are
// store's, shared by every backend.
const (
	// DataRequestSHA256 is store.DataRequestSHA256.
	DataRequestSHA256 = store.DataRequestSHA256
	// DataReviewsSHA256 is store.DataReviewsSHA256.
	DataReviewsSHA256 = store.DataReviewsSHA256
	// DataCertificateSHA256 is store.DataCertificateSHA256.
	DataCertificateSHA256 = store.DataCertificateSHA256
	// DataBaselineSHA256 is store.DataBaselineSHA256: in the EventRowsBound
	// event of migration 0005, the digest of the certificate_baseline table.
	DataBaselineSHA256 = store.DataBaselineSHA256
)

// requestDigest returns the digest of r's request row (not its reviews), as
// scanRequest reads it.
func requestDigest(r *ca.Request) string { return store.RequestDigest(r) }

// reviewsDigest returns the digest of r's reviews in the order loadReviews
// gives them (by id).
func reviewsDigest(r *ca.Request) string { return store.ReviewsDigest(r) }

// certRow is a certificates row as stored (NULL revocation columns as 0
// and "").
type certRow = store.CertRow

const certRowColumns = `serial, key_id, host_group, principals, valid_after, valid_before, requester, request_id, approvers, fingerprint, ca_fingerprint, certificate, issued_at, coalesce(revoked_at, 0), coalesce(revoke_reason, '')`

func scanCertRow(s interface{ Scan(...any) error }) (*certRow, uint64, error) {
	var c certRow
	var serial int64
	if err := s.Scan(&serial, &c.KeyID, &c.HostGroup, &c.Principals, &c.ValidAfter, &c.ValidBefore, &c.Requester, &c.RequestID,
		&c.Approvers, &c.Fingerprint, &c.CAFingerprint, &c.Certificate, &c.IssuedAt, &c.RevokedAt, &c.RevokeReason); err != nil {
		return nil, 0, err
	}
	u := uint64(serial) //nolint:gosec // bit-for-bit
	c.Serial = strconv.FormatUint(u, 10)
	return &c, u, nil
}

// withData returns a copy of ev whose data also holds kv (pairs of key and
// value); the caller's map is not changed.
func withData(ev ca.Event, kv ...string) ca.Event { return store.WithData(ev, kv...) }

// readRequestTx reads request id with its reviews inside tx.
func readRequestTx(ctx context.Context, tx queryer, id string) (*ca.Request, error) {
	r, err := scanRequest(tx.QueryRowContext(ctx, sqlGetRequest, id))
	if err != nil {
		return nil, err
	}
	return withReviewsTx(ctx, tx, r)
}

// requestColumnsV5 are the columns of requests up to migration 0005, whose
// backfill (backfillBindings) runs before migration 0006 adds the
// break-glass columns.
const requestColumnsV5 = `id, host_group, requester, state, reason, duration_ns, created_at, updated_at, approved_at, ended_at, version`

// readRequestTxV5 is readRequestTx on the schema of migration 0005: such a
// request is not break glass, and its digest is the same either way (the
// break-glass columns are left out of it at their defaults).
func readRequestTxV5(ctx context.Context, tx queryer, id string) (*ca.Request, error) {
	var r ca.Request
	var dur, created, updated int64
	var approved, ended sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT `+requestColumnsV5+` FROM requests WHERE id = ?`, id).Scan(&r.ID, &r.HostGroup, &r.Requester,
		&r.State, &r.Reason, &dur, &created, &updated, &approved, &ended, &r.Version)
	if err != nil {
		return nil, err
	}
	r.Duration = time.Duration(dur)
	r.CreatedAt = fromNanos(sql.NullInt64{Int64: created, Valid: true})
	r.UpdatedAt = fromNanos(sql.NullInt64{Int64: updated, Valid: true})
	r.ApprovedAt, r.EndedAt = fromNanos(approved), fromNanos(ended)
	return withReviewsTx(ctx, tx, &r)
}

// withReviewsTx reads r's reviews into it inside tx.
func withReviewsTx(ctx context.Context, tx queryer, r *ca.Request) (*ca.Request, error) {
	id := r.ID
	rows, err := tx.QueryContext(ctx, sqlGetReviews, id)
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
func appendBound(ctx context.Context, tx *sql.Tx, c *chain, id, actor string, at time.Time, events []ca.Event) error {
	return appendBoundRead(ctx, tx, c, id, actor, at, events, readRequestTx)
}

// appendBoundRead is appendBound reading the request with read.
func appendBoundRead(ctx context.Context, tx *sql.Tx, c *chain, id, actor string, at time.Time, events []ca.Event,
	read func(ctx context.Context, tx queryer, id string) (*ca.Request, error)) error {
	r, err := read(ctx, tx, id)
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
			ev = withData(ev, DataRequestSHA256, requestDigest(r), DataReviewsSHA256, reviewsDigest(r))
		}
		if err := c.append(ctx, tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// checkRequestBinding checks r (read from the ledger with its reviews)
// against the newest event that binds it, read with latest (sqlLatestBinding)
// and link (sqlEventLink) in r's snapshot: that event must be intact (its
// hash covers its content, and the next row links to it) and hold r's
// digests. It costs two point reads, once per request read (GetRequest
// caches what passed).
func (d *DB) checkRequestBinding(ctx context.Context, latest, link *sql.Stmt, r *ca.Request) error {
	var ev storedEvent
	err := latest.QueryRowContext(ctx, r.ID).Scan(ev.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: requests row %s is not recorded in the event log (inserted outside the server); run jit-ssh audit verify", store.ErrRowMismatch, r.ID)
	}
	if err != nil {
		return classify("reading the request's event", err)
	}
	if reason := ev.check(macKeyFor(d.macKey, d.verifiedThrough.Load(), ev.ce.ID)); reason != "" {
		return fmt.Errorf("%w: event row %d, which records requests row %s, %s; run jit-ssh audit verify", store.ErrRowMismatch, ev.ce.ID, r.ID, reason)
	}
	var next string
	err = link.QueryRowContext(ctx, ev.ce.ID+1).Scan(&next)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return classify("reading the request's event", err)
	case next != ev.hash:
		return fmt.Errorf("%w: event row %d, which records requests row %s, was edited (row %d no longer links to it); run jit-ssh audit verify", store.ErrRowMismatch, ev.ce.ID, r.ID, ev.ce.ID+1)
	}
	var data map[string]any
	if err := json.Unmarshal(ev.ce.Data, &data); err != nil {
		return fmt.Errorf("%w: event row %d has unreadable data", store.ErrRowMismatch, ev.ce.ID)
	}
	if data[DataRequestSHA256] != requestDigest(r) {
		return fmt.Errorf("%w: requests row %s differs from what event row %d recorded (edited outside the server); run jit-ssh audit verify", store.ErrRowMismatch, r.ID, ev.ce.ID)
	}
	if data[DataReviewsSHA256] != reviewsDigest(r) {
		return fmt.Errorf("%w: the reviews of request %s differ from what event row %d recorded (a review was edited, inserted or deleted outside the server); run jit-ssh audit verify", store.ErrRowMismatch, r.ID, ev.ce.ID)
	}
	return nil
}

// macKeyFor is the key the MAC of event row id must verify under
// (store.MACKeyFor).
func macKeyFor(key []byte, checkedThrough, id int64) []byte {
	return store.MACKeyFor(key, checkedThrough, id)
}

// storedEvent is an event row as read for checking.
type storedEvent struct {
	ce     canonicalEvent
	serial int64
	data   string
	hash   string
	mac    sql.NullString
}

const storedEventColumns = `id, at, actor, type, request_id, serial, data, prev_hash, hash, mac`

func (e *storedEvent) dest() []any {
	return []any{&e.ce.ID, &e.ce.At, &e.ce.Actor, &e.ce.Type, &e.ce.RequestID, &e.serial, &e.data, &e.ce.PrevHash, &e.hash, &e.mac}
}

// check returns why the row is not intact ("" when it is): its hash must
// cover its content and, when macKey is set and the row carries a MAC, the
// MAC must be this server's.
func (e *storedEvent) check(macKey []byte) string {
	e.ce.Serial = strconv.FormatUint(uint64(e.serial), 10) //nolint:gosec // bit-for-bit
	e.ce.Data = json.RawMessage(e.data)
	return store.CheckEventRow(&e.ce, e.hash, e.mac.String, macKey)
}

// bindingsMigration is the migration that introduced row bindings.
const bindingsMigration = 5

// backfillBindings binds the rows of a ledger created before row bindings,
// inside migration 0005's transaction: one EventRowsBound event per
// request (with its reviews), and the certificates through
// certificate_baseline and one EventRowsBound event holding its digest. The
// rows are taken as they are at the upgrade (trust on upgrade: audit verify
// before upgrading proves the chain, not these rows). With a checkpoint
// signer, the event rows after the newest checkpoint get this server's MAC,
// so that the first start after the upgrade accepts them.
func (d *DB) backfillBindings(ctx context.Context, tx *sql.Tx) error {
	c := &chain{now: d.now, macKey: d.macKey}
	var last int64
	err := tx.QueryRowContext(ctx, `SELECT id, hash FROM events ORDER BY id DESC LIMIT 1`).Scan(&last, &c.head)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	c.next = last + 1
	if d.macKey != nil {
		if err := macTail(ctx, tx, d.macKey); err != nil {
			return err
		}
	}
	at := d.now()
	var ids []string
	rows, err := tx.QueryContext(ctx, `SELECT id FROM requests ORDER BY id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		ev := ca.Event{Time: at, Actor: "jit-ssh", Type: ca.EventRowsBound, RequestID: id, Data: map[string]any{"migration": bindingsMigration}}
		if err := appendBoundRead(ctx, tx, c, id, "jit-ssh", at, []ca.Event{ev}, readRequestTxV5); err != nil {
			return err
		}
	}
	crows, err := tx.QueryContext(ctx, `SELECT `+certRowColumns+` FROM certificates ORDER BY serial`)
	if err != nil {
		return err
	}
	type sum struct {
		serial int64
		sha    string
	}
	var sums []sum
	for crows.Next() {
		cr, serial, err := scanCertRow(crows)
		if err != nil {
			crows.Close()
			return err
		}
		sums = append(sums, sum{int64(serial), cr.Digest()}) //nolint:gosec // bit-for-bit
	}
	crows.Close()
	if err := crows.Err(); err != nil {
		return err
	}
	if len(sums) == 0 {
		return nil
	}
	for _, s := range sums {
		if _, err := tx.ExecContext(ctx, `INSERT INTO certificate_baseline (serial, sha256) VALUES (?, ?)`, s.serial, s.sha); err != nil {
			return err
		}
	}
	agg, err := baselineDigest(ctx, tx)
	if err != nil {
		return err
	}
	return c.append(ctx, tx, ca.Event{Time: at, Actor: "jit-ssh", Type: ca.EventRowsBound, Data: map[string]any{
		"migration": bindingsMigration, "certificates": len(sums), DataBaselineSHA256: agg,
	}})
}

// queryer is what reads need of a *sql.DB or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// baselineDigest is the digest of the certificate_baseline table: SHA-256
// over one "serial sha256\n" line per row, in serial order.
func baselineDigest(ctx context.Context, q queryer) (string, error) {
	rows, err := q.QueryContext(ctx, `SELECT serial, sha256 FROM certificate_baseline ORDER BY serial`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	h := sha256.New()
	for rows.Next() {
		var serial int64
		var sum string
		if err := rows.Scan(&serial, &sum); err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%d %s\n", uint64(serial), sum) //nolint:gosec // bit-for-bit
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
