// Package approval owns who may do what: identity (bearer token to login,
// team membership) through a Directory, the host-group policies, the
// pull-request style review rules, and the request lifecycle from creation
// to grant, and the certificate use cases the API calls: issuance,
// revocation and the KRL, and who sees which certificates and events.
// Every decision is taken in one place (Service, and Authority on top of
// it for certificates) and every denial carries its reason and a stable
// code (the Code* constants); Failure is the one translation of any
// failure into code and sentence, for answers and refusal events alike.
//
// The Service's files are by topic: access (authentication, membership,
// visibility), workload (CI jobs signing in with OIDC ID tokens, through a
// WorkloadVerifier, and the host groups' workload rules), requests (the
// lifecycle), reviews (the review rules), grants (issuance decisions),
// breakglass (grants without an approver and their enforced follow-up
// review), sweeps (expiry and the end of grants:
// reads show them, the sweepers and actions record them), watch (long
// polling), notify and refusals (telling people and the ledger).
// Authority's are authority (its ledger interfaces and options), issue,
// certificates, events, revoke and failure. The
// identity providers other than the static one and the webhook notifier
// live in approval/github, approval/oidc (workloads) and approval/notify,
// which need only ca.
package approval
