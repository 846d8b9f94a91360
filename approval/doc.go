// Package approval owns who may do what: identity (bearer token to login,
// team membership) through a Directory, the host-group policies, the
// pull-request style review rules, and the request lifecycle from creation
// to grant. Every decision is taken in one place (Service) and every denial
// carries its reason and a stable code (the Code* constants).
//
// The Service's files are by topic: access (authentication, membership,
// visibility), requests (the lifecycle), reviews (the review rules),
// grants (issuance decisions), sweeps (expiry and the end of grants:
// reads show them, the sweepers and actions record them), watch (long
// polling), notify and refusals (telling people and the ledger). The
// identity providers other than the static one and the webhook notifier
// live in approval/github and approval/notify, which need only ca.
package approval
