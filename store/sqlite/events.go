package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// ListEvents calls fn for each matching event in log order, streaming.
func (d *DB) ListEvents(ctx context.Context, f ca.EventFilter, fn func(*ca.Event) error) error {
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.Actor != "" {
		add("e.actor = ?", f.Actor)
	}
	if f.Type != "" {
		add("e.type = ?", f.Type)
	}
	if f.RequestID != "" {
		add("e.request_id = ?", f.RequestID)
	}
	if f.Serial != 0 {
		add("e.serial = ?", int64(f.Serial)) //nolint:gosec // bit-for-bit
	}
	if f.Group != "" {
		add("e.request_id IN (SELECT id FROM requests WHERE host_group = ?)", f.Group)
	}
	if f.Involving != "" {
		where = append(where, "(e.actor = ? OR e.request_id IN (SELECT id FROM requests WHERE requester = ?))")
		args = append(args, f.Involving, f.Involving)
	}
	if !f.Since.IsZero() {
		add("e.at >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("e.at < ?", f.Until.UnixNano())
	}
	q := `SELECT e.id, e.at, e.actor, e.type, e.request_id, e.serial, e.data FROM events e`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY e.id"
	if f.Limit > 0 {
		q += " LIMIT " + strconv.Itoa(f.Limit)
	}
	rows, err := d.r.QueryContext(ctx, q, args...)
	if err != nil {
		return classify("listing events", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ev ca.Event
		var at, serial int64
		var data string
		if err := rows.Scan(&ev.ID, &at, &ev.Actor, &ev.Type, &ev.RequestID, &serial, &data); err != nil {
			return classify("listing events", err)
		}
		ev.Time = time.Unix(0, at).UTC()
		ev.Serial = uint64(serial) //nolint:gosec // bit-for-bit
		if err := json.Unmarshal([]byte(data), &ev.Data); err != nil {
			return fmt.Errorf("store: event %d has unreadable data: %w", ev.ID, err)
		}
		if err := fn(&ev); err != nil {
			return err
		}
	}
	return classify("listing events", rows.Err())
}

// Report computes the figures over requests created since since (zero:
// all time). Open grants are counted at now.
func (d *DB) Report(ctx context.Context, since, now time.Time) (*ca.Report, error) {
	r := &ca.Report{Since: since}
	rows, err := d.r.QueryContext(ctx, `SELECT state, created_at, approved_at, duration_ns, ended_at FROM requests WHERE created_at >= ?`, since.UnixNano())
	if err != nil {
		return nil, classify("report", err)
	}
	defer rows.Close()
	var toApproval, grants []time.Duration
	for rows.Next() {
		var state string
		var created, dur int64
		var approved, ended sql.NullInt64
		if err := rows.Scan(&state, &created, &approved, &dur, &ended); err != nil {
			return nil, classify("report", err)
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
		if approved.Valid {
			toApproval = append(toApproval, time.Duration(approved.Int64-created))
			end := approved.Int64 + dur
			if ended.Valid && ended.Int64 < end {
				end = ended.Int64
			}
			grants = append(grants, time.Duration(end-approved.Int64))
			if now.UnixNano() < end {
				r.OpenGrantsNow++
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, classify("report", err)
	}
	if decided := r.Approved + r.Denied + r.Expired; decided > 0 {
		r.ApprovalRate = float64(r.Approved) / float64(decided)
	}
	r.MedianToApproval = percentile(toApproval, 0.5)
	r.P95ToApproval = percentile(toApproval, 0.95)
	r.MedianGrantLength = percentile(grants, 0.5)
	if err := d.r.QueryRowContext(ctx, `SELECT count(*) FROM certificates WHERE issued_at >= ?`, since.UnixNano()).Scan(&r.CertsIssued); err != nil {
		return nil, classify("report", err)
	}
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
