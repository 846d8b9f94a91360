package ca

import "errors"

// Sentinel errors of the issuance pipeline. Callers compare with errors.Is;
// the HTTP layer maps them to status codes.
var (
	// ErrInvalidName: a login, group, principal or ID is not well formed.
	ErrInvalidName = errors.New("ca: invalid name")
	// ErrKeyType: the subject key is of a type or size the profile refuses.
	ErrKeyType = errors.New("ca: subject key type not allowed")
	// ErrBadKey: the subject key could not be parsed.
	ErrBadKey = errors.New("ca: malformed public key")
	// ErrGrantEnded: the grant is over; no certificate may be issued.
	ErrGrantEnded = errors.New("ca: grant has ended")
	// ErrSignerUnavailable: the signer could not sign (Vault down, sealed,
	// refusing). Maps to 503.
	ErrSignerUnavailable = errors.New("ca: signer unavailable")
	// ErrSignerMismatch: the signer returned a certificate that differs from
	// what was asked. It is never handed out.
	ErrSignerMismatch = errors.New("ca: signed certificate does not match the request")
	// ErrLedgerUnavailable: the ledger write failed; no certificate leaves.
	ErrLedgerUnavailable = errors.New("ca: ledger unavailable")
)

// Errors a Ledger implementation returns for records, so that packages
// that only know the ca types can tell them apart.
var (
	// ErrNotFound: no such record.
	ErrNotFound = errors.New("ca: no such record")
	// ErrConflict: the record changed since it was read.
	ErrConflict = errors.New("ca: record changed concurrently")
	// ErrDuplicate: a record with the same unique key (a certificate's
	// serial) exists already; Issue signs again under a new serial.
	ErrDuplicate = errors.New("ca: duplicate key")
)

// Errors an identity provider returns (approval.Directory's
// implementations), so that the providers need only this package and the
// service can tell a refused token from an unreachable provider.
var (
	// ErrUnauthenticated: the provider does not accept the token.
	ErrUnauthenticated = errors.New("ca: unauthenticated")
	// ErrUnavailable: the provider could not answer; nothing may be
	// decided from its silence.
	ErrUnavailable = errors.New("ca: dependency unavailable")
)
