package approval

import (
	"errors"
	"fmt"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Kinds of failure. An *Error wraps exactly one of them; the HTTP layer maps
// the kind to a status.
var (
	// ErrUnauthenticated is ca.ErrUnauthenticated, the error an identity
	// provider (a Directory) wraps for a token it does not accept, so the
	// providers need not import approval.
	ErrUnauthenticated = ca.ErrUnauthenticated
	ErrForbidden       = errors.New("approval: not allowed")
	ErrNotFound        = errors.New("approval: not found")
	ErrInvalid         = errors.New("approval: invalid")
	ErrConflict        = errors.New("approval: conflict")
	// ErrUnavailable is ca.ErrUnavailable, the error an identity provider
	// wraps when it cannot answer.
	ErrUnavailable = ca.ErrUnavailable
	// ErrInternal is a failure that is none of the above (a bug, a ledger
	// row that does not match the event log): answered without detail.
	ErrInternal = errors.New("approval: internal failure")
)

// Error is a decision with a stable machine code and a sentence for people.
type Error struct {
	Kind    error  // one of the Err* kinds above
	Code    string // snake_case, stable: one of the Code* constants
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the kind.
func (e *Error) Unwrap() error { return e.Kind }

func newErr(kind error, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error codes: the stable machine-readable part of an *Error, sent to
// clients in the API's error body. The CLI and the HTTP layer compare
// with these constants, never with the bare strings.
const (
	// CodeUnauthenticated is the error code of a missing or refused token.
	CodeUnauthenticated = "unauthenticated"
	// CodeReasonRequired is the error code of a request, or an edit, without
	// a reason for a group whose approvers must read one.
	CodeReasonRequired = "reason_required"
	// CodeReservedLogin: the identity provider named a login jit-ssh
	// keeps for its own events.
	CodeReservedLogin = "reserved_login"
	// CodeIdentityUnavailable: the identity provider could not answer, so
	// nothing was decided.
	CodeIdentityUnavailable = "identity_unavailable"

	// CodeInvalidHostGroup: a malformed host group name.
	CodeInvalidHostGroup = "invalid_host_group"
	// CodeUnknownHostGroup: no policy for the host group.
	CodeUnknownHostGroup = "unknown_host_group"
	// CodeInvalidRequestID: a malformed request ID.
	CodeInvalidRequestID = "invalid_request_id"
	// CodeRequestNotFound: no such request, or none the caller may see.
	CodeRequestNotFound = "request_not_found"
	// CodeInvalidDuration: a duration outside what the policy allows.
	CodeInvalidDuration = "invalid_duration"
	// CodeInvalidState: an unknown request state in a filter.
	CodeInvalidState = "invalid_state"
	// CodeEmptyEdit: an edit that changes nothing.
	CodeEmptyEdit = "empty_edit"
	// CodeInvalidReviewEvent: a review event other than APPROVE,
	// REQUEST_CHANGES, COMMENT or DENY.
	CodeInvalidReviewEvent = "invalid_review_event"
	// CodeBodyRequired: a review that needs a body has none.
	CodeBodyRequired = "body_required"

	// CodeNotARequester: the caller is not (or no longer) in a requester
	// team of the group.
	CodeNotARequester = "not_a_requester"
	// CodeNotAnApprover: the caller is not in an approver team of the group.
	CodeNotAnApprover = "not_an_approver"
	// CodeNotRequester: only the request's requester may do this.
	CodeNotRequester = "not_requester"
	// CodeSelfReview: a requester reviewing their own request.
	CodeSelfReview = "self_review"
	// CodeOutsideAllowedHours: the group may not be used at this time.
	CodeOutsideAllowedHours = "outside_allowed_hours"
	// CodeNotAllowedToRevoke: the caller may not revoke this access.
	CodeNotAllowedToRevoke = "not_allowed_to_revoke"
	// CodeApprovalNoLongerValid: too few of the approvals still count
	// (an approver left the approver teams).
	CodeApprovalNoLongerValid = "approval_no_longer_valid"

	// CodeRequestNotPending: the request is no longer pending.
	CodeRequestNotPending = "request_not_pending"
	// CodeRequestNotApproved: the request was never approved.
	CodeRequestNotApproved = "request_not_approved"
	// CodeRequestClosed: the request has no open grant to end.
	CodeRequestClosed = "request_closed"
	// CodeGrantEnded: the grant is over; no certificate may be issued.
	CodeGrantEnded = "grant_ended"

	// CodeInvalidInput: input that is not well formed (a parameter, a
	// field, a body).
	CodeInvalidInput = "invalid_input"
	// CodeNotAnAuditor: a read only auditors may make.
	CodeNotAnAuditor = "not_an_auditor"
	// CodeUnknownCertificate: no certificate has the serial to revoke.
	CodeUnknownCertificate = "unknown_certificate"

	// CodeBreakGlassNotAllowed: the group has no break_glass policy.
	CodeBreakGlassNotAllowed = "break_glass_not_allowed"
	// CodeNotABreakGlassTeam: the caller is not in a break_glass team of
	// the group.
	CodeNotABreakGlassTeam = "not_a_break_glass_team"
	// CodeReasonPattern: a break-glass reason that does not match the
	// group's reason_pattern.
	CodeReasonPattern = "reason_pattern_mismatch"
	// CodeFollowUpOverdue: the caller has a break-glass follow-up past
	// due and may not break glass again until it is reviewed.
	CodeFollowUpOverdue = "follow_up_overdue"
	// CodeFollowUpRecorded: the follow-up of a break-glass grant was
	// recorded already.
	CodeFollowUpRecorded = "follow_up_recorded"
)
