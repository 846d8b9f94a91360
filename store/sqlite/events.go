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
	rows, err := d.r.QueryContext(ctx, `SELECT state, created_at, approved_at, duration_ns, ended_at, break_glass, followed_up_at FROM requests WHERE created_at >= ?`, since.UnixNano())
	if err != nil {
		return nil, classify("report", err)
	}
	defer rows.Close()
	var toApproval, grants, toFollowUp []time.Duration
	for rows.Next() {
		var state string
		var created, dur int64
		var approved, ended, followed sql.NullInt64
		var breakGlass bool
		if err := rows.Scan(&state, &created, &approved, &dur, &ended, &breakGlass, &followed); err != nil {
			return nil, classify("report", err)
		}
		r.Requests++
		if breakGlass {
			r.BreakGlass++
			if followed.Valid && approved.Valid {
				toFollowUp = append(toFollowUp, time.Duration(followed.Int64-approved.Int64))
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
	r.MedianToFollowUp = percentile(toFollowUp, 0.5)
	if err := d.r.QueryRowContext(ctx, `SELECT count(*) FROM certificates WHERE issued_at >= ?`, since.UnixNano()).Scan(&r.CertsIssued); err != nil {
		return nil, classify("report", err)
	}
	// Overdue follow-ups are listed whatever since says: a late review
	// stays late until someone does it.
	od, err := d.r.QueryContext(ctx, `SELECT id, requester, host_group, review_due_at FROM requests
		WHERE break_glass = 1 AND follow_up = ? AND review_due_at <= ? ORDER BY review_due_at, id`, ca.FollowUpNeedsReview, now.UnixNano())
	if err != nil {
		return nil, classify("report", err)
	}
	defer od.Close()
	r.OverdueFollowUps = []ca.OverdueFollowUp{}
	for od.Next() {
		var o ca.OverdueFollowUp
		var due int64
		if err := od.Scan(&o.RequestID, &o.Requester, &o.HostGroup, &due); err != nil {
			return nil, classify("report", err)
		}
		o.DueAt = time.Unix(0, due).UTC()
		r.OverdueFollowUps = append(r.OverdueFollowUps, o)
	}
	if err := od.Err(); err != nil {
		return nil, classify("report", err)
	}
	return r, nil
}

// BreakGlassCounts returns, by host group, the break-glass grants ever
// taken and the follow-ups overdue at now. Groups without a break-glass
// grant are absent.
func (d *DB) BreakGlassCounts(ctx context.Context, now time.Time) (map[string]ca.BreakGlassCount, error) {
	rows, err := d.r.QueryContext(ctx, `SELECT host_group, count(*), coalesce(sum(follow_up = ? AND review_due_at <= ?), 0)
		FROM requests WHERE break_glass = 1 GROUP BY host_group`, ca.FollowUpNeedsReview, now.UnixNano())
	if err != nil {
		return nil, classify("break-glass counts", err)
	}
	defer rows.Close()
	out := map[string]ca.BreakGlassCount{}
	for rows.Next() {
		var g string
		var c ca.BreakGlassCount
		if err := rows.Scan(&g, &c.Grants, &c.Overdue); err != nil {
			return nil, classify("break-glass counts", err)
		}
		out[g] = c
	}
	return out, classify("break-glass counts", rows.Err())
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
