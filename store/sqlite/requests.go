package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// ApplyRequestChange commits ch in one transaction, revoking the request's
// certificates in it when ch says so (their serials are filled in).
func (d *DB) ApplyRequestChange(ctx context.Context, ch ca.RequestChange) error {
	r := ch.Request
	d.requests.dropAll() // no read during the write is served from before it
	defer d.requests.dropAll()
	return d.write(ctx, "saving request", func(tx *sql.Tx, c *chain) error {
		if ch.Create {
			_, err := tx.ExecContext(ctx, `INSERT INTO requests (id, host_group, requester, state, reason, duration_ns, created_at, updated_at, approved_at, ended_at, version,
				break_glass, follow_up, review_due_at, followed_up_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				r.ID, r.HostGroup, r.Requester, r.State, r.Reason, int64(r.Duration), r.CreatedAt.UnixNano(), r.UpdatedAt.UnixNano(),
				nanos(r.ApprovedAt), nanos(r.EndedAt), r.Version, r.BreakGlass, r.FollowUp, nanos(r.ReviewDueAt), nanos(r.FollowedUpAt))
			if err != nil {
				return err
			}
		} else {
			// The change binds the row as it will be: the row must match
			// the event log before it, or a row edited outside the server
			// would come out of the server's own write bound as good.
			if err := d.checkRequestTx(ctx, tx, r.ID); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `UPDATE requests SET state = ?, reason = ?, duration_ns = ?, updated_at = ?, approved_at = ?, ended_at = ?, version = ?,
				break_glass = ?, follow_up = ?, review_due_at = ?, followed_up_at = ?
				WHERE id = ? AND version = ?`,
				r.State, r.Reason, int64(r.Duration), r.UpdatedAt.UnixNano(), nanos(r.ApprovedAt), nanos(r.EndedAt), r.Version,
				r.BreakGlass, r.FollowUp, nanos(r.ReviewDueAt), nanos(r.FollowedUpAt), r.ID, ch.PrevVersion)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n != 1 {
				return fmt.Errorf("%w: request %s", store.ErrConflict, r.ID)
			}
		}
		if ch.DismissReviews {
			if _, err := tx.ExecContext(ctx, `UPDATE reviews SET dismissed = 1 WHERE request_id = ? AND event IN (?, ?)`, r.ID, ca.ReviewApprove, ca.ReviewRequestChanges); err != nil {
				return err
			}
		}
		if rv := ch.Review; rv != nil {
			res, err := tx.ExecContext(ctx, `INSERT INTO reviews (request_id, reviewer, event, body, created_at, dismissed) VALUES (?, ?, ?, ?, ?, ?)`,
				r.ID, rv.Reviewer, rv.Event, rv.Body, rv.CreatedAt.UnixNano(), rv.Dismissed)
			if err != nil {
				return err
			}
			if rv.ID, err = res.LastInsertId(); err != nil {
				return err
			}
			rv.RequestID = r.ID
		}
		// The last event binds the request and its reviews as they now are.
		if err := appendBound(ctx, tx, c, r.ID, "jit-ssh", r.UpdatedAt, ch.Events); err != nil {
			return err
		}
		if rc := ch.RevokeCertificates; rc != nil {
			// In the transaction that ends the grant: a certificate
			// recorded before it is revoked here, one after it finds the
			// grant ended (RecordCertificate) and is never issued.
			hits, err := revokeCerts(ctx, tx, c, "request_id = ? AND valid_before > ?", []any{r.ID, rc.NotExpiredAt.UnixNano()},
				rc.Actor, rc.Reason, rc.At)
			if err != nil {
				return err
			}
			rc.Serials = rc.Serials[:0]
			for _, h := range hits {
				rc.Serials = append(rc.Serials, h.serial)
			}
		}
		return nil
	})
}

const (
	requestColumns = `id, host_group, requester, state, reason, duration_ns, created_at, updated_at, approved_at, ended_at, version, break_glass, follow_up, review_due_at, followed_up_at`
	reviewColumns  = `id, request_id, reviewer, event, body, created_at, dismissed`
)

func scanRequest(s interface{ Scan(...any) error }) (*ca.Request, error) {
	var r ca.Request
	var dur, created, updated int64
	var approved, ended, due, followed sql.NullInt64
	if err := s.Scan(&r.ID, &r.HostGroup, &r.Requester, &r.State, &r.Reason, &dur, &created, &updated, &approved, &ended, &r.Version,
		&r.BreakGlass, &r.FollowUp, &due, &followed); err != nil {
		return nil, err
	}
	r.ReviewDueAt = fromNanos(due)
	r.FollowedUpAt = fromNanos(followed)
	r.Duration = time.Duration(dur)
	r.CreatedAt = fromNanos(sql.NullInt64{Int64: created, Valid: true})
	r.UpdatedAt = fromNanos(sql.NullInt64{Int64: updated, Valid: true})
	r.ApprovedAt = fromNanos(approved)
	r.EndedAt = fromNanos(ended)
	return &r, nil
}

// GetRequest returns a request with its reviews, oldest first.
func (d *DB) GetRequest(ctx context.Context, id string) (*ca.Request, error) {
	// Only the ledger's writer may cache: it sees every change. A
	// read-only open shares the file with a server that writes it.
	writer := d.lock != nil
	cached, gen := d.requests.get(id)
	if writer && cached != nil {
		return cached, nil
	}
	if writer {
		// The server decides from this request: it must match the event
		// that last changed it. Checked once per read from the ledger;
		// what passed is cached.
		r, err := d.readCheckedRequest(ctx, id)
		if err != nil {
			return nil, err
		}
		d.requests.put(r, gen)
		return r, nil
	}
	var row *sql.Row
	if d.reads != nil {
		row = d.reads.getRequest.QueryRowContext(ctx, id)
	} else {
		row = d.r.QueryRowContext(ctx, sqlGetRequest, id)
	}
	r, err := scanRequest(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: request %s", store.ErrNotFound, id)
	}
	if err != nil {
		return nil, classify("reading request", err)
	}
	if err := d.loadReviews(ctx, []*ca.Request{r}); err != nil {
		return nil, err
	}
	return r, nil
}

// readCheckedRequest reads request id with its reviews and checks them
// against the newest event that records them, all in one read transaction
// (one snapshot: a write committing between the reads cannot make a good
// row look forged), with the prepared reads.
func (d *DB) readCheckedRequest(ctx context.Context, id string) (*ca.Request, error) {
	tx, err := d.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, classify("reading request", err)
	}
	defer func() { _ = tx.Rollback() }()
	r, err := scanRequest(tx.StmtContext(ctx, d.reads.getRequest).QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: request %s", store.ErrNotFound, id)
	}
	if err != nil {
		return nil, classify("reading request", err)
	}
	rows, err := tx.StmtContext(ctx, d.reads.getReviews).QueryContext(ctx, id)
	if err != nil {
		return nil, classify("reading reviews", err)
	}
	defer rows.Close()
	r.Reviews = []ca.Review{}
	for rows.Next() {
		rv, err := scanReview(rows)
		if err != nil {
			return nil, classify("reading reviews", err)
		}
		r.Reviews = append(r.Reviews, rv)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("reading reviews", err)
	}
	rows.Close()
	latest, link := tx.StmtContext(ctx, d.reads.latestBinding), tx.StmtContext(ctx, d.reads.eventLink)
	if err := d.checkRequestBinding(ctx, latest, link, r); err != nil {
		return nil, err
	}
	return r, nil
}

// ListRequests returns matching requests, newest first, with their reviews.
func (d *DB) ListRequests(ctx context.Context, f ca.RequestFilter) ([]*ca.Request, error) {
	var where []string
	var args []any
	if f.Requester != "" {
		where = append(where, "requester = ?")
		args = append(args, f.Requester)
	}
	if len(f.States) > 0 {
		where = append(where, "state IN ("+placeholders(len(f.States))+")")
		for _, s := range f.States {
			args = append(args, s)
		}
	}
	if len(f.Groups) > 0 {
		where = append(where, "host_group IN ("+placeholders(len(f.Groups))+")")
		for _, g := range f.Groups {
			args = append(args, g)
		}
	}
	if !f.GrantElapsedBy.IsZero() {
		where = append(where, "state = ? AND ended_at IS NULL AND approved_at IS NOT NULL AND approved_at + duration_ns <= ?")
		args = append(args, ca.StateApproved, f.GrantElapsedBy.UnixNano())
	}
	if f.FollowUp != "" {
		where = append(where, "break_glass = 1 AND follow_up = ?")
		args = append(args, f.FollowUp)
	}
	if !f.FollowUpDueBy.IsZero() {
		where = append(where, "break_glass = 1 AND review_due_at IS NOT NULL AND review_due_at <= ?")
		args = append(args, f.FollowUpDueBy.UnixNano())
	}
	q := `SELECT ` + requestColumns + ` FROM requests`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 200
	}
	q += fmt.Sprintf(" ORDER BY created_at DESC LIMIT %d", min(limit, 1000))
	rows, err := d.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, classify("listing requests", err)
	}
	defer rows.Close()
	var out []*ca.Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, classify("listing requests", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("listing requests", err)
	}
	if err := d.loadReviews(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (d *DB) loadReviews(ctx context.Context, reqs []*ca.Request) error {
	if len(reqs) == 0 {
		return nil
	}
	byID := make(map[string]*ca.Request, len(reqs))
	args := make([]any, 0, len(reqs))
	for _, r := range reqs {
		r.Reviews = []ca.Review{}
		byID[r.ID] = r
		args = append(args, r.ID)
	}
	var rows *sql.Rows
	var err error
	switch {
	case len(args) == 1 && d.reads != nil:
		rows, err = d.reads.getReviews.QueryContext(ctx, args[0])
	case len(args) == 1:
		rows, err = d.r.QueryContext(ctx, sqlGetReviews, args[0])
	default:
		rows, err = d.r.QueryContext(ctx, `SELECT `+reviewColumns+` FROM reviews WHERE request_id IN (`+placeholders(len(args))+`) ORDER BY id`, args...)
	}
	if err != nil {
		return classify("reading reviews", err)
	}
	defer rows.Close()
	for rows.Next() {
		rv, err := scanReview(rows)
		if err != nil {
			return classify("reading reviews", err)
		}
		byID[rv.RequestID].Reviews = append(byID[rv.RequestID].Reviews, rv)
	}
	return classify("reading reviews", rows.Err())
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}
