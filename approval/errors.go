package approval

import (
	"errors"
	"fmt"
)

// Kinds of failure. An *Error wraps exactly one of them; the HTTP layer maps
// the kind to a status.
var (
	ErrUnauthenticated = errors.New("approval: unauthenticated")
	ErrForbidden       = errors.New("approval: not allowed")
	ErrNotFound        = errors.New("approval: not found")
	ErrInvalid         = errors.New("approval: invalid")
	ErrConflict        = errors.New("approval: conflict")
	ErrUnavailable     = errors.New("approval: dependency unavailable")
	ErrInternal        = errors.New("approval: internal failure")
)

// Error is a decision with a stable machine code and a sentence for people.
type Error struct {
	Kind    error  // one of the Err* kinds above
	Code    string // snake_case, stable: "unknown_host_group", "not_a_requester", ...
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the kind.
func (e *Error) Unwrap() error { return e.Kind }

func newErr(kind error, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}
