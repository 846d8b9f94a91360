package sqlite

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// bindings are the newest row digests the event chain records, per key.
type bindings struct {
	req      map[string]reqBinding
	cert     map[uint64]certBinding
	baseline *reqBinding // ev and req (the digest) of migration 0005's event
}

type reqBinding struct {
	ev       int64
	req, rev string
}

type certBinding struct {
	ev  int64
	sum [32]byte
	// mismatch: event ev recorded the row as not matching the event log
	// when the server revoked it (DataRowMismatch); no content of the row
	// is bound since.
	mismatch bool
}

func newBindings() *bindings {
	return &bindings{req: map[string]reqBinding{}, cert: map[uint64]certBinding{}}
}

// bindingMarker is in the data of every event that binds a row; events
// without it are not decoded.
var bindingMarker = []byte(`_sha256"`)

// rowMismatchMarker is in the data of an event that changed a row it found
// not matching the event log (DataRowMismatch).
var rowMismatchMarker = []byte(`"row_mismatch":true`)

// add records the bindings event ce holds (a later event replaces an
// earlier one's for the same key).
func (b *bindings) add(ce *canonicalEvent, serial int64) error {
	if !bytes.Contains(ce.Data, bindingMarker) && !bytes.Contains(ce.Data, rowMismatchMarker) {
		return nil
	}
	var d struct {
		Req      *string `json:"request_sha256"`
		Rev      *string `json:"reviews_sha256"`
		Cert     *string `json:"certificate_sha256"`
		Baseline *string `json:"certificate_baseline_sha256"`
		Mismatch bool    `json:"row_mismatch"`
	}
	if err := json.Unmarshal(ce.Data, &d); err != nil {
		return &store.ChainError{Row: ce.ID, Reason: "row bindings in the data are unreadable: " + err.Error()}
	}
	if d.Mismatch && d.Cert == nil && serial != 0 {
		b.cert[uint64(serial)] = certBinding{ev: ce.ID, mismatch: true} //nolint:gosec // bit-for-bit
	}
	if d.Req != nil {
		rb := reqBinding{ev: ce.ID, req: *d.Req}
		if d.Rev != nil {
			rb.rev = *d.Rev
		}
		b.req[ce.RequestID] = rb
	}
	if d.Cert != nil {
		var cb certBinding
		if n, err := hex.Decode(cb.sum[:], []byte(*d.Cert)); err != nil || n != len(cb.sum) {
			return &store.ChainError{Row: ce.ID, Reason: "the certificate digest in the data is not a SHA-256"}
		}
		cb.ev = ce.ID
		b.cert[uint64(serial)] = cb //nolint:gosec // bit-for-bit
	}
	if d.Baseline != nil {
		b.baseline = &reqBinding{ev: ce.ID, req: *d.Baseline}
	}
	return nil
}

func rowError(ev int64, table, key, format string, args ...any) *store.ChainError {
	return &store.ChainError{Row: ev, Table: table, Key: key, Reason: fmt.Sprintf(format, args...)}
}

func (b reqBinding) check(r *ca.Request) error {
	if requestDigest(r) != b.req {
		return rowError(b.ev, "requests", r.ID, "differs from what event row %d recorded of it: it was edited outside the server", b.ev)
	}
	if reviewsDigest(r) != b.rev {
		return rowError(b.ev, "reviews", "request_id="+r.ID, "the reviews of request %s differ from what event row %d recorded: one was edited, inserted or deleted outside the server", r.ID, b.ev)
	}
	return nil
}

func (b certBinding) check(c *certRow) error {
	if b.mismatch {
		return rowError(b.ev, "certificates", "serial="+c.Serial, "did not match the event log when the server revoked it (event row %d): it was edited or inserted outside the server", b.ev)
	}
	if sum := digestSum(c); sum != b.sum {
		return rowError(b.ev, "certificates", "serial="+c.Serial, "differs from what event row %d recorded of it: it was edited outside the server", b.ev)
	}
	return nil
}

func digestSum(c *certRow) [32]byte {
	var s [32]byte
	_, _ = hex.Decode(s[:], []byte(c.digest()))
	return s
}

// checkTailRows checks the rows that the tail's events bind, as they are
// now (each of those events is the newest for its key: the tail reaches the
// head).
func (d *DB) checkTailRows(ctx context.Context, q queryer, b *bindings) error {
	reqs := make([]string, 0, len(b.req))
	for id := range b.req {
		reqs = append(reqs, id)
	}
	slices.SortFunc(reqs, func(x, y string) int { return cmp.Compare(b.req[x].ev, b.req[y].ev) })
	for _, id := range reqs {
		rb := b.req[id]
		r, err := readRequestTx(ctx, q, id)
		if err == sql.ErrNoRows { //nolint:errorlint // database/sql returns it bare
			return rowError(rb.ev, "requests", id, "recorded by event row %d, is missing: it was deleted outside the server", rb.ev)
		}
		if err != nil {
			return classify("verifying the ledger's tail", err)
		}
		if err := rb.check(r); err != nil {
			return err
		}
	}
	serials := make([]uint64, 0, len(b.cert))
	for s := range b.cert {
		serials = append(serials, s)
	}
	slices.SortFunc(serials, func(x, y uint64) int { return cmp.Compare(b.cert[x].ev, b.cert[y].ev) })
	for _, s := range serials {
		cb := b.cert[s]
		if cb.mismatch {
			// The server found it so and recorded that (fail safe: it
			// revoked the row); audit verify names it. Refusing to
			// start would not undo it.
			continue
		}
		c, _, err := scanCertRow(q.QueryRowContext(ctx, `SELECT `+certRowColumns+` FROM certificates WHERE serial = ?`, int64(s))) //nolint:gosec // bit-for-bit
		if err == sql.ErrNoRows {                                                                                                  //nolint:errorlint // database/sql returns it bare
			return rowError(cb.ev, "certificates", "serial="+strconv.FormatUint(s, 10), "recorded by event row %d, is missing: it was deleted outside the server", cb.ev)
		}
		if err != nil {
			return classify("verifying the ledger's tail", err)
		}
		if err := cb.check(c); err != nil {
			return err
		}
	}
	if b.baseline != nil {
		return d.checkBaseline(ctx, q, *b.baseline)
	}
	return nil
}

func (d *DB) checkBaseline(ctx context.Context, q queryer, b reqBinding) error {
	sum, err := baselineDigest(ctx, q)
	if err != nil {
		return classify("verifying the certificate baseline", err)
	}
	if sum != b.req {
		return rowError(b.ev, "certificate_baseline", "*", "differs from the digest event row %d recorded when the ledger was upgraded: a row was edited, inserted or deleted outside the server", b.ev)
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
		rb, ok := b.req[r.ID]
		if !ok {
			return rowError(0, "requests", r.ID, "is not recorded in the event log: it was inserted outside the server")
		}
		if err := rb.check(r); err != nil {
			return err
		}
		delete(b.req, r.ID)
	}
	if err := reqRows.Err(); err != nil {
		return classify("verify", err)
	}
	if pending != nil {
		return orphan(pending)
	}
	if len(b.req) > 0 {
		id := minKey(b.req, func(v reqBinding) int64 { return v.ev })
		return rowError(b.req[id].ev, "requests", id, "recorded by event row %d, is missing: it was deleted outside the server", b.req[id].ev)
	}
	return nil
}

func (d *DB) verifyCertRows(ctx context.Context, q queryer, b *bindings, res *ca.VerifyResult) error {
	baseline := map[uint64][32]byte{}
	if b.baseline != nil {
		if err := d.checkBaseline(ctx, q, *b.baseline); err != nil {
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
		if cb, ok := b.cert[serial]; ok {
			if err := cb.check(c); err != nil {
				return err
			}
			delete(b.cert, serial)
			delete(baseline, serial)
			continue
		}
		sum, ok := baseline[serial]
		if !ok {
			return rowError(0, "certificates", "serial="+c.Serial, "is not recorded in the event log: it was inserted outside the server")
		}
		if digestSum(c) != sum {
			return rowError(b.baseline.ev, "certificates", "serial="+c.Serial, "differs from what the ledger's upgrade (event row %d) recorded of it: it was edited outside the server", b.baseline.ev)
		}
		delete(baseline, serial)
	}
	if err := rows.Err(); err != nil {
		return classify("verify", err)
	}
	if len(b.cert) > 0 {
		s := minKey(b.cert, func(v certBinding) int64 { return v.ev })
		return rowError(b.cert[s].ev, "certificates", "serial="+strconv.FormatUint(s, 10), "recorded by event row %d, is missing: it was deleted outside the server", b.cert[s].ev)
	}
	for s := range baseline {
		return rowError(b.baseline.ev, "certificates", "serial="+strconv.FormatUint(s, 10), "recorded by the ledger's upgrade (event row %d), is missing: it was deleted outside the server", b.baseline.ev)
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
