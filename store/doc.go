// Package store is the contract of the jit-ssh ledger: the small
// interfaces its consumers use (Ledger composes them), the sentinel errors
// and error types an implementation returns, and the shared value types
// that are not ca's (Checkpoint, TailResult). It holds no implementation:
// the SQLite ledger is store/sqlite, and package store/storetest is the
// contract test suite every implementation passes.
//
// The value types consumers pass in and get back (filters, revocation
// specs, verification results, the report) are ca's, so that packages
// that know only ca can name them.
package store
