// Package postgres is the PostgreSQL ledger: the store.Ledger contract
// (store/storetest passes against it) on a PostgreSQL database, through
// github.com/jackc/pgx/v5.
//
// It keeps the SQLite ledger's guarantees with the computations of package
// store, so both hold byte-identical hashes for the same rows: the
// hash-chained event log, the row bindings of requests, reviews and
// certificates, the per-row MAC of the checkpoint key's holder, signed
// checkpoints, VerifyTail before serving, and the checks of the server's
// own writes.
//
// Order and clocks. Every write transaction first takes one
// transaction-scoped advisory lock (chainLock), then reads the chain's
// head: events get their ids, and so their one total order, from the
// writer holding the lock, and the chain cannot fork (events_prev_hash
// refuses it too). The same lock makes a write's checks and its changes
// one step: the grant re-check of RecordCertificate sees every revocation,
// cancellation or denial committed before it, and none can commit between
// the check and the record. Event times are the server's clock (the
// caller's, or WithClock), as with SQLite; the ledger decides no order by
// them, so the database's clock is not used. Schema migrations (embedded)
// run under a session advisory lock, so processes starting together
// migrate once.
//
// Concurrent RecordCertificate calls share one transaction and one commit
// (commit.go), its inserts pipelined.
//
// Reads that must see one state (GetRequest's binding check, Verify,
// VerifyTail, RevokedSerials) run in a REPEATABLE READ, read-only
// transaction. There is no request cache: every GetRequest reads the row
// and checks its binding, so what another writer committed is never
// hidden. A database that cannot be reached is store.ErrUnavailable.
//
// Several server processes on one ledger are not supported yet: the
// start-up tail check and the row MAC assume the rows after the check are
// this process's own.
package postgres
