package ca

import (
	"time"
)

// Request states (SPEC section 2).
const (
	StatePending   = "pending"
	StateApproved  = "approved"
	StateDenied    = "denied"
	StateExpired   = "expired"
	StateCancelled = "cancelled"
)

// Review events, with pull-request semantics.
const (
	ReviewApprove        = "APPROVE"
	ReviewRequestChanges = "REQUEST_CHANGES"
	ReviewComment        = "COMMENT"
	ReviewDeny           = "DENY"
)

// Request is an engineer's request for access to a host group.
type Request struct {
	ID        string        `json:"id"`
	HostGroup string        `json:"host_group"`
	Requester string        `json:"requester"`
	State     string        `json:"state"`
	Reason    string        `json:"reason"`
	Duration  time.Duration `json:"-"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
	// ApprovedAt is zero until the request is approved.
	ApprovedAt time.Time `json:"-"`
	// EndedAt is when the grant's end was recorded: early (cancelled or
	// revoked), or at its natural end once that has been recorded; zero
	// while the grant runs.
	EndedAt time.Time `json:"-"`
	// Version increases with every change to the request or its reviews;
	// long-polling clients wait for it to move.
	Version int64    `json:"version"`
	Reviews []Review `json:"reviews"`
	// BreakGlass marks a grant taken without an approver under the group's
	// break_glass policy: created approved, its FollowUp starts at
	// FollowUpNeedsReview.
	BreakGlass bool `json:"break_glass"`
	// FollowUp is the after-the-fact review of a break-glass grant: one of
	// the FollowUp* values, "" for every other request.
	FollowUp string `json:"follow_up,omitempty"`
	// ReviewDueAt is when the follow-up review of a break-glass grant is
	// due (grant start plus the policy's review_within); zero otherwise.
	ReviewDueAt time.Time `json:"-"`
	// FollowedUpAt is when an approver recorded the follow-up; zero while
	// it needs review.
	FollowedUpAt time.Time `json:"-"`
}

// Follow-up states of a break-glass grant (Request.FollowUp).
const (
	FollowUpNeedsReview  = "needs_review"
	FollowUpJustified    = "justified"
	FollowUpNotJustified = "not_justified"
)

// FollowUpOverdueAt reports whether r is a break-glass grant whose
// follow-up review is still missing at t, past its ReviewDueAt.
func (r *Request) FollowUpOverdueAt(t time.Time) bool {
	return r.FollowUp == FollowUpNeedsReview && !r.ReviewDueAt.IsZero() && !t.Before(r.ReviewDueAt)
}

// GrantEnds returns when the grant of an approved request ends: the
// approval time plus the duration, or the early end if there was one. It is
// zero for a request that was never approved.
func (r *Request) GrantEnds() time.Time {
	if r.ApprovedAt.IsZero() {
		return time.Time{}
	}
	end := r.ApprovedAt.Add(r.Duration)
	if !r.EndedAt.IsZero() && r.EndedAt.Before(end) {
		end = r.EndedAt
	}
	return end
}

// OpenAt reports whether the request is an open grant at t: see
// GrantOpen, the one rule.
func (r *Request) OpenAt(t time.Time) bool { return GrantOpen(r.State, r.GrantEnds(), t) }

// GrantOpen is the one rule for "the grant is open at t": the request is
// approved and t is before its grant's end (GrantEnds). It takes the state
// and the end rather than a Request so that the API's view of a request,
// which carries only those, is judged by the same rule.
//
// SQL mirror: store/requests.go, ListRequests with
// RequestFilter.GrantElapsedBy selects the complement among approved rows
// whose end is not yet recorded ("approved_at + duration_ns <= ?").
func GrantOpen(state string, ends, t time.Time) bool {
	return state == StateApproved && t.Before(ends)
}

// GrantElapsedAt reports whether r's grant ran out by t without its end
// being recorded yet: approved, no early or recorded end (EndedAt), and no
// longer open. The sweeper records such ends (a grant.ended event).
//
// SQL mirror: store/requests.go, ListRequests with
// RequestFilter.GrantElapsedBy ("state = approved AND ended_at IS NULL AND
// approved_at IS NOT NULL AND approved_at + duration_ns <= ?").
func (r *Request) GrantElapsedAt(t time.Time) bool {
	return r.State == StateApproved && r.EndedAt.IsZero() && !r.GrantEnds().IsZero() && !r.OpenAt(t)
}

// Review is one review of a request.
type Review struct {
	ID        int64     `json:"id"`
	RequestID string    `json:"request_id"`
	Reviewer  string    `json:"reviewer"`
	Event     string    `json:"event"`
	Body      string    `json:"body"`
	CreatedAt time.Time `json:"created_at"`
	// Dismissed is true for an approval that an edit of the request dismissed.
	Dismissed bool `json:"dismissed"`
}

// Grant is what issuance needs to know about an approved request: who it is
// for, what it covers and until when.
type Grant struct {
	RequestID string
	User      string
	Group     string
	Approvers []string
	Ends      time.Time
	Profile   Profile
	// BreakGlass marks a grant taken under the group's break_glass
	// policy: its certificates say by=break-glass (KeyID).
	BreakGlass bool
}

// Profile is the certificate policy of a host group: everything that ends
// up in a certificate besides the subject key and the identity.
type Profile struct {
	Principals    []string
	CertTTL       time.Duration
	Extensions    []string
	SourceAddress []string
}

// Certificate is the ledger's record of an issued certificate.
type Certificate struct {
	Serial        uint64
	KeyID         string
	HostGroup     string
	Principals    []string
	ValidAfter    time.Time
	ValidBefore   time.Time
	Requester     string
	RequestID     string
	Approvers     []string
	Fingerprint   string // SHA256 fingerprint of the subject key
	CAFingerprint string // SHA256 fingerprint of the signing CA key
	Certificate   string // authorized_keys form
	IssuedAt      time.Time
	RevokedAt     time.Time // zero unless revoked
	// Reason is the reason given in the request the certificate was issued
	// under. Ledger reads fill it in; it is not part of the record.
	Reason string
}

// Event is one row of the audit log.
type Event struct {
	ID        int64
	Time      time.Time
	Actor     string
	Type      string
	RequestID string
	Serial    uint64
	Data      map[string]any
}

// Event types recorded in the ledger.
const (
	EventRequestCreated   = "request.created"
	EventRequestEdited    = "request.edited"
	EventRequestCancelled = "request.cancelled"
	EventRequestDenied    = "request.denied"
	EventRequestExpired   = "request.expired"
	EventReview           = "review.submitted"
	EventGrantStarted     = "grant.started"
	// EventBreakGlass: a break-glass grant started, without an approver
	// (data "reason", "grant_ends_at", "review_due_at", "notified_teams").
	EventBreakGlass = "grant.break_glass"
	// EventFollowUp: an approver recorded the follow-up review of a
	// break-glass grant (data "follow_up": justified or not_justified,
	// "event", "body").
	EventFollowUp     = "grant.follow_up"
	EventGrantEnded   = "grant.ended"
	EventCertIssued   = "certificate.issued"
	EventIssueRefused = "certificate.refused"
	EventRevoked      = "certificate.revoked"
	EventConfigLoaded = "config.loaded"

	// EventRequestRefused: a request could not be filed, edited or
	// cancelled (data "action": create, edit or cancel; "code" and
	// "reason" say why).
	EventRequestRefused = "request.refused"
	// EventReviewRefused: a review was not accepted (data "event", "code"
	// and "reason").
	EventReviewRefused = "review.refused"
	// EventRowsBound is the event that binds rows no other event binds: a
	// request changed without events (tests and tools), and, written by
	// the ledger's migration 0005, each request and the certificates that
	// were already in a ledger created before row bindings existed.
	EventRowsBound = "ledger.rows_bound"
)

// RequestChange is one atomic change to a request: the request's new state,
// optionally a new review and dismissal of earlier reviews, and the events
// that record it. The ledger commits all of it or none.
type RequestChange struct {
	Request *Request
	// Create inserts the request; otherwise it is updated, and only if its
	// stored version still equals PrevVersion.
	Create      bool
	PrevVersion int64
	// Review, when set, is inserted; its ID is filled in.
	Review *Review
	// DismissReviews marks the request's earlier approvals and change
	// requests dismissed (an edit does this).
	DismissReviews bool
	Events         []Event
	// RevokeCertificates, when set, revokes in the same transaction the
	// request's certificates that are not revoked and still valid after
	// its NotExpiredAt, with one certificate.revoked event each: a grant
	// that ends early takes its certificates with it (SPEC section 2).
	RevokeCertificates *CertRevocation
}

// CertRevocation says who revokes a grant's certificates, why and when.
type CertRevocation struct {
	Actor  string
	Reason string
	At     time.Time
	// NotExpiredAt selects the certificates still worth revoking: those
	// whose ValidBefore is after it.
	NotExpiredAt time.Time
	// Serials is filled in with the certificates revoked.
	Serials []uint64
}

// RequestFilter selects requests. Empty fields match everything.
type RequestFilter struct {
	Requester string
	States    []string
	Groups    []string
	// GrantElapsedBy, when set, selects approved requests whose grant ran
	// out by this time and whose end is not yet recorded.
	GrantElapsedBy time.Time
	// FollowUp, when set, selects break-glass grants whose follow-up is in
	// this state (ca.FollowUp*).
	FollowUp string
	// FollowUpDueBy, when set, selects break-glass grants whose follow-up
	// review was due by this time (review_due_at <= it), whatever the
	// limit leaves of the newer ones.
	FollowUpDueBy time.Time
	Limit         int // default 200, at most 1000
}
