// Package github is the GitHub identity provider of the approval service:
// it resolves a caller's bearer token to a GitHub login (GET /user) and
// answers team membership in one organisation with the server's token,
// caching answers briefly and failing closed. Its errors wrap
// ca.ErrUnauthenticated (the token was refused) or ca.ErrUnavailable (no
// answer), which the approval service tells apart. It needs only ca, so
// the service does not depend on GitHub.
package github
