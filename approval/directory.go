package approval

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
)

// Directory resolves bearer tokens to logins and answers team membership:
// the identity provider the service consults for every decision.
// Implementations: StaticDirectory (dev and tests) and
// approval/github.Directory.
type Directory interface {
	// Authenticate returns the login behind token. Unknown tokens give an
	// error wrapping ErrUnauthenticated (ca.ErrUnauthenticated); an
	// unreachable provider one wrapping ErrUnavailable (ca.ErrUnavailable).
	Authenticate(ctx context.Context, token string) (string, error)
	// IsMember reports whether login is an active member of team.
	IsMember(ctx context.Context, login, team string) (bool, error)
}

// StaticUser is one entry of a static directory.
type StaticUser struct {
	Token string
	Teams []string
}

// StaticDirectory is a fixed directory from configuration. It keeps only
// hashes of the tokens. It stays in this package, unlike the GitHub
// provider: it has no dependencies, and the tests and benchmarks of the
// packages above approval build their fixtures with it.
type StaticDirectory struct {
	byHash map[[32]byte]string
	teams  map[string][]string
}

var _ Directory = (*StaticDirectory)(nil)

// NewStaticDirectory returns a directory of users keyed by login.
func NewStaticDirectory(users map[string]StaticUser) *StaticDirectory {
	d := &StaticDirectory{byHash: map[[32]byte]string{}, teams: map[string][]string{}}
	for login, u := range users {
		d.byHash[sha256.Sum256([]byte(u.Token))] = login
		d.teams[login] = slices.Clone(u.Teams)
	}
	return d
}

// Authenticate looks the token up by its hash.
func (d *StaticDirectory) Authenticate(_ context.Context, token string) (string, error) {
	if login, ok := d.byHash[sha256.Sum256([]byte(token))]; ok && token != "" {
		return login, nil
	}
	return "", fmt.Errorf("%w: unknown token", ErrUnauthenticated)
}

// IsMember reports static membership.
func (d *StaticDirectory) IsMember(_ context.Context, login, team string) (bool, error) {
	return slices.Contains(d.teams[login], team), nil
}
