package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jit-ssh/jit-ssh/ca"
)

// ListEvents calls fn for each matching event in log order, streaming.
func (d *DB) ListEvents(ctx context.Context, f ca.EventFilter, fn func(*ca.Event) error) error {
	var where []string
	var a args
	if f.Actor != "" {
		where = append(where, "e.actor = "+a.add(f.Actor))
	}
	if f.Type != "" {
		where = append(where, "e.type = "+a.add(f.Type))
	}
	if f.RequestID != "" {
		where = append(where, "e.request_id = "+a.add(f.RequestID))
	}
	if f.Serial != 0 {
		where = append(where, "e.serial = "+a.add(int64(f.Serial))) //nolint:gosec // bit-for-bit
	}
	if f.Group != "" {
		where = append(where, "e.request_id IN (SELECT id FROM requests WHERE host_group = "+a.add(f.Group)+")")
	}
	if f.Involving != "" {
		p := a.add(f.Involving)
		where = append(where, "(e.actor = "+p+" OR e.request_id IN (SELECT id FROM requests WHERE requester = "+p+"))")
	}
	if !f.Since.IsZero() {
		where = append(where, "e.at >= "+a.add(f.Since.UnixNano()))
	}
	if !f.Until.IsZero() {
		where = append(where, "e.at < "+a.add(f.Until.UnixNano()))
	}
	q := `SELECT e.id, e.at, e.actor, e.type, e.request_id, e.serial, e.data FROM events e`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY e.id"
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
			var ev ca.Event
			var at, serial int64
			var data string
			if err := rows.Scan(&ev.ID, &at, &ev.Actor, &ev.Type, &ev.RequestID, &serial, &data); err != nil {
				return err
			}
			ev.Time = time.Unix(0, at).UTC()
			ev.Serial = uint64(serial) //nolint:gosec // bit-for-bit
			if err := json.Unmarshal([]byte(data), &ev.Data); err != nil {
				fnErr = fmt.Errorf("store: event %d has unreadable data: %w", ev.ID, err)
				return fnErr
			}
			if err := fn(&ev); err != nil {
				fnErr = err
				return err
			}
		}
		return rows.Err()
	})
	if fnErr != nil {
		return fnErr
	}
	return classify("listing events", err)
}

// Report computes the figures over requests created since since (zero:
// all time). Open grants are counted at now.
func (d *DB) Report(ctx context.Context, since, now time.Time) (*ca.Report, error) {
	r := &ca.Report{Since: since}
	var toApproval, grants, toFollowUp []time.Duration
	err := d.readTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT state, created_at, approved_at, duration_ns, ended_at, break_glass, followed_up_at FROM requests WHERE created_at >= $1`, since.UnixNano())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var state string
			var created, dur int64
			var approved, ended, followed *int64
			var breakGlass bool
			if err := rows.Scan(&state, &created, &approved, &dur, &ended, &breakGlass, &followed); err != nil {
				return err
			}
			r.Requests++
			if breakGlass {
				r.BreakGlass++
				if followed != nil && approved != nil {
					toFollowUp = append(toFollowUp, time.Duration(*followed-*approved))
				}
			}
			switch state {
			case ca.StateApproved:
				r.Approved++
			case ca.StateDenied:
				r.Denied++
			case ca.StateExpired:
				r.Expired++
			case ca.StateCancelled:
				r.Cancelled++
			case ca.StatePending:
				r.Pending++
			}
			if approved != nil {
				toApproval = append(toApproval, time.Duration(*approved-created))
				end := *approved + dur
				if ended != nil && *ended < end {
					end = *ended
				}
				grants = append(grants, time.Duration(end-*approved))
				if now.UnixNano() < end {
					r.OpenGrantsNow++
				}
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM certificates WHERE issued_at >= $1`, since.UnixNano()).Scan(&r.CertsIssued); err != nil {
			return err
		}
		// Overdue follow-ups are listed whatever since says: a late review
		// stays late until someone does it.
		od, err := tx.Query(ctx, `SELECT id, requester, host_group, review_due_at FROM requests
			WHERE break_glass AND follow_up = $1 AND review_due_at <= $2 ORDER BY review_due_at, id COLLATE "C"`, ca.FollowUpNeedsReview, now.UnixNano())
		if err != nil {
			return err
		}
		defer od.Close()
		r.OverdueFollowUps = []ca.OverdueFollowUp{}
		for od.Next() {
			var o ca.OverdueFollowUp
			var due int64
			if err := od.Scan(&o.RequestID, &o.Requester, &o.HostGroup, &due); err != nil {
				return err
			}
			o.DueAt = time.Unix(0, due).UTC()
			r.OverdueFollowUps = append(r.OverdueFollowUps, o)
		}
		return od.Err()
	})
	if err != nil {
		return nil, classify("report", err)
	}
	if decided := r.Approved + r.Denied + r.Expired; decided > 0 {
		r.ApprovalRate = float64(r.Approved) / float64(decided)
	}
	r.MedianToApproval = percentile(toApproval, 0.5)
	r.P95ToApproval = percentile(toApproval, 0.95)
	r.MedianGrantLength = percentile(grants, 0.5)
	r.MedianToFollowUp = percentile(toFollowUp, 0.5)
	return r, nil
}

// BreakGlassCounts returns, by host group, the break-glass grants ever
// taken and the follow-ups overdue at now. Groups without a break-glass
// grant are absent.
func (d *DB) BreakGlassCounts(ctx context.Context, now time.Time) (map[string]ca.BreakGlassCount, error) {
	out := map[string]ca.BreakGlassCount{}
	err := d.readTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT host_group, count(*), count(*) FILTER (WHERE follow_up = $1 AND review_due_at <= $2)
			FROM requests WHERE break_glass GROUP BY host_group`, ca.FollowUpNeedsReview, now.UnixNano())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var g string
			var c ca.BreakGlassCount
			if err := rows.Scan(&g, &c.Grants, &c.Overdue); err != nil {
				return err
			}
			out[g] = c
		}
		return rows.Err()
	})
	if err != nil {
		return nil, classify("break-glass counts", err)
	}
	return out, nil
}

// percentile returns the nearest-rank percentile p of ds (sorted in place).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds))*p+0.999999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}
