package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Sentinel errors. Every error of a failed Vault call is an *Error that wraps
// ca.ErrSignerUnavailable and exactly one of these.
var (
	// ErrSealed: Vault answered but is sealed; an operator must unseal it.
	ErrSealed = errors.New("vault: sealed")
	// ErrUnreachable: no HTTP answer (connection refused, reset, DNS, TLS).
	ErrUnreachable = errors.New("vault: unreachable")
	// ErrTimeout: no answer within the per-call timeout (Vault hung or slow).
	ErrTimeout = errors.New("vault: timed out")
	// ErrDenied: Vault refused the token (403): missing policy, expired or
	// revoked token.
	ErrDenied = errors.New("vault: permission denied")
	// ErrRejected: Vault refused the request (4xx other than 403), for
	// example an unknown role or a principal the role does not allow.
	ErrRejected = errors.New("vault: request rejected")
	// ErrServer: Vault failed (5xx other than sealed, or 429).
	ErrServer = errors.New("vault: server error")
	// ErrCanceled: the caller gave up (its context was cancelled).
	ErrCanceled = errors.New("vault: call cancelled")
	// ErrBadResponse: Vault answered 2xx with something that is not what the
	// endpoint returns (no signed key, an unparsable CA key).
	ErrBadResponse = errors.New("vault: unexpected response")
)

// Error is a failed call to Vault. It wraps ca.ErrSignerUnavailable, Kind
// (one of the sentinels above) and the underlying cause. Its message never
// contains the Vault token.
type Error struct {
	// Op says what jit-ssh was doing, e.g. "sign with ssh/sign/jit-ssh".
	Op string
	// Addr is the Vault address that was called.
	Addr string
	// Kind is one of ErrSealed, ErrUnreachable, ErrTimeout, ErrDenied,
	// ErrRejected, ErrServer, ErrCanceled, ErrBadResponse.
	Kind error
	// Status is the HTTP status, or 0 when there was no HTTP answer.
	Status int
	// Err is the underlying cause; it may be nil.
	Err error

	hint string // what to do next, when more specific than Kind's
}

// Error reads like "vault: sealed at http://127.0.0.1:8200: sign with
// ssh/sign/jit-ssh; unseal Vault".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	} else {
		b.WriteString("vault: error")
	}
	if e.Addr != "" {
		b.WriteString(" at ")
		b.WriteString(e.Addr)
	}
	if e.Op != "" {
		b.WriteString(": ")
		b.WriteString(e.Op)
	}
	if d := e.detail(); d != "" {
		b.WriteString(": ")
		b.WriteString(d)
	}
	h := e.hint
	if h == "" {
		h = hint(e.Kind)
	}
	if h != "" {
		b.WriteString("; ")
		b.WriteString(h)
	}
	return b.String()
}

func (e *Error) detail() string {
	var re *api.ResponseError
	switch {
	case errors.As(e.Err, &re):
		msg := strings.Join(re.Errors, "; ")
		if re.RawError {
			msg = strings.TrimSpace(msg)
			if len(msg) > 200 {
				msg = msg[:200] + "..."
			}
		}
		if msg == "" {
			return fmt.Sprintf("HTTP %d", re.StatusCode)
		}
		return fmt.Sprintf("HTTP %d: %s", re.StatusCode, msg)
	case e.Err != nil:
		return e.Err.Error()
	}
	return ""
}

func hint(kind error) string {
	switch {
	case errors.Is(kind, ErrSealed):
		return "unseal Vault"
	case errors.Is(kind, ErrDenied):
		return "check the Vault token or AppRole and its policy (see vault.Policy)"
	case errors.Is(kind, ErrUnreachable):
		return "check VAULT_ADDR and that Vault is running"
	}
	return ""
}

// Unwrap returns ca.ErrSignerUnavailable, Kind and the cause, so errors.Is
// matches all three.
func (e *Error) Unwrap() []error {
	errs := []error{ca.ErrSignerUnavailable, e.Kind}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// classify turns the error of an api call into an *Error. timeout is the
// per-call budget, used only in the message.
func classify(op, addr string, err error, timeout time.Duration) *Error {
	e := &Error{Op: op, Addr: addr, Err: err}
	var re *api.ResponseError
	switch {
	case errors.As(err, &re):
		e.Status = re.StatusCode
		switch {
		case re.StatusCode == 403:
			e.Kind = ErrDenied
		case re.StatusCode == 429 || re.StatusCode >= 500:
			e.Kind = ErrServer
		default:
			e.Kind = ErrRejected
		}
	case errors.Is(err, context.Canceled):
		e.Kind = ErrCanceled
	case errors.Is(err, context.DeadlineExceeded):
		e.Kind = ErrTimeout
		e.Err = fmt.Errorf("no answer within %s: %w", timeout, err)
	default:
		e.Kind = ErrUnreachable
	}
	return e
}

// transient reports whether a retry might succeed: the connection was
// refused or dropped, or Vault answered 5xx/429 without being sealed.
func transient(e *Error) bool {
	switch {
	case errors.Is(e.Kind, ErrServer):
		return true
	case errors.Is(e.Kind, ErrUnreachable):
		var certErr *tls.CertificateVerificationError
		var uaErr x509.UnknownAuthorityError
		var hostErr x509.HostnameError
		if errors.As(e.Err, &certErr) || errors.As(e.Err, &uaErr) || errors.As(e.Err, &hostErr) {
			return false
		}
		var opErr *net.OpError
		return errors.Is(e.Err, syscall.ECONNREFUSED) ||
			errors.Is(e.Err, syscall.ECONNRESET) ||
			errors.Is(e.Err, io.EOF) ||
			errors.Is(e.Err, io.ErrUnexpectedEOF) ||
			(errors.As(e.Err, &opErr) && opErr.Op == "dial")
	}
	return false
}
