package api

import (
	"strconv"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// CAKey is one CA public key hosts should trust.
type CAKey struct {
	PublicKey   string `json:"public_key"` // authorized_keys form
	Fingerprint string `json:"fingerprint"`
}

// CAResponse is the body of GET /v1/ca.
type CAResponse struct {
	Keys []CAKey `json:"keys"`
}

// HostGroup is what GET /v1/host-groups/{name} publishes.
type HostGroup struct {
	Name       string   `json:"name"`
	Principals []string `json:"principals"`
}

// CreateRequest is the body of POST /v1/requests.
type CreateRequest struct {
	HostGroup string `json:"host_group"`
	Duration  string `json:"duration,omitempty"` // Go duration, e.g. "30m"; default per policy
	Reason    string `json:"reason"`
	// BreakGlass asks for a grant at once, without an approver, under the
	// group's break_glass policy; the follow-up review is enforced.
	BreakGlass bool `json:"break_glass,omitempty"`
}

// EditRequest is the body of PATCH /v1/requests/{id}.
type EditRequest struct {
	Duration string  `json:"duration,omitempty"`
	Reason   *string `json:"reason,omitempty"`
}

// ReviewRequest is the body of POST /v1/requests/{id}/reviews.
type ReviewRequest struct {
	Event string `json:"event"` // APPROVE, REQUEST_CHANGES, COMMENT, DENY
	Body  string `json:"body"`
}

// IssueRequest is the body of POST /v1/certificates.
type IssueRequest struct {
	RequestID string `json:"request_id"`
	PublicKey string `json:"public_key"` // authorized_keys form
}

// Request is a request as the API shows it.
type Request struct {
	ID                 string      `json:"id"`
	HostGroup          string      `json:"host_group"`
	Requester          string      `json:"requester"`
	State              string      `json:"state"`
	Reason             string      `json:"reason"`
	Duration           string      `json:"duration"`
	DurationSeconds    int64       `json:"duration_seconds"`
	CreatedAt          time.Time   `json:"created_at"`
	UpdatedAt          time.Time   `json:"updated_at"`
	ApprovedAt         *time.Time  `json:"approved_at"`
	GrantEndsAt        *time.Time  `json:"grant_ends_at"`
	Version            int64       `json:"version"`
	ApprovalsRequired  int         `json:"approvals_required"`
	ApproverTeams      []string    `json:"approver_teams"`
	Approvals          []string    `json:"approvals"`
	ChangesRequestedBy []string    `json:"changes_requested_by"`
	Reviews            []ca.Review `json:"reviews"`
	// BreakGlass marks a grant taken without an approver; FollowUp is its
	// follow-up review (needs_review, justified, not_justified), due at
	// ReviewDueAt and recorded at FollowedUpAt.
	BreakGlass   bool       `json:"break_glass"`
	FollowUp     string     `json:"follow_up,omitempty"`
	ReviewDueAt  *time.Time `json:"review_due_at,omitempty"`
	FollowedUpAt *time.Time `json:"followed_up_at,omitempty"`
}

// OpenAt reports whether the request is an open grant at t, by the one
// rule for that, ca.GrantOpen, applied to the state and grant end the API
// shows.
func (r *Request) OpenAt(t time.Time) bool {
	return r.GrantEndsAt != nil && ca.GrantOpen(r.State, *r.GrantEndsAt, t)
}

// Certificate is an issued certificate as the API shows it. Serials are
// decimal strings: they are 64-bit and would lose precision as JSON numbers.
type Certificate struct {
	Serial        string     `json:"serial"`
	KeyID         string     `json:"key_id"`
	HostGroup     string     `json:"host_group"`
	Principals    []string   `json:"principals"`
	ValidAfter    time.Time  `json:"valid_after"`
	ValidBefore   time.Time  `json:"valid_before"`
	Requester     string     `json:"requester"`
	RequestID     string     `json:"request_id"`
	Approvers     []string   `json:"approvers"`
	Fingerprint   string     `json:"fingerprint"`
	CAFingerprint string     `json:"ca_fingerprint"`
	Certificate   string     `json:"certificate"`
	IssuedAt      time.Time  `json:"issued_at"`
	RevokedAt     *time.Time `json:"revoked_at"`
	// Reason is the reason of the request it was issued under.
	Reason string `json:"reason,omitempty"`
}

// ErrorBody is the JSON form of every error.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Health is the body of GET /healthz.
type Health struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// certificateView converts a ledger record.
func certificateView(c *ca.Certificate) Certificate {
	return Certificate{
		Serial: strconv.FormatUint(c.Serial, 10), KeyID: c.KeyID, HostGroup: c.HostGroup, Principals: orEmpty(c.Principals),
		ValidAfter: c.ValidAfter, ValidBefore: c.ValidBefore, Requester: c.Requester, RequestID: c.RequestID,
		Approvers: orEmpty(c.Approvers), Fingerprint: c.Fingerprint, CAFingerprint: c.CAFingerprint,
		Certificate: c.Certificate, IssuedAt: c.IssuedAt, RevokedAt: timePtr(c.RevokedAt), Reason: c.Reason,
	}
}
