package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// Row bindings. Every row the server decides from is bound to the event
// chain: the event that last changed a request (with its reviews) or a
// certificate carries, in its data, the SHA-256 of the row's canonical
// content after the change. The chain's hashes cover the event data, so a
// row edited, inserted or deleted outside the server no longer matches the
// newest event that binds its key, and Verify names it; GetRequest checks
// the same before the server decides from a request.
const (
	// DataRequestSHA256 is the event-data key holding the digest of a
	// request row (requestDigest) after the change the event records.
	DataRequestSHA256 = "request_sha256"
	// DataReviewsSHA256 holds the digest of the request's reviews, in id
	// order (reviewsDigest).
	DataReviewsSHA256 = "reviews_sha256"
	// DataCertificateSHA256 holds the digest of a certificate row
	// (certRow.digest), revocation columns included.
	DataCertificateSHA256 = "certificate_sha256"
	// DataBaselineSHA256 holds, in the EventRowsBound event of migration
	// 0005, the digest of the certificate_baseline table.
	DataBaselineSHA256 = "certificate_baseline_sha256"
)

// canonicalRequest is the encoding a request row's digest covers: every
// column, times in Unix nanoseconds, NULL times as 0.
type canonicalRequest struct {
	ID         string `json:"id"`
	HostGroup  string `json:"host_group"`
	Requester  string `json:"requester"`
	State      string `json:"state"`
	Reason     string `json:"reason"`
	DurationNS int64  `json:"duration_ns"`
	CreatedAt  int64  `json:"created_at"`
	UpdatedAt  int64  `json:"updated_at"`
	ApprovedAt int64  `json:"approved_at"`
	EndedAt    int64  `json:"ended_at"`
	Version    int64  `json:"version"`
	// The break-glass columns (migration 0006) are left out while they
	// hold their defaults, so a request that is not break glass keeps the
	// digest it had before them and older ledgers verify unchanged. On a
	// break-glass row they are all covered: the follow-up decision is
	// bound to the chain like the state.
	BreakGlass   bool   `json:"break_glass,omitempty"`
	FollowUp     string `json:"follow_up,omitempty"`
	ReviewDueAt  int64  `json:"review_due_at,omitempty"`
	FollowedUpAt int64  `json:"followed_up_at,omitempty"`
}

// canonicalReview is the encoding of one review row in reviewsDigest.
type canonicalReview struct {
	ID        int64  `json:"id"`
	Reviewer  string `json:"reviewer"`
	Event     string `json:"event"`
	Body      string `json:"body"`
	CreatedAt int64  `json:"created_at"`
	Dismissed bool   `json:"dismissed"`
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func digestJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("store: encoding a row digest: %v", err)) // plain structs of strings and numbers
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// requestDigest returns the digest of r's request row (not its reviews), as
// scanRequest reads it.
func requestDigest(r *ca.Request) string {
	return digestJSON(canonicalRequest{
		ID: r.ID, HostGroup: r.HostGroup, Requester: r.Requester, State: r.State, Reason: r.Reason,
		DurationNS: int64(r.Duration), CreatedAt: r.CreatedAt.UnixNano(), UpdatedAt: r.UpdatedAt.UnixNano(),
		ApprovedAt: unixOrZero(r.ApprovedAt), EndedAt: unixOrZero(r.EndedAt), Version: r.Version,
		BreakGlass: r.BreakGlass, FollowUp: r.FollowUp, ReviewDueAt: unixOrZero(r.ReviewDueAt), FollowedUpAt: unixOrZero(r.FollowedUpAt),
	})
}

// reviewsDigest returns the digest of r's reviews in the order loadReviews
// gives them (by id).
func reviewsDigest(r *ca.Request) string {
	out := make([]canonicalReview, 0, len(r.Reviews))
	for _, rv := range r.Reviews {
		out = append(out, canonicalReview{ID: rv.ID, Reviewer: rv.Reviewer, Event: rv.Event, Body: rv.Body,
			CreatedAt: rv.CreatedAt.UnixNano(), Dismissed: rv.Dismissed})
	}
	return digestJSON(out)
}

// certRow is a certificates row as stored (NULL revocation columns as 0
// and "").
type certRow struct {
	Serial        string
	KeyID         string
	HostGroup     string
	Principals    string // the stored JSON text
	ValidAfter    int64
	ValidBefore   int64
	Requester     string
	RequestID     string
	Approvers     string // the stored JSON text
	Fingerprint   string
	CAFingerprint string
	Certificate   string
	IssuedAt      int64
	RevokedAt     int64 // NULL: 0
	RevokeReason  string
}

// digest is the SHA-256 of the row's fields in column order, each as its
// length in bytes, a colon, the value and a newline (integers in decimal):
// unambiguous, and cheaper on the issuance path than encoding JSON.
func (c *certRow) digest() string {
	h := sha256.New()
	var buf []byte
	field := func(v string) {
		buf = strconv.AppendInt(buf[:0], int64(len(v)), 10)
		buf = append(buf, ':')
		buf = append(buf, v...)
		buf = append(buf, '\n')
		h.Write(buf)
	}
	num := func(n int64) { field(strconv.FormatInt(n, 10)) }
	field(c.Serial)
	field(c.KeyID)
	field(c.HostGroup)
	field(c.Principals)
	num(c.ValidAfter)
	num(c.ValidBefore)
	field(c.Requester)
	field(c.RequestID)
	field(c.Approvers)
	field(c.Fingerprint)
	field(c.CAFingerprint)
	field(c.Certificate)
	num(c.IssuedAt)
	num(c.RevokedAt)
	field(c.RevokeReason)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

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
func withData(ev ca.Event, kv ...string) ca.Event {
	d := make(map[string]any, len(ev.Data)+len(kv)/2)
	maps.Copy(d, ev.Data)
	for i := 0; i+1 < len(kv); i += 2 {
		d[kv[i]] = kv[i+1]
	}
	ev.Data = d
	return ev
}

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

// macKeyFor is the key the MAC of event row id must verify under, for a
// server whose start-up check (VerifyTail) read rows up to checkedThrough:
// none for those (they may carry an earlier checkpoint key's MAC, after a
// clean key rotation), this process's key for the rows written since.
func macKeyFor(key []byte, checkedThrough, id int64) []byte {
	if id <= checkedThrough {
		return nil
	}
	return key
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
	if !json.Valid(e.ce.Data) {
		return "has data that is not valid JSON"
	}
	if eventHash(e.ce) != e.hash {
		return "does not match its hash (the row was edited)"
	}
	if macKey != nil && e.mac.Valid && e.mac.String != eventMAC(macKey, e.ce.ID, e.hash) {
		return "carries a MAC this server did not make (the row was forged)"
	}
	return ""
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
		sums = append(sums, sum{int64(serial), cr.digest()}) //nolint:gosec // bit-for-bit
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
