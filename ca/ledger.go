package ca

import "time"

// The value types of the ledger's contract (package store) that its
// consumers pass in and get back: filters, revocation specs and outcomes,
// verification results and the report. They live here, next to
// RequestFilter, so that packages that know only ca can name them.

// CertFilter selects certificates. Zero fields match everything.
type CertFilter struct {
	User    string
	Group   string
	Since   time.Time // issued at or after
	Until   time.Time // issued before
	ValidAt time.Time // valid (and not revoked) at this instant
	Serial  uint64
	KeyID   string
	Limit   int // 0 = no limit
}

// EventFilter selects audit events. Zero fields match everything.
type EventFilter struct {
	Actor     string
	Type      string
	RequestID string
	Serial    uint64
	Group     string // events of requests for this host group
	// Involving selects the events a login may see of its own: those it
	// caused and those about its requests (reviews, grants, revocations).
	Involving string
	Since     time.Time
	Until     time.Time
	Limit     int
}

// Report holds the figures that show JIT access is working.
type Report struct {
	Since             time.Time
	Requests          int
	Approved          int
	Denied            int
	Expired           int
	Cancelled         int
	Pending           int
	ApprovalRate      float64 // approved / decided (approved + denied + expired)
	MedianToApproval  time.Duration
	P95ToApproval     time.Duration
	MedianGrantLength time.Duration
	CertsIssued       int
	OpenGrantsNow     int
	// BreakGlass counts the break-glass grants among the requests;
	// MedianToFollowUp is the median time from such a grant's start to its
	// follow-up review (over those reviewed); OverdueFollowUps are the
	// break-glass grants (of any age) whose follow-up is past due at now,
	// oldest due first.
	BreakGlass       int
	MedianToFollowUp time.Duration
	OverdueFollowUps []OverdueFollowUp
}

// OverdueFollowUp is a break-glass grant whose follow-up review is late.
type OverdueFollowUp struct {
	RequestID string
	Requester string
	HostGroup string
	DueAt     time.Time
}

// BreakGlassCount is one host group's break-glass figures at a time: the
// grants ever taken and the follow-ups overdue then.
type BreakGlassCount struct {
	Grants  int
	Overdue int
}

// RevokeSpec names what to revoke: exactly one of Serial, RequestID or User.
type RevokeSpec struct {
	Serial    uint64
	RequestID string
	User      string
}

// Revocation is the outcome of Revoke.
type Revocation struct {
	Serials     []uint64 // certificates newly revoked
	EndedGrants []string // requests whose open grant was ended
	Cancelled   []string // pending requests cancelled (RevokeSpec.RequestID)
}

// VerifyResult is the outcome of Verify.
type VerifyResult struct {
	Rows int64  // event rows whose hash and link check out
	Head string // hash of the last row
	// Checkpoints and SidecarCheckpoints count the signed checkpoints
	// checked from the ledger and from the sidecar file.
	Checkpoints, SidecarCheckpoints int
	// LastCheckpointRow and LastCheckpointAt describe the newest valid
	// checkpoint; Unanchored is how many rows follow it (rows a truncation
	// could remove without a checkpoint noticing).
	LastCheckpointRow int64
	LastCheckpointAt  time.Time
	Unanchored        int64
	// CheckpointKeys are the fingerprints of the keys that signed them.
	CheckpointKeys []string
	// RowsChecked is true when the requests, reviews and certificates were
	// checked against the rows' bindings in the chain (false for a copy of
	// a ledger older than row bindings); Requests, Reviews and
	// Certificates count the rows checked.
	RowsChecked                     bool
	Requests, Reviews, Certificates int64
}
