package postgres

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// checkTailRows checks the rows that the tail's events bind, as they are
// now (each of those events is the newest for its key: the tail reaches the
// head).
func checkTailRows(ctx context.Context, q queryer, b *store.Bindings) error {
	reqs := make([]string, 0, len(b.Req))
	for id := range b.Req {
		reqs = append(reqs, id)
	}
	slices.SortFunc(reqs, func(x, y string) int { return cmp.Compare(b.Req[x].Ev, b.Req[y].Ev) })
	for _, id := range reqs {
		rb := b.Req[id]
		r, err := readRequestTx(ctx, q, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.RowError(rb.Ev, "requests", id, "recorded by event row %d, is missing: it was deleted outside the server", rb.Ev)
		}
		if err != nil {
			return err
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
			// revoked the row); audit verify names it.
			continue
		}
		c, _, err := scanCertRow(q.QueryRow(ctx, `SELECT `+certRowColumns+` FROM certificates WHERE serial = $1`, int64(s))) //nolint:gosec // bit-for-bit
		if errors.Is(err, pgx.ErrNoRows) {
			return store.RowError(cb.Ev, "certificates", "serial="+strconv.FormatUint(s, 10), "recorded by event row %d, is missing: it was deleted outside the server", cb.Ev)
		}
		if err != nil {
			return err
		}
		if err := cb.Check(c); err != nil {
			return err
		}
	}
	if b.Baseline != nil {
		return checkBaseline(ctx, q, *b.Baseline)
	}
	return nil
}

// baselineDigest is the digest of the certificate_baseline table: SHA-256
// over one "serial sha256\n" line per row, in serial order (unsigned, as
// the SQLite ledger computes it).
func baselineDigest(ctx context.Context, q queryer) (string, error) {
	rows, err := q.Query(ctx, `SELECT serial, sha256 FROM certificate_baseline`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	type line struct {
		serial uint64
		sum    string
	}
	var all []line
	for rows.Next() {
		var serial int64
		var sum string
		if err := rows.Scan(&serial, &sum); err != nil {
			return "", err
		}
		all = append(all, line{uint64(serial), sum}) //nolint:gosec // bit-for-bit
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	// SQLite orders the signed column: the same order here.
	slices.SortFunc(all, func(x, y line) int { return cmp.Compare(int64(x.serial), int64(y.serial)) }) //nolint:gosec // bit-for-bit
	h := sha256.New()
	for _, l := range all {
		fmt.Fprintf(h, "%d %s\n", l.serial, l.sum)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func checkBaseline(ctx context.Context, q queryer, b store.ReqBinding) error {
	sum, err := baselineDigest(ctx, q)
	if err != nil {
		return err
	}
	if sum != b.Req {
		return store.RowError(b.Ev, "certificate_baseline", "*", "differs from the digest event row %d recorded when the ledger was upgraded: a row was edited, inserted or deleted outside the server", b.Ev)
	}
	return nil
}

// verifyRows checks every request, review and certificate row against the
// newest event binding its key: a row no event binds was inserted, a bound
// key without a row was deleted, a row whose digest differs was edited.
func verifyRows(ctx context.Context, q queryer, b *store.Bindings, res *ca.VerifyResult) error {
	res.RowsChecked = true
	if err := verifyRequestRows(ctx, q, b, res); err != nil {
		return err
	}
	return verifyCertRows(ctx, q, b, res)
}

func verifyRequestRows(ctx context.Context, q queryer, b *store.Bindings, res *ca.VerifyResult) error {
	// Byte order (COLLATE "C"), whatever the database's collation: the
	// merge below compares ids as Go does.
	reqRows, err := q.Query(ctx, `SELECT `+requestColumns+` FROM requests ORDER BY id COLLATE "C"`)
	if err != nil {
		return err
	}
	var reqs []*ca.Request
	for reqRows.Next() {
		r, err := scanRequest(reqRows)
		if err != nil {
			reqRows.Close()
			return err
		}
		r.Reviews = []ca.Review{}
		reqs = append(reqs, r)
	}
	reqRows.Close()
	if err := reqRows.Err(); err != nil {
		return err
	}
	byID := make(map[string]*ca.Request, len(reqs))
	for _, r := range reqs {
		byID[r.ID] = r
	}
	revRows, err := q.Query(ctx, `SELECT `+reviewColumns+` FROM reviews ORDER BY id`)
	if err != nil {
		return err
	}
	for revRows.Next() {
		rv, err := scanReview(revRows)
		if err != nil {
			revRows.Close()
			return err
		}
		res.Reviews++
		r, ok := byID[rv.RequestID]
		if !ok {
			revRows.Close()
			return store.RowError(0, "reviews", "id="+strconv.FormatInt(rv.ID, 10), "belongs to request %s, which is not in the ledger: it was inserted outside the server", rv.RequestID)
		}
		r.Reviews = append(r.Reviews, rv)
	}
	revRows.Close()
	if err := revRows.Err(); err != nil {
		return err
	}
	for _, r := range reqs {
		res.Requests++
		rb, ok := b.Req[r.ID]
		if !ok {
			return store.RowError(0, "requests", r.ID, "is not recorded in the event log: it was inserted outside the server")
		}
		if err := rb.Check(r); err != nil {
			return err
		}
		delete(b.Req, r.ID)
	}
	if len(b.Req) > 0 {
		id := minKey(b.Req, func(v store.ReqBinding) int64 { return v.Ev })
		return store.RowError(b.Req[id].Ev, "requests", id, "recorded by event row %d, is missing: it was deleted outside the server", b.Req[id].Ev)
	}
	return nil
}

func verifyCertRows(ctx context.Context, q queryer, b *store.Bindings, res *ca.VerifyResult) error {
	baseline := map[uint64][32]byte{}
	if b.Baseline != nil {
		if err := checkBaseline(ctx, q, *b.Baseline); err != nil {
			return err
		}
		rows, err := q.Query(ctx, `SELECT serial, sha256 FROM certificate_baseline`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var s int64
			var h string
			if err := rows.Scan(&s, &h); err != nil {
				rows.Close()
				return err
			}
			var sum [32]byte
			_, _ = hex.Decode(sum[:], []byte(h))
			baseline[uint64(s)] = sum //nolint:gosec // bit-for-bit
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	} else {
		var n int
		if err := q.QueryRow(ctx, `SELECT count(*) FROM certificate_baseline`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return store.RowError(0, "certificate_baseline", "*", "holds %d rows but no event records it: they were inserted outside the server", n)
		}
	}
	rows, err := q.Query(ctx, `SELECT `+certRowColumns+` FROM certificates ORDER BY id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		c, serial, err := scanCertRow(rows)
		if err != nil {
			return err
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
			return store.RowError(0, "certificates", "serial="+c.Serial, "is not recorded in the event log: it was inserted outside the server")
		}
		if c.DigestSum() != sum {
			return store.RowError(b.Baseline.Ev, "certificates", "serial="+c.Serial, "differs from what the ledger's upgrade (event row %d) recorded of it: it was edited outside the server", b.Baseline.Ev)
		}
		delete(baseline, serial)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(b.Cert) > 0 {
		s := minKey(b.Cert, func(v store.CertBinding) int64 { return v.Ev })
		return store.RowError(b.Cert[s].Ev, "certificates", "serial="+strconv.FormatUint(s, 10), "recorded by event row %d, is missing: it was deleted outside the server", b.Cert[s].Ev)
	}
	for s := range baseline {
		return store.RowError(b.Baseline.Ev, "certificates", "serial="+strconv.FormatUint(s, 10), "recorded by the ledger's upgrade (event row %d), is missing: it was deleted outside the server", b.Baseline.Ev)
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
