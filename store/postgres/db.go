package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Advisory lock keys, per database: chainLock orders every write
// transaction (see doc.go), migrateLock the schema migrations.
const (
	chainLock   int64 = 0x6a69_7473_7368_0001 // "jitssh" 1
	migrateLock int64 = 0x6a69_7473_7368_0002
)

// DefaultMaxConns is the size of the connection pool when the
// configuration does not set one.
const DefaultMaxConns = 16

// maxRetries bounds how often a write is retried after a serialization
// failure or deadlock (SQLSTATE 40001, 40P01).
const maxRetries = 8

// DB is the PostgreSQL ledger.
type DB struct {
	pool *pgxpool.Pool
	now  func() time.Time

	maxConns int32
	readOnly bool

	gc groupCommit // batches concurrent RecordCertificate calls

	ckSigner ssh.Signer      // signs checkpoints; nil: Checkpoint refuses
	ckKeys   []ssh.PublicKey // keys Verify accepts checkpoints from; none: any
	macKey   []byte          // store.DeriveMACKey(ckSigner); nil: rows carry no MAC

	// tailVerified is set once VerifyTail passed; verifiedThrough is the
	// last row it checked (rows up to it may carry an earlier checkpoint
	// key's MAC, rows after it must carry this server's).
	tailVerified    atomic.Bool
	verifiedThrough atomic.Int64
}

// DB implements the whole ledger contract, and so every consumer's part of it.
var (
	_ store.Ledger = (*DB)(nil)
	_ ca.Ledger    = (*DB)(nil)
)

// Option configures Open.
type Option func(*DB)

// WithClock sets the clock used for event times and checkpoints. The
// default (nil) is time.Now.
func WithClock(now func() time.Time) Option { return func(d *DB) { d.now = now } }

// WithMaxConns sets the size of the connection pool (DefaultMaxConns when
// n <= 0).
func WithMaxConns(n int) Option {
	return func(d *DB) {
		if n > 0 {
			d.maxConns = int32(min(n, 1<<20)) //nolint:gosec // bounded
		}
	}
}

// WithCheckpointSigner makes Checkpoint sign with s; Verify trusts s's
// public key, and the rows this server writes carry a MAC under a key
// derived from s.
func WithCheckpointSigner(s ssh.Signer) Option {
	return func(d *DB) {
		d.ckSigner = s
		if s != nil {
			d.ckKeys = append(d.ckKeys, s.PublicKey())
		}
	}
}

// WithCheckpointKeys sets further public keys Verify accepts checkpoints
// from. With no keys at all, Verify checks each signature against the key
// it carries and reports the keys it saw.
func WithCheckpointKeys(keys ...ssh.PublicKey) Option {
	return func(d *DB) { d.ckKeys = append(d.ckKeys, keys...) }
}

// Open connects to the ledger database dsn (a postgres:// URL or a
// key=value string, as libpq takes it) and applies pending migrations. A
// database that cannot be reached is store.ErrUnavailable.
func Open(ctx context.Context, dsn string, opts ...Option) (*DB, error) {
	d, err := connect(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	if err := d.migrate(ctx); err != nil {
		d.pool.Close()
		return nil, err
	}
	return d, nil
}

// OpenReadOnly connects to an existing ledger for reading only (no
// migrations; every transaction read-only): for verifying a ledger
// offline. Of opts, the checkpoint keys matter.
func OpenReadOnly(ctx context.Context, dsn string, opts ...Option) (*DB, error) {
	d, err := connect(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	d.readOnly = true
	return d, nil
}

func connect(ctx context.Context, dsn string, opts []Option) (*DB, error) {
	d := &DB{now: time.Now, maxConns: DefaultMaxConns}
	for _, o := range opts {
		o(d)
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.macKey = store.DeriveMACKey(d.ckSigner)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, errors.New("store: the PostgreSQL DSN is not a valid connection string or URL (postgres://user@host:5432/db?sslmode=verify-full)")
	}
	cfg.MaxConns = d.maxConns
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	// Durability the ledger relies on, whatever the role's defaults: a
	// commit is on disk before the caller hears of it.
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	cfg.ConnConfig.RuntimeParams["application_name"] = "jit-ssh"
	d.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, classify("connecting", err)
	}
	if err := d.pool.Ping(ctx); err != nil {
		d.pool.Close()
		return nil, classify("connecting to "+describe(cfg.ConnConfig), err)
	}
	return d, nil
}

// Describe names the database dsn points at, without its password, for
// logs and messages: "PostgreSQL user@host:port/db" (or a note that it is
// not a valid DSN).
func Describe(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "PostgreSQL (a DSN that does not parse)"
	}
	return describe(cfg)
}

// IsDSN reports whether s is a PostgreSQL URL (postgres:// or
// postgresql://) rather than a file name.
func IsDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// describe names the database of c without its password.
func describe(c *pgx.ConnConfig) string {
	return fmt.Sprintf("PostgreSQL %s@%s/%s", c.User, net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port))), c.Database)
}

// Close closes the connection pool.
func (d *DB) Close() error {
	d.pool.Close()
	return nil
}

// Ping checks that the ledger answers a read.
func (d *DB) Ping(ctx context.Context) error {
	var n int
	if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		return classify("ping", err)
	}
	return nil
}

// Stats returns the ledger's counters: PostgreSQL keeps its own
// write-ahead log, so there is nothing to report yet.
func (d *DB) Stats(context.Context) (store.Stats, error) { return store.Stats{}, nil }

// migrate applies the embedded migrations not applied yet, each in its own
// transaction, under a session advisory lock: of several processes
// starting together, one migrates and the others wait, then find nothing
// to do.
func (d *DB) migrate(ctx context.Context) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return classify("migrations", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
		return classify("migrations", err)
	}
	defer func() {
		// A dropped connection releases the lock too.
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLock)
	}()
	// Created only when missing: a role without CREATE on the schema
	// (after the owner's first start) is refused even IF NOT EXISTS.
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return classify("migrations", err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
			return classify("migrations", err)
		}
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		base := path.Base(name)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("store: migration %s has no version prefix", base)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			// No arguments: the simple protocol, which runs every
			// statement of the file.
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return fmt.Errorf("migration %s: %w", base, err)
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, v, d.now().UnixNano())
			return err
		})
		if err != nil {
			return classify("migrate", err)
		}
	}
	return nil
}

// write runs fn in a write transaction holding the chain's lock, with the
// chain positioned at its head, and commits it. A serialization failure or
// deadlock is retried (fn runs again from the start).
func (d *DB) write(ctx context.Context, what string, fn func(pgx.Tx, *chain) error) error {
	if d.readOnly {
		return fmt.Errorf("store: %s: the ledger was opened read-only", what)
	}
	var err error
	for range maxRetries {
		err = d.writeOnce(ctx, fn)
		if !retryable(err) {
			break
		}
	}
	return classify(what, err)
}

func (d *DB) writeOnce(ctx context.Context, fn func(pgx.Tx, *chain) error) error {
	return pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		c, err := d.lockChain(ctx, tx)
		if err != nil {
			return err
		}
		return fn(tx, c)
	})
}

// lockChain takes the chain's lock for tx (released when tx ends) and
// returns the chain at its head. Under READ COMMITTED, the head read after
// the lock is granted is the last committed writer's.
func (d *DB) lockChain(ctx context.Context, tx pgx.Tx) (*chain, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, chainLock); err != nil {
		return nil, err
	}
	c := &chain{now: d.now, macKey: d.macKey, checkedThrough: d.verifiedThrough.Load()}
	var last int64
	err := tx.QueryRow(ctx, `SELECT id, hash FROM events ORDER BY id DESC LIMIT 1`).Scan(&last, &c.head)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	c.nextID = last + 1
	return c, nil
}

// readTx runs fn in a REPEATABLE READ, read-only transaction: one snapshot.
func (d *DB) readTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// classify wraps a database error with the store's sentinels: a unique key
// taken is ErrDuplicate; the ledger's own refusals pass as they are, and
// so do rows the database refuses (a data exception or constraint); a
// cancelled call is the caller's; anything else (the database unreachable,
// refusing, read-only, out of space) is ErrUnavailable.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	var ce *store.ChainError
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrDuplicate) ||
		errors.Is(err, ca.ErrGrantEnded) || errors.Is(err, store.ErrRowMismatch) || errors.As(err, &ce) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("%w: %s: %w", store.ErrDuplicate, what, err)
	}
	if pe != nil && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")) {
		// A data exception or constraint: this row, not the database.
		return fmt.Errorf("store: %s: the database refused the row: %w", what, err)
	}
	var conn *pgconn.ConnectError
	if errors.As(err, &conn) {
		// Its own timeout is a context error too: still unreachable.
		return fmt.Errorf("%w: %s: %w", store.ErrUnavailable, what, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return fmt.Errorf("%w: %s: %w", store.ErrUnavailable, what, err)
}

// queryer is what reads need of a transaction or the pool.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func nanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func fromNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

// args builds a query's numbered parameters.
type args []any

// add appends v and returns its placeholder ($n).
func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}
