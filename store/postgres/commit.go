package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// Group commit. Concurrent RecordCertificate calls share one transaction
// and one commit, as with SQLite: the first caller to find no batch
// running leads, records whatever is queued, and hands the lead to the
// oldest caller still waiting; there is no background goroutine. A batch
// costs a constant number of round trips whatever its size: the
// certificate inserts (each re-checking its grant, see
// sqlInsertCertIfOpen) go out as one pipeline, then the events of those
// that were recorded as another, then the commit. Each caller still
// returns only once the transaction holding its own row committed.
type groupCommit struct {
	store.GroupCommit[*certOp]

	// beforeCommit, when set (tests only), runs before each batch's
	// commit with the batch size.
	beforeCommit func(n int)
}

// certOp is one caller's certificate.
type certOp struct {
	c   *ca.Certificate
	row store.CertRow
	ev  ca.Event
	err error
}

// sqlInsertCertIfOpen records a certificate only if its grant is open at
// its issue time ($14, $8 the request), and not if its serial exists: no
// error either way, so that one refused certificate does not abort the
// batch's transaction; RowsAffected tells.
const sqlInsertCertIfOpen = `INSERT INTO certificates (serial, key_id, host_group, principals, valid_after, valid_before, requester, request_id, approvers, fingerprint, ca_fingerprint, certificate, issued_at)
	SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13
	WHERE EXISTS (SELECT 1 FROM requests WHERE id = $8 AND state = 'approved' AND ended_at IS NULL AND approved_at + duration_ns > $13)
	ON CONFLICT (serial) DO NOTHING`

func (o *certOp) insertArgs() []any {
	r := &o.row
	return []any{int64(o.c.Serial), r.KeyID, r.HostGroup, r.Principals, r.ValidAfter, r.ValidBefore, //nolint:gosec // bit-for-bit
		r.Requester, r.RequestID, r.Approvers, r.Fingerprint, r.CAFingerprint, r.Certificate, r.IssuedAt}
}

// recordGrouped records op in a transaction it may share with other
// concurrent callers.
func (d *DB) recordGrouped(op *certOp) error {
	d.gc.Do(op, d.commitBatch)
	return op.err
}

// commitBatch records the batch in one transaction and sets every op's
// err. When the shared transaction fails for a reason other than the
// database being unavailable, each certificate is recorded again on its
// own, so that one bad row fails only its own caller.
func (d *DB) commitBatch(batch []*certOp) {
	ctx := context.Background()
	var err error
	for range maxRetries {
		err = d.commitBatchOnce(ctx, batch)
		if !retryable(err) {
			break
		}
	}
	if err == nil {
		return
	}
	err = classify("recording certificate", err)
	if len(batch) == 1 || errors.Is(err, store.ErrUnavailable) {
		for _, o := range batch {
			o.err = err
		}
		return
	}
	for _, o := range batch {
		// commitBatchOnce sets o.err when it refuses o (a duplicate serial,
		// an ended grant) and commits nothing for it.
		if err := d.commitBatchOnce(ctx, []*certOp{o}); err != nil {
			o.err = classify("recording certificate", err)
		}
	}
}

func (d *DB) commitBatchOnce(ctx context.Context, batch []*certOp) error {
	for _, o := range batch {
		o.err = nil
	}
	return pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		ch, err := d.lockChain(ctx, tx)
		if err != nil {
			return err
		}
		ins := &pgx.Batch{}
		for _, o := range batch {
			ins.Queue(sqlInsertCertIfOpen, o.insertArgs()...)
		}
		res := tx.SendBatch(ctx, ins)
		recorded := make([]bool, len(batch))
		for i := range batch {
			tag, err := res.Exec()
			if err != nil {
				_ = res.Close()
				return err
			}
			recorded[i] = tag.RowsAffected() == 1
		}
		if err := res.Close(); err != nil {
			return err
		}
		evs := &pgx.Batch{}
		for i, o := range batch {
			if !recorded[i] {
				if o.err, err = refusal(ctx, tx, o.c); err != nil {
					return err
				}
				continue
			}
			data, err := store.EventData(o.ev)
			if err != nil {
				return err
			}
			evs.Queue(sqlInsertEvent, ch.next(o.ev, data)...)
		}
		if evs.Len() > 0 {
			res := tx.SendBatch(ctx, evs)
			for range evs.Len() {
				if _, err := res.Exec(); err != nil {
					_ = res.Close()
					return err
				}
			}
			if err := res.Close(); err != nil {
				return err
			}
		}
		if h := d.gc.beforeCommit; h != nil {
			h(len(batch))
		}
		return nil
	})
}

// refusal says why sqlInsertCertIfOpen did not record c: its serial is
// taken, or its grant is no longer open.
func refusal(ctx context.Context, tx pgx.Tx, c *ca.Certificate) (error, error) {
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM certificates WHERE serial = $1`, int64(c.Serial)).Scan(&n); err != nil { //nolint:gosec // bit-for-bit
		return nil, err
	}
	if n > 0 {
		return fmt.Errorf("%w: recording certificate: serial %s is recorded already", store.ErrDuplicate, strconv.FormatUint(c.Serial, 10)), nil
	}
	return fmt.Errorf("%w: the grant of request %s ended or was revoked while the certificate was being signed; none was issued", ca.ErrGrantEnded, c.RequestID), nil
}
