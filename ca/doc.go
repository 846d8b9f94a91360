// Package ca owns certificate issuance for jit-ssh: the shared record types
// (requests, reviews, grants, certificates, events), the certificate profile
// of SPEC section 6, the issuance pipeline (validate key, apply policy, build,
// sign, record) and the small interfaces that pipeline consumes (Signer,
// Ledger). It imports only golang.org/x/crypto/ssh; implementations of its
// interfaces live in other packages (ca/vault, store/sqlite).
package ca
