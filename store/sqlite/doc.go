// Package sqlite is the jit-ssh ledger on SQLite: it implements the
// contract of package store (store.Ledger, tested by storetest.Run) with a
// SQLite database (modernc.org/sqlite, no cgo) in WAL mode holding
// requests, reviews, certificates and a hash-chained event log. Every
// request, review and certificate row is bound to the chain (bind.go): the
// event that last changed it holds the digest of its content, so Verify
// names a row changed behind the server's back, and GetRequest refuses one
// before the server decides from it.
// VerifyTail checks the rows no signed checkpoint covers yet (tail.go).
// Schema migrations are embedded and versioned.
//
// Writes go through one connection, each in an IMMEDIATE transaction with
// synchronous=FULL, so a call that returns nil has been committed durably;
// reads use a separate pool of read-only connections.
package sqlite
