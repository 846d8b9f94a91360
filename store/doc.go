// Package store is the jit-ssh ledger: a SQLite database (modernc.org/sqlite,
// no cgo) in WAL mode holding requests, reviews, certificates and a
// hash-chained event log. Schema migrations are embedded and versioned.
//
// Writes go through one connection, each in an IMMEDIATE transaction with
// synchronous=FULL, so a call that returns nil has been committed durably;
// reads use a separate pool of read-only connections.
package store
