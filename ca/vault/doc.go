// Package vault is the ca.Signer backed by HashiCorp Vault's SSH secrets
// engine: the CA private key lives in Vault and never leaves it. It also
// holds the Vault client construction jit-ssh uses (token or AppRole login,
// with renewal) and Setup, the idempotent mount and role configuration run by
// `jit-ssh vault setup`.
//
// The sign call, the one on every issuance, is a lean net/http request
// (signcall.go) over the Vault client's own *http.Client, so its address,
// TLS settings and connection pool are the client's; everything else (set-up,
// AppRole login, token renewal, the CA key) goes through vault/api.
//
// Every failure to reach or use Vault fails closed: the error wraps
// ca.ErrSignerUnavailable and one of this package's sentinels (ErrSealed,
// ErrUnreachable, ErrTimeout, ...), and its message names Vault and the
// cause. Nothing is cached that could outlive Vault's recovery, so a Signer
// works again as soon as Vault does, without a restart.
package vault
