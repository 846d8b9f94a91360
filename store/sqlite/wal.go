package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jit-ssh/jit-ssh/store"
)

// walCheckpointInterval is the least time between two checkpoints of the
// write-ahead log: the pages a burst of certificates touches over and over
// (the last leaf of each index) are then copied to the ledger file once per
// interval rather than once per commit.
const walCheckpointInterval = 100 * time.Millisecond

// walCheckpointer copies the write-ahead log into the ledger file on its own
// connection, off the writer's path. SQLite's automatic checkpoint would run
// inside whichever commit crossed 1000 WAL pages, holding every certificate
// of that group commit (and all waiting behind it) for the copy and two more
// fsyncs. A checkpoint is PASSIVE: it never blocks the writer or readers and
// copies what it can. Durability does not depend on it: a commit is durable
// once its WAL frames are synced.
type walCheckpointer struct {
	db *sql.DB
	// writer is held across every write transaction (DB.mu). SQLite
	// starts the WAL over only when a checkpoint has caught up with its
	// end before the next write begins, which under steady writes a
	// concurrent checkpoint never does: once a pass leaves walRestartBytes
	// or more, the checkpointer copies the few frames left while
	// holding the writer back, so the WAL restarts and stays bounded.
	writer sync.Locker
	kick   chan struct{}
	burst  chan struct{} // walBurstCommits commits since the last checkpoint
	since  atomic.Int64  // commits since the last checkpoint
	stop   chan struct{}
	done   sync.WaitGroup
	once   sync.Once
	err    error
	page   int64 // the ledger's page size, read once (run's goroutine only)

	failures atomic.Uint64 // checkpoints that failed (GET /metrics)
}

// walBurstCommits commits end the wait between checkpoints early: a fast
// run of small commits must not outgrow walRestartBytes in one interval.
const walBurstCommits = 32

// walRestartBytes is the WAL size past which the checkpointer makes the
// log start over (see walCheckpointer.writer): 1000 frames of 4 KiB pages,
// SQLite's own automatic checkpoint threshold.
const walRestartBytes = 4000 * 1024

func newWALCheckpointer(db *sql.DB, writer sync.Locker) *walCheckpointer {
	c := &walCheckpointer{db: db, writer: writer, kick: make(chan struct{}, 1), burst: make(chan struct{}, 1), stop: make(chan struct{})}
	c.done.Add(1)
	go c.run()
	return c
}

// committed tells the checkpointer a write transaction committed.
func (c *walCheckpointer) committed() {
	if c == nil {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
	if c.since.Add(1) == walBurstCommits {
		select {
		case c.burst <- struct{}{}:
		default:
		}
	}
}

func (c *walCheckpointer) run() {
	defer c.done.Done()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		}
		c.since.Store(0)
		select {
		case <-c.burst: // a burst signalled during the last wait
		default:
		}
		// A failed checkpoint is retried after the next commit; the WAL
		// keeps every committed page meanwhile.
		if frames, err := c.checkpoint(); err == nil && frames*c.pageSize() >= walRestartBytes {
			c.writer.Lock()
			_, _ = c.checkpoint()
			c.writer.Unlock()
		}
		select {
		case <-c.stop:
			return
		case <-time.After(walCheckpointInterval):
		case <-c.burst:
		}
	}
}

// pageSize returns the ledger's page size (the size of a WAL frame's page).
func (c *walCheckpointer) pageSize() int64 {
	if c.page == 0 {
		if err := c.db.QueryRowContext(context.Background(), `PRAGMA page_size`).Scan(&c.page); err != nil || c.page <= 0 {
			return 4096
		}
	}
	return c.page
}

// checkpoint copies what it can of the WAL into the ledger file without
// waiting for anyone, and returns the WAL's size in frames.
func (c *walCheckpointer) checkpoint() (frames int64, err error) {
	var busy, done int64
	err = c.db.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &done)
	if err != nil {
		c.failures.Add(1)
	}
	return frames, err
}

// WALCheckpointFailures returns how many background checkpoints of the
// write-ahead log have failed since Open. Commits stay durable without
// them, but a ledger whose checkpoints keep failing (a read-only or full
// ledger file) grows its -wal file without bound.
func (d *DB) WALCheckpointFailures() uint64 {
	if d.wal == nil {
		return 0
	}
	return d.wal.failures.Load()
}

// Stats returns the ledger's counters (store.Health): WALCheckpointFailures.
// It reads memory only and never fails.
func (d *DB) Stats(context.Context) (store.Stats, error) {
	return store.Stats{WALCheckpointFailures: d.WALCheckpointFailures()}, nil
}

// close stops the checkpointer, copies what the WAL still holds into the
// ledger file and truncates the WAL, then closes its connection.
func (c *walCheckpointer) close() error {
	if c == nil {
		return nil
	}
	c.once.Do(func() {
		close(c.stop)
		c.done.Wait()
		_, _ = c.db.ExecContext(context.Background(), `PRAGMA wal_checkpoint(TRUNCATE)`)
		c.err = c.db.Close()
	})
	return c.err
}
