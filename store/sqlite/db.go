package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is the ledger.
type DB struct {
	path string
	w    *sql.DB // one connection: all writes, serialised
	r    *sql.DB // read-only pool
	now  func() time.Time

	mu        sync.Mutex // guards head and nextEvent; held across each write transaction
	head      string     // hash of the last event row
	nextEvent int64      // id of the next event row

	gc    groupCommit // batches certificate writes: many per fsync
	stmts *writeStmts // the certificate write path, prepared once
	reads *readStmts  // the grant lookup of every issuance, prepared once
	wal   *walCheckpointer

	requests requestCache // grants as last read; dropped on every request write
	lock     *os.File     // holds the exclusive flock on path+".lock"

	ckSigner ssh.Signer      // signs checkpoints; nil: Checkpoint refuses
	ckKeys   []ssh.PublicKey // keys Verify accepts checkpoints from; none: any
	sidecar  string          // checkpoint sidecar file; "-": none

	macKey []byte // marks the event rows this server writes (eventMAC); nil: none
	// tailVerified is set once VerifyTail passed: every row after it is
	// this process's own (it is the ledger's only writer). verifiedThrough
	// is the last row VerifyTail checked: rows up to it were checked then
	// (and may carry an earlier checkpoint key's MAC), rows after it must
	// carry this process's MAC.
	tailVerified    atomic.Bool
	verifiedThrough atomic.Int64
	// revChecked is the newest chain head checkRevocations passed at.
	revChecked atomic.Pointer[revocationsChecked]
}

// DB implements the whole ledger contract, and so every consumer's part of it.
var (
	_ store.Ledger = (*DB)(nil)
	_ ca.Ledger    = (*DB)(nil)
)

// Option configures Open.
type Option func(*DB)

// WithClock sets the clock used for event times. The default (nil) is time.Now.
func WithClock(now func() time.Time) Option { return func(d *DB) { d.now = now } }

// Open opens (creating if needed) the ledger at path and applies pending
// migrations. The file is created 0600 and its directory 0700.
func Open(ctx context.Context, path string, opts ...Option) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	lock, err := lockLedger(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			lock.Close()
			return nil, fmt.Errorf("store: creating ledger: %w", err)
		}
		f.Close()
		if err := initLedgerFile(ctx, path); err != nil {
			lock.Close()
			return nil, err
		}
	}
	d := newDB(path, opts)
	d.lock = lock
	base := ledgerURI(path)
	pragmas := "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)"
	// The writer never checkpoints the WAL itself (wal_autocheckpoint 0):
	// the walCheckpointer does, on its own connection.
	d.w, err = sql.Open("sqlite", base+pragmas+"&_pragma=synchronous(FULL)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(0)&_pragma=journal_size_limit(67108864)&_txlock=immediate")
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	d.w.SetMaxOpenConns(1)
	d.w.SetMaxIdleConns(1)
	d.w.SetConnMaxLifetime(0)
	d.w.SetConnMaxIdleTime(0)
	if err := d.migrate(ctx); err != nil {
		d.w.Close()
		lock.Close()
		return nil, err
	}
	if d.stmts, err = prepareWrites(ctx, d.w); err != nil {
		d.w.Close()
		lock.Close()
		return nil, classify("preparing the write path", err)
	}
	d.r, err = sql.Open("sqlite", base+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		_ = d.stmts.close()
		d.w.Close()
		lock.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	d.r.SetMaxOpenConns(8)
	if d.reads, err = prepareReads(ctx, d.r); err != nil {
		d.Close()
		return nil, classify("preparing reads", err)
	}
	// This process is the ledger's only writer: the chain's head and next
	// row id are read once and then kept in memory.
	var last int64
	err = d.w.QueryRowContext(ctx, `SELECT id, hash FROM events ORDER BY id DESC LIMIT 1`).Scan(&last, &d.head)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		d.Close()
		return nil, classify("reading chain head", err)
	}
	d.nextEvent = last + 1
	// A WAL that grew past 64 MiB (a long export kept the checkpoints
	// from catching up) is cut back to that when it restarts.
	ck, err := sql.Open("sqlite", base+pragmas+"&_pragma=synchronous(FULL)&_pragma=journal_size_limit(67108864)")
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	ck.SetMaxOpenConns(1)
	d.wal = newWALCheckpointer(ck, &d.mu)
	return d, nil
}

// ledgerPageSize is the page size of new ledgers. A listing of a million
// certificates reads the ledger file page by page, one read call each;
// 8 KiB pages make half the calls of SQLite's default 4 KiB. Measured in
// full bench runs: 4 KiB exported 1,000,000 certificates in 5.55 s, 8 KiB
// in 4.87 s; 16 KiB in 4.74 s but a random serial-index page per
// certificate then costs 16 KiB of reads and WAL writes, and issuance on a
// million-certificate ledger fell to 0.86 of the empty ledger's rate
// (0.99 at 8 KiB). Ledgers created before keep their page size.
const ledgerPageSize = 8192

// ledgerURI is the SQLite URI of the ledger file at path, before options.
func ledgerURI(path string) string { return "file:" + (&url.URL{Path: path}).EscapedPath() }

// initLedgerFile sets a new, empty ledger file's page size and WAL mode.
// The page size can only be chosen before the file has content and before
// it is in WAL mode, so on a plain connection of its own.
func initLedgerFile(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", ledgerURI(path))
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer db.Close()
	for _, q := range []string{`PRAGMA page_size = ` + strconv.Itoa(ledgerPageSize), `PRAGMA journal_mode = WAL`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return classify("creating the ledger", err)
		}
	}
	return nil
}

// Close closes the database.
func (d *DB) Close() error {
	// Readers first: the checkpointer's last, truncating checkpoint waits
	// for open read transactions.
	errs := []error{d.reads.close()}
	if d.r != nil {
		errs = append(errs, d.r.Close())
	}
	errs = append(errs, d.stmts.close(), d.wal.close())
	if d.w != d.r {
		errs = append(errs, d.w.Close())
	}
	if d.lock != nil {
		errs = append(errs, d.lock.Close()) // releases the lock
		d.lock = nil
	}
	return errors.Join(errs...)
}

// lockLedger takes the ledger's writer lock: an exclusive flock on
// path+".lock", held while the DB is open. The store keeps the chain's
// head, the next event id and a request cache in memory, which is right
// only while one process writes the ledger; a second server on the same
// data directory is refused at start instead of corrupting the chain.
func lockLedger(path string) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: opening the ledger's lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil { //nolint:gosec // a file descriptor fits an int
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is in use by another jit-ssh process (it holds %s.lock); stop it, or give this one its own data directory", store.ErrInUse, path, path)
		}
		return nil, fmt.Errorf("store: locking the ledger: %w", err)
	}
	return f, nil
}

// Path returns the ledger file's path.
func (d *DB) Path() string { return d.path }

// Ping checks that the ledger answers reads and accepts writes.
func (d *DB) Ping(ctx context.Context) error {
	if err := d.r.PingContext(ctx); err != nil {
		return classify("ping", err)
	}
	var n int
	if err := d.r.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		return classify("ping", err)
	}
	return nil
}

func (d *DB) migrate(ctx context.Context) error {
	if _, err := d.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return classify("migrations", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		base := filepath.Base(name)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("store: migration %s has no version prefix", base)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		err = d.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("migration %s: %w", base, err)
			}
			if v == bindingsMigration {
				if err := d.backfillBindings(ctx, tx); err != nil {
					return fmt.Errorf("migration %s: %w", base, err)
				}
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, d.now().UnixNano())
			return err
		})
		if err != nil {
			return classify("migrate", err)
		}
	}
	return nil
}

// tx runs fn in one IMMEDIATE write transaction and commits it.
func (d *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	d.wal.committed()
	return nil
}

// write runs fn in a write transaction that may append events to the chain.
// The in-memory chain head only moves when the commit succeeds.
func (d *DB) write(ctx context.Context, what string, fn func(*sql.Tx, *chain) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.newChain()
	err := d.tx(ctx, func(tx *sql.Tx) error { return fn(tx, c) })
	if err != nil {
		return classify(what, err)
	}
	d.head, d.nextEvent = c.head, c.next
	return nil
}

// classify wraps a database error with the store's sentinels.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrDuplicate) || errors.Is(err, ca.ErrGrantEnded) {
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT:
			if se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
				return fmt.Errorf("%w: %s: %w", store.ErrDuplicate, what, err)
			}
		case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_BUSY,
			sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB,
			sqlite3.SQLITE_PERM:
			return fmt.Errorf("%w: %s: %w", store.ErrUnavailable, what, err)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return fmt.Errorf("%w: %s: %w", store.ErrUnavailable, what, err)
}

func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// newDB applies opts over the defaults.
func newDB(path string, opts []Option) *DB {
	d := &DB{path: path, now: time.Now, sidecar: path + SidecarSuffix}
	for _, o := range opts {
		o(d)
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.macKey = deriveMACKey(d.ckSigner)
	return d
}

// newChain starts appending at the chain's head as this process knows it.
// The caller holds d.mu.
func (d *DB) newChain() *chain {
	return &chain{head: d.head, next: d.nextEvent, now: d.now, stmts: d.stmts, macKey: d.macKey, checkedThrough: d.verifiedThrough.Load()}
}

// OpenReadOnly opens an existing ledger file for reading only (no
// migrations, no writes): for verifying a copy of a ledger. Of opts, the
// checkpoint keys and file matter.
func OpenReadOnly(ctx context.Context, path string, opts ...Option) (*DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	base := ledgerURI(path)
	r, err := sql.Open("sqlite", base+"?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		return nil, classify("opening ledger", err)
	}
	d := newDB(path, opts)
	d.r, d.w = r, r
	return d, nil
}
