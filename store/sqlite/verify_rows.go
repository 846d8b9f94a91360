package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/hex"
	"slices"
	"strconv"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// bindings are the newest row digests the event chain records, per key
// (store.Bindings).
type bindings = store.Bindings

func rowError(ev int64, table, key, format string, args ...any) *store.ChainError {
	return store.RowError(ev, table, key, format, args...)
}

func digestSum(c *certRow) [32]byte { return c.DigestSum() }

// checkTailRows checks the rows that the tail's events bind, as they are
// now (each of those events is the newest for its key: the tail reaches the
// head).
func (d *DB) checkTailRows(ctx context.Context, q queryer, b *bindings) error {
	reqs := make([]string, 0, len(b.Req))
	for id := range b.Req {
		reqs = append(reqs, id)
	}
	slices.SortFunc(reqs, func(x, y string) int { return cmp.Compare(b.Req[x].Ev, b.Req[y].Ev) })
	for _, id := range reqs {
		rb := b.Req[id]
		r, err := readRequestTx(ctx, q, id)
		if err == sql.ErrNoRows { //nolint:errorlint // database/sql returns it bare
			return rowError(rb.Ev, "requests", id, "recorded by event row %d, is missing: it was deleted outside the server", rb.Ev)
		}
		if err != nil {
			return classify("verifying the ledger's tail", err)
		}
		if err := rb.Check(r); err != nil {
			return err
		}
	}
	serials := make([]uint64, 0, len(b.Cert))
	for s := range b.Cert {
		serials = append(serials, s)
	}
	slices.SortFunc(serials, func(x, y uint64) int { return cmp.Compare(b.Cert[x].Ev, b.Cert[y].Ev) })
	for _, s := range serials {
		cb := b.Cert[s]
		if cb.Mismatch {
			// The server found it so and recorded that (fail safe: it
			// revoked the row); audit verify names it. Refusing to
			// start would not undo it.
			continue
		}
		c, _, err := scanCertRow(q.QueryRowContext(ctx, `SELECT `+certRowColumns+` FROM certificates WHERE serial = ?`, int64(s))) //nolint:gosec // bit-for-bit
		if err == sql.ErrNoRows {                                                                                                  //nolint:errorlint // database/sql returns it bare
			return rowError(cb.Ev, "certificates", "serial="+strconv.FormatUint(s, 10), "recorded by event row %d, is missing: it was deleted outside the server", cb.Ev)
		}
		if err != nil {
			return classify("verifying the ledger's tail", err)
		}
		if err := cb.Check(c); err != nil {
			return err
		}
	}
	if b.Baseline != nil {
		return d.checkBaseline(ctx, q, *b.Baseline)
	}
	return nil
}

func (d *DB) checkBaseline(ctx context.Context, q queryer, b store.ReqBinding) error {
	sum, err := baselineDigest(ctx, q)
	if err != nil {
		return classify("verifying the certificate baseline", err)
	}
	if sum != b.Req {
		return rowError(b.Ev, "certificate_baseline", "*", "differs from the digest event row %d recorded when the ledger was upgraded: a row was edited, inserted or deleted outside the server", b.Ev)
	}
	return nil
}

// hasRowBindings reports whether the ledger's schema has row bindings
// (migration 0005); a copy of an older ledger has none to check.
func (d *DB) hasRowBindings(ctx context.Context, q queryer) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'certificate_baseline'`).Scan(&n)
	return n > 0, err
}

// verifyRows checks every request, review and certificate row against the
// newest event binding its key: a row no event binds was inserted, a bound
// key without a row was deleted, a row whose digest differs was edited.
func (d *DB) verifyRows(ctx context.Context, q queryer, b *bindings, res *ca.VerifyResult) error {
	ok, err := d.hasRowBindings(ctx, q)
	if err != nil {
		return classify("verify", err)
	}
	if !ok {
		return nil
	}
	res.RowsChecked = true
	if err := d.verifyRequestRows(ctx, q, b, res); err != nil {
		return err
	}
	return d.verifyCertRows(ctx, q, b, res)
}

func scanReview(s interface{ Scan(...any) error }) (ca.Review, error) {
	var rv ca.Review
	var at int64
	if err := s.Scan(&rv.ID, &rv.RequestID, &rv.Reviewer, &rv.Event, &rv.Body, &at, &rv.Dismissed); err != nil {
		return rv, err
	}
	rv.CreatedAt = fromNanos(sql.NullInt64{Int64: at, Valid: true})
	return rv, nil
}

func (d *DB) verifyRequestRows(ctx context.Context, q queryer, b *bindings, res *ca.VerifyResult) error {
	reqRows, err := q.QueryContext(ctx, `SELECT `+requestColumns+` FROM requests ORDER BY id`)
	if err != nil {
		return classify("verify", err)
	}
	defer reqRows.Close()
	revRows, err := q.QueryContext(ctx, `SELECT `+reviewColumns+` FROM reviews ORDER BY request_id, id`)
	if err != nil {
		return classify("verify", err)
	}
	defer revRows.Close()
	var pending *ca.Review // the next review not yet matched to a request
	nextReview := func() error {
		pending = nil
		if revRows.Next() {
			rv, err := scanReview(revRows)
			if err != nil {
				return classify("verify", err)
			}
			pending = &rv
			res.Reviews++
			return nil
		}
		return classify("verify", revRows.Err())
	}
	orphan := func(rv *ca.Review) error {
		return rowError(0, "reviews", "id="+strconv.FormatInt(rv.ID, 10), "belongs to request %s, which is not in the ledger: it was inserted outside the server", rv.RequestID)
	}
	if err := nextReview(); err != nil {
		return err
	}
	for reqRows.Next() {
		r, err := scanRequest(reqRows)
		if err != nil {
			return classify("verify", err)
		}
		res.Requests++
		r.Reviews = []ca.Review{}
		for pending != nil && pending.RequestID <= r.ID {
			if pending.RequestID < r.ID {
				return orphan(pending)
			}
			r.Reviews = append(r.Reviews, *pending)
			if err := nextReview(); err != nil {
				return err
			}
		}
		rb, ok := b.Req[r.ID]
		if !ok {
			return rowError(0, "requests", r.ID, "is not recorded in the event log: it was inserted outside the server")
		}
		if err := rb.Check(r); err != nil {
			return err
		}
		delete(b.Req, r.ID)
	}
	if err := reqRows.Err(); err != nil {
		return classify("verify", err)
	}
	if pending != nil {
		return orphan(pending)
	}
	if len(b.Req) > 0 {
		id := minKey(b.Req, func(v store.ReqBinding) int64 { return v.Ev })
		return rowError(b.Req[id].Ev, "requests", id, "recorded by event row %d, is missing: it was deleted outside the server", b.Req[id].Ev)
	}
	return nil
}

func (d *DB) verifyCertRows(ctx context.Context, q queryer, b *bindings, res *ca.VerifyResult) error {
	baseline := map[uint64][32]byte{}
	if b.Baseline != nil {
		if err := d.checkBaseline(ctx, q, *b.Baseline); err != nil {
			return err
		}
		rows, err := q.QueryContext(ctx, `SELECT serial, sha256 FROM certificate_baseline`)
		if err != nil {
			return classify("verify", err)
		}
		for rows.Next() {
			var s int64
			var h string
			if err := rows.Scan(&s, &h); err != nil {
				rows.Close()
				return classify("verify", err)
			}
			var sum [32]byte
			_, _ = hex.Decode(sum[:], []byte(h))
			baseline[uint64(s)] = sum //nolint:gosec // bit-for-bit
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return classify("verify", err)
		}
	} else {
		var n int
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM certificate_baseline`).Scan(&n); err != nil {
			return classify("verify", err)
		}
		if n > 0 {
			return rowError(0, "certificate_baseline", "*", "holds %d rows but no event records it: they were inserted outside the server", n)
		}
	}
	rows, err := q.QueryContext(ctx, `SELECT `+certRowColumns+` FROM certificates ORDER BY rowid`)
	if err != nil {
		return classify("verify", err)
	}
	defer rows.Close()
	for rows.Next() {
		c, serial, err := scanCertRow(rows)
		if err != nil {
			return classify("verify", err)
		}
		res.Certificates++
		if cb, ok := b.Cert[serial]; ok {
			if err := cb.Check(c); err != nil {
				return err
			}
			delete(b.Cert, serial)
			delete(baseline, serial)
			continue
		}
		sum, ok := baseline[serial]
		if !ok {
			return rowError(0, "certificates", "serial="+c.Serial, "is not recorded in the event log: it was inserted outside the server")
		}
		if digestSum(c) != sum {
			return rowError(b.Baseline.Ev, "certificates", "serial="+c.Serial, "differs from what the ledger's upgrade (event row %d) recorded of it: it was edited outside the server", b.Baseline.Ev)
		}
		delete(baseline, serial)
	}
	if err := rows.Err(); err != nil {
		return classify("verify", err)
	}
	if len(b.Cert) > 0 {
		s := minKey(b.Cert, func(v store.CertBinding) int64 { return v.Ev })
		return rowError(b.Cert[s].Ev, "certificates", "serial="+strconv.FormatUint(s, 10), "recorded by event row %d, is missing: it was deleted outside the server", b.Cert[s].Ev)
	}
	for s := range baseline {
		return rowError(b.Baseline.Ev, "certificates", "serial="+strconv.FormatUint(s, 10), "recorded by the ledger's upgrade (event row %d), is missing: it was deleted outside the server", b.Baseline.Ev)
	}
	return nil
}

// minKey returns the key of m whose value has the lowest ev.
func minKey[K comparable, V any](m map[K]V, ev func(V) int64) K {
	var best K
	first := true
	for k, v := range m {
		if first || ev(v) < ev(m[best]) {
			best, first = k, false
		}
	}
	return best
}
