// Package static is the identity provider of a fixed directory from the
// server's configuration (identity.type static, and the dev server): users
// with a token and their teams. Only hashes of the tokens are kept.
package static

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/jit-ssh/jit-ssh/ca"
)

// User is one entry of a static directory.
type User struct {
	Token string
	Teams []string
}

// Directory is a fixed directory. It satisfies approval.Directory.
type Directory struct {
	byHash map[[32]byte]string
	teams  map[string][]string
}

// New returns a directory of users keyed by login.
func New(users map[string]User) *Directory {
	d := &Directory{byHash: map[[32]byte]string{}, teams: map[string][]string{}}
	for login, u := range users {
		d.byHash[sha256.Sum256([]byte(u.Token))] = login
		d.teams[login] = slices.Clone(u.Teams)
	}
	return d
}

// Authenticate looks the token up by its hash; an unknown or empty token
// is an error wrapping ca.ErrUnauthenticated.
func (d *Directory) Authenticate(_ context.Context, token string) (string, error) {
	if login, ok := d.byHash[sha256.Sum256([]byte(token))]; ok && token != "" {
		return login, nil
	}
	return "", fmt.Errorf("%w: unknown token", ca.ErrUnauthenticated)
}

// IsMember reports static membership.
func (d *Directory) IsMember(_ context.Context, login, team string) (bool, error) {
	return slices.Contains(d.teams[login], team), nil
}
