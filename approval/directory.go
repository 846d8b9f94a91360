package approval

import "context"

// Directory resolves bearer tokens to logins and answers team membership:
// the identity provider the service consults for every decision.
// Implementations: approval/static.Directory (configuration, dev and
// tests) and approval/github.Directory.
type Directory interface {
	// Authenticate returns the login behind token. Unknown tokens give an
	// error wrapping ErrUnauthenticated (ca.ErrUnauthenticated); an
	// unreachable provider one wrapping ErrUnavailable (ca.ErrUnavailable).
	Authenticate(ctx context.Context, token string) (string, error)
	// IsMember reports whether login is an active member of team.
	IsMember(ctx context.Context, login, team string) (bool, error)
}
