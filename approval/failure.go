package approval

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// invalidInput is an *Error of kind ErrInvalid with code CodeInvalidInput.
func invalidInput(format string, args ...any) *Error {
	return newErr(ErrInvalid, CodeInvalidInput, format, args...)
}

// Failure returns what a caller is told about err: err's own *Error when it
// has one, else the stable code and sentence of a failure of the CA, its
// signer or the ledger (a malformed key, a signer or ledger that is down, a
// row that does not match the event log, ...), and for anything else an
// internal error without detail (kind ErrInternal). It is the one
// translation behind both the answers of the API and the refusal events
// the use cases record, so the two always say the same. It never returns
// nil; err must not be nil.
func Failure(err error) *Error {
	var ae *Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ca.ErrBadKey), errors.Is(err, ca.ErrKeyType):
		return &Error{Kind: ErrInvalid, Code: "invalid_public_key", Message: strings.TrimPrefix(err.Error(), "ca: ")}
	case errors.Is(err, ca.ErrInvalidName):
		return &Error{Kind: ErrInvalid, Code: "invalid_name", Message: strings.TrimPrefix(err.Error(), "ca: ")}
	case errors.Is(err, ca.ErrGrantEnded):
		return &Error{Kind: ErrConflict, Code: CodeGrantEnded, Message: "the grant has ended; request access again"}
	case errors.Is(err, ca.ErrSignerMismatch):
		return &Error{Kind: ErrUnavailable, Code: "signer_mismatch", Message: "the signer returned a certificate that differs from the request; none was issued (check the signer's role configuration): " + err.Error()}
	case errors.Is(err, ca.ErrSignerUnavailable):
		return &Error{Kind: ErrUnavailable, Code: "signer_unavailable", Message: "the CA signer is unavailable, no certificate was issued: " + err.Error()}
	case errors.Is(err, ca.ErrLedgerUnavailable):
		return &Error{Kind: ErrUnavailable, Code: "ledger_unavailable", Message: "the ledger cannot record, so no certificate was issued; try again shortly"}
	case errors.Is(err, ca.ErrNotFound):
		return &Error{Kind: ErrNotFound, Code: "not_found", Message: "not found"}
	case errors.Is(err, ca.ErrConflict):
		return &Error{Kind: ErrConflict, Code: "conflict", Message: "the record changed concurrently; try again"}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &Error{Kind: ErrUnavailable, Code: "timeout", Message: "the request timed out"}
	case errors.Is(err, store.ErrRowMismatch):
		return &Error{Kind: ErrInternal, Code: "ledger_mismatch", Message: "the ledger's rows this answer depends on do not match its event log, so nothing was decided, issued or served from them; an operator must run jit-ssh audit verify"}
	default:
		return &Error{Kind: ErrInternal, Code: "internal", Message: "internal error; see the server log"}
	}
}

// ParseTime is the one rule for a time parameter (since, until, valid_at):
// empty is the zero time, anything else must be RFC 3339. The error is an
// *Error of kind ErrInvalid, code CodeInvalidInput, naming the parameter.
func ParseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, invalidInput("%s must be an RFC 3339 time like 2026-01-02T15:04:05Z", name)
	}
	return t, nil
}
