// Package approval owns who may do what: identity (bearer token to login,
// team membership) through a Directory, the host-group policies, the
// pull-request style review rules, and the request lifecycle from creation
// to grant. Every decision is taken in one place (Service) and every denial
// carries its reason.
package approval
