package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jit-ssh/jit-ssh/store"
)

// groupCommit batches concurrent write transactions into one SQLite
// transaction, so many certificates share one fsync of the WAL
// (store.GroupCommit: the first caller leads, commits whatever is queued and
// hands the lead on). Each caller still returns only after the transaction
// holding its own write committed (or with the error that kept it out).
type groupCommit struct {
	store.GroupCommit[*commitOp]

	// beforeCommit, when set (tests only), runs before each batch's commit
	// with the batch size; an error fails the batch.
	beforeCommit func(n int) error
}

// commitOp is one caller's write.
type commitOp struct {
	what string
	fn   func(*sql.Tx, *chain) error
	err  error
}

// writeGrouped runs fn like write, but in a transaction it may share with
// other concurrent callers of writeGrouped. fn runs inside a savepoint: an
// error from fn undoes only that caller's changes and fails only that
// caller; a failed commit fails every caller of the batch. fn must not
// depend on other writes of the batch and should not be cancellable (the
// caller's context is not the transaction's).
func (d *DB) writeGrouped(what string, fn func(*sql.Tx, *chain) error) error {
	op := &commitOp{what: what, fn: fn}
	d.gc.Do(op, d.commitBatch)
	return op.err
}

// commitBatch runs the batch's writes in one transaction, each in its own
// savepoint, and commits once. It sets every op's err.
func (d *DB) commitBatch(batch []*commitOp) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ctx := context.Background()
	failAll := func(err error) {
		for _, o := range batch {
			if o.err == nil {
				o.err = classify(o.what, err)
			}
		}
	}
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		failAll(err)
		return
	}
	c := d.newChain()
	ok := 0
	for _, o := range batch {
		head, next := c.head, c.next
		if _, err := d.stmts.exec(ctx, tx, sqlSavepoint); err != nil {
			_ = tx.Rollback()
			failAll(err)
			return
		}
		if err := o.fn(tx, c); err != nil {
			o.err = classify(o.what, err)
			c.head, c.next = head, next
			if _, rerr := d.stmts.exec(ctx, tx, sqlRollbackTo); rerr != nil {
				// The transaction is in an unknown state: give up on all.
				_ = tx.Rollback()
				failAll(fmt.Errorf("undoing a failed write: %w", rerr))
				return
			}
		} else {
			ok++
		}
		if _, err := d.stmts.exec(ctx, tx, sqlRelease); err != nil {
			_ = tx.Rollback()
			failAll(err)
			return
		}
	}
	if ok == 0 {
		_ = tx.Rollback()
		return
	}
	if d.gc.beforeCommit != nil {
		if err := d.gc.beforeCommit(len(batch)); err != nil {
			_ = tx.Rollback()
			failAll(err)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		// database/sql rolls back a transaction whose commit failed.
		failAll(err)
		return
	}
	d.head, d.nextEvent = c.head, c.next
	d.wal.committed()
}
