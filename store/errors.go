package store

import (
	"errors"
	"fmt"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Sentinel errors of the ledger. Implementations return or wrap them;
// callers compare with errors.Is. ErrNotFound, ErrConflict and
// ErrUnavailable are the ca package's, so callers that know only ca can
// test for them.
var (
	// ErrNotFound: no such request or certificate.
	ErrNotFound = ca.ErrNotFound
	// ErrConflict: the row changed since it was read (optimistic locking).
	ErrConflict = ca.ErrConflict
	// ErrUnavailable: the database cannot be written or read (disk full,
	// read-only, I/O error, locked too long). Maps to 503.
	ErrUnavailable = ca.ErrLedgerUnavailable
	// ErrDuplicate: a unique key (serial, request ID) already exists.
	ErrDuplicate = ca.ErrDuplicate
	// ErrInUse: another process has the ledger open for writing.
	ErrInUse = errors.New("store: ledger in use")
	// ErrRowMismatch means a ledger row does not match the event log (it
	// was edited, inserted or deleted outside the server). The server
	// refuses to decide from it; `jit-ssh audit verify` names every such
	// row's table and key.
	ErrRowMismatch = errors.New("store: ledger row does not match the event log")
)

// ChainError names the first row that breaks the chain: an event row, or
// (Table set) a row of another table that does not match the event log.
// Verify and VerifyTail return it; compare with errors.As.
type ChainError struct {
	Row int64 // event id of the first bad row; with Table, the event that binds the row (0: none)
	// Table and Key name a requests, reviews, certificates or
	// certificate_baseline row that does not match its events.
	Table, Key string
	Reason     string
}

// Error names the bad row and what is wrong with it.
func (e *ChainError) Error() string {
	if e.Table != "" {
		return fmt.Sprintf("store: %s row %s does not match the event log: %s", e.Table, e.Key, e.Reason)
	}
	return fmt.Sprintf("store: event log broken at row %d: %s", e.Row, e.Reason)
}
