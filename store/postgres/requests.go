package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// ApplyRequestChange commits ch in one transaction, revoking the request's
// certificates in it when ch says so (their serials are filled in).
func (d *DB) ApplyRequestChange(ctx context.Context, ch ca.RequestChange) error {
	r := ch.Request
	return d.write(ctx, "saving request", func(tx pgx.Tx, c *chain) error {
		if ch.Create {
			_, err := tx.Exec(ctx, `INSERT INTO requests (id, host_group, requester, state, reason, duration_ns, created_at, updated_at, approved_at, ended_at, version,
				break_glass, follow_up, review_due_at, followed_up_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
				r.ID, r.HostGroup, r.Requester, r.State, r.Reason, int64(r.Duration), r.CreatedAt.UnixNano(), r.UpdatedAt.UnixNano(),
				nanos(r.ApprovedAt), nanos(r.EndedAt), r.Version, r.BreakGlass, r.FollowUp, nanos(r.ReviewDueAt), nanos(r.FollowedUpAt))
			if err != nil {
				return err
			}
		} else {
			// The change binds the row as it will be: the row must match
			// the event log before it.
			if err := d.checkRequestTx(ctx, tx, c, r.ID); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `UPDATE requests SET state = $1, reason = $2, duration_ns = $3, updated_at = $4, approved_at = $5, ended_at = $6, version = $7,
				break_glass = $8, follow_up = $9, review_due_at = $10, followed_up_at = $11
				WHERE id = $12 AND version = $13`,
				r.State, r.Reason, int64(r.Duration), r.UpdatedAt.UnixNano(), nanos(r.ApprovedAt), nanos(r.EndedAt), r.Version,
				r.BreakGlass, r.FollowUp, nanos(r.ReviewDueAt), nanos(r.FollowedUpAt), r.ID, ch.PrevVersion)
			if err != nil {
				return err
			}
			if tag.RowsAffected() != 1 {
				return fmt.Errorf("%w: request %s", store.ErrConflict, r.ID)
			}
		}
		if ch.DismissReviews {
			if _, err := tx.Exec(ctx, `UPDATE reviews SET dismissed = true WHERE request_id = $1 AND event IN ($2, $3)`, r.ID, ca.ReviewApprove, ca.ReviewRequestChanges); err != nil {
				return err
			}
		}
		if rv := ch.Review; rv != nil {
			err := tx.QueryRow(ctx, `INSERT INTO reviews (request_id, reviewer, event, body, created_at, dismissed) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
				r.ID, rv.Reviewer, rv.Event, rv.Body, rv.CreatedAt.UnixNano(), rv.Dismissed).Scan(&rv.ID)
			if err != nil {
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
			var a args
			where := "request_id = " + a.add(r.ID) + " AND valid_before > " + a.add(rc.NotExpiredAt.UnixNano())
			hits, err := revokeCerts(ctx, tx, c, where, a, rc.Actor, rc.Reason, rc.At)
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

// GetRequest returns a request with its reviews, oldest first, checked
// against the newest event that binds it, in one snapshot. Nothing is
// cached: another writer's change is seen at once.
func (d *DB) GetRequest(ctx context.Context, id string) (*ca.Request, error) {
	var r *ca.Request
	err := d.readTx(ctx, func(tx pgx.Tx) error {
		var err error
		r, err = readRequestTx(ctx, tx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: request %s", store.ErrNotFound, id)
		}
		if err != nil {
			return classify("reading request", err)
		}
		if d.readOnly {
			return nil
		}
		return d.checkRequestBinding(ctx, tx, r, d.verifiedThrough.Load())
	})
	if err != nil {
		return nil, classify("reading request", err)
	}
	return r, nil
}

// ListRequests returns matching requests, newest first, with their reviews.
func (d *DB) ListRequests(ctx context.Context, f ca.RequestFilter) ([]*ca.Request, error) {
	var where []string
	var a args
	if f.Requester != "" {
		where = append(where, "requester = "+a.add(f.Requester))
	}
	if len(f.States) > 0 {
		where = append(where, "state = ANY("+a.add(f.States)+")")
	}
	if len(f.Groups) > 0 {
		where = append(where, "host_group = ANY("+a.add(f.Groups)+")")
	}
	if !f.GrantElapsedBy.IsZero() {
		where = append(where, "state = "+a.add(ca.StateApproved)+" AND ended_at IS NULL AND approved_at IS NOT NULL AND approved_at + duration_ns <= "+a.add(f.GrantElapsedBy.UnixNano()))
	}
	if f.FollowUp != "" {
		where = append(where, "break_glass AND follow_up = "+a.add(f.FollowUp))
	}
	if !f.FollowUpDueBy.IsZero() {
		where = append(where, "break_glass AND review_due_at IS NOT NULL AND review_due_at <= "+a.add(f.FollowUpDueBy.UnixNano()))
	}
	q := `SELECT ` + requestColumns + ` FROM requests`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 200
	}
	q += fmt.Sprintf(" ORDER BY created_at DESC, id DESC LIMIT %d", min(limit, 1000))
	var out []*ca.Request
	err := d.readTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q, a...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRequest(rows)
			if err != nil {
				return err
			}
			r.Reviews = []ca.Review{}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		return loadReviews(ctx, tx, out)
	})
	if err != nil {
		return nil, classify("listing requests", err)
	}
	return out, nil
}

func loadReviews(ctx context.Context, q queryer, reqs []*ca.Request) error {
	if len(reqs) == 0 {
		return nil
	}
	byID := make(map[string]*ca.Request, len(reqs))
	ids := make([]string, 0, len(reqs))
	for _, r := range reqs {
		byID[r.ID] = r
		ids = append(ids, r.ID)
	}
	rows, err := q.Query(ctx, `SELECT `+reviewColumns+` FROM reviews WHERE request_id = ANY($1) ORDER BY id`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		rv, err := scanReview(rows)
		if err != nil {
			return err
		}
		byID[rv.RequestID].Reviews = append(byID[rv.RequestID].Reviews, rv)
	}
	return rows.Err()
}
