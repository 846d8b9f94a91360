package store

import (
	"context"
	"io"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Ledger is the whole ledger: what the server opens once and hands, as
// the smaller interfaces below, to the packages that use a part of it
// (approval.Store, ca.Ledger, the API's Ledger and AuditLedger). Every
// implementation passes storetest.Run.
type Ledger interface {
	Requests
	Certificates
	EventLog
	Revoker
	Verifier
	Checkpointer
	Reporter
	Health
	io.Closer
}

// Requests holds access requests and their reviews.
type Requests interface {
	// ApplyRequestChange commits ch atomically: the request as given, new
	// Version included (inserted when ch.Create, a request ID that exists
	// already being ErrDuplicate; otherwise updated only if its stored
	// version still equals ch.PrevVersion, else ErrConflict), its new
	// review, dismissals, events and certificate revocations, or none of
	// it. It fills in the new review's ID and RequestID.
	ApplyRequestChange(ctx context.Context, ch ca.RequestChange) error
	// GetRequest returns the request with its reviews, or ErrNotFound. A
	// row that no longer matches the event log is ErrRowMismatch.
	GetRequest(ctx context.Context, id string) (*ca.Request, error)
	// ListRequests returns the requests f selects, with their reviews,
	// newest first.
	ListRequests(ctx context.Context, f ca.RequestFilter) ([]*ca.Request, error)
}

// Certificates holds the record of every issued certificate.
type Certificates interface {
	// RecordCertificate durably records c with its certificate.issued
	// event; it returns only after the record is committed. A serial that
	// exists already is ErrDuplicate.
	RecordCertificate(ctx context.Context, c *ca.Certificate) error
	// GetCertificate returns the certificate with the given serial, or
	// ErrNotFound.
	GetCertificate(ctx context.Context, serial uint64) (*ca.Certificate, error)
	// ListCertificates calls fn for each certificate f selects, newest
	// first, streaming. An error from fn stops the listing and is returned.
	ListCertificates(ctx context.Context, f ca.CertFilter, fn func(*ca.Certificate) error) error
}

// EventLog is the hash-chained audit log.
type EventLog interface {
	// RecordEvent appends ev to the chain on its own, outside any request
	// change.
	RecordEvent(ctx context.Context, ev ca.Event) error
	// ListEvents calls fn for each event f selects, in log order,
	// streaming. An error from fn stops the listing and is returned.
	ListEvents(ctx context.Context, f ca.EventFilter, fn func(*ca.Event) error) error
}

// Revoker revokes certificates and lists the revoked ones for the KRL.
type Revoker interface {
	// Revoke marks the certificates spec names revoked by actor for
	// reason at now, ends the open grants they were issued under (and
	// cancels a pending request spec names), with one event each, in one
	// transaction.
	Revoke(ctx context.Context, spec ca.RevokeSpec, actor, reason string, now time.Time) (*ca.Revocation, error)
	// RevokedSerials returns, per CA key fingerprint, the serials of the
	// revoked certificates not yet expired at notAfter, and the KRL
	// version: a number that only grows, and grows with every revocation
	// (0 when there is none).
	RevokedSerials(ctx context.Context, notAfter time.Time) (map[string][]uint64, uint64, error)
}

// Verifier checks the ledger's integrity.
type Verifier interface {
	// Verify checks the whole event chain, every signed checkpoint and
	// every row the chain binds. It returns a *ChainError naming the first
	// bad row.
	Verify(ctx context.Context) (ca.VerifyResult, error)
	// VerifyTail checks what the newest signed checkpoint does not cover
	// yet, before the server serves or signs a checkpoint over it. It
	// returns a *ChainError naming the first bad row.
	VerifyTail(ctx context.Context) (TailResult, error)
}

// Checkpointer signs the chain head.
type Checkpointer interface {
	// Checkpoint signs the chain head and records the checkpoint. It
	// returns nil, nil when no event was added since the last one, and an
	// error when the ledger has no checkpoint signer.
	Checkpoint(ctx context.Context) (*Checkpoint, error)
}

// Reporter computes the figures that show JIT access is working.
type Reporter interface {
	// Report computes the figures over requests created since since (zero:
	// all time); open grants are counted at now.
	Report(ctx context.Context, since, now time.Time) (*ca.Report, error)
	// BreakGlassCounts returns, by host group, the break-glass grants ever
	// recorded and the follow-ups overdue at now (past their ReviewDueAt,
	// still needs_review); groups without one are absent.
	BreakGlassCounts(ctx context.Context, now time.Time) (map[string]ca.BreakGlassCount, error)
}

// Health is what the server's health and metrics endpoints ask of the
// ledger.
type Health interface {
	// Ping returns nil when the ledger answers a read.
	Ping(ctx context.Context) error
	// Stats returns the ledger's operational counters now.
	Stats(ctx context.Context) (Stats, error)
}

// Stats are a ledger's operational counters, published as metrics.
type Stats struct {
	// WALCheckpointFailures counts the background checkpoints of the
	// ledger's write-ahead log that failed since it was opened: commits
	// stay durable without them, but the log grows while they fail. A
	// backend that keeps no write-ahead log of its own reports 0.
	WALCheckpointFailures uint64
}
