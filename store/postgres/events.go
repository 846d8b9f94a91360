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
	var toApproval, grants []time.Duration
	err := d.readTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT state, created_at, approved_at, duration_ns, ended_at FROM requests WHERE created_at >= $1`, since.UnixNano())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var state string
			var created, dur int64
			var approved, ended *int64
			if err := rows.Scan(&state, &created, &approved, &dur, &ended); err != nil {
				return err
			}
			r.Requests++
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
		return tx.QueryRow(ctx, `SELECT count(*) FROM certificates WHERE issued_at >= $1`, since.UnixNano()).Scan(&r.CertsIssued)
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
	return r, nil
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
