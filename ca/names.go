package ca

import (
	"fmt"
	"regexp"
	"sync"
)

// Names that end up in sshd files, certificate KeyIds or principals are
// checked against these patterns before use. They deliberately exclude
// whitespace, commas, colons, quotes, slashes, NULs and non-ASCII, so no name
// can inject a second principal, a second KeyId field or a path.
//
// They are compiled on first use, not at package initialisation: every
// process of the single jit-ssh binary initialises this package, and a
// client command such as login needs one pattern at most.
var (
	// GitHub logins: alphanumerics and single hyphens, no leading hyphen.
	loginRE = lazyRE(`^[A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38}$`)
	// Host groups and team slugs: lowercase, digits, '-', '_', '.'.
	groupRE = lazyRE(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	// Principals and Unix logins on hosts.
	principalRE = lazyRE(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)
	// Request IDs are minted by the server.
	requestIDRE = lazyRE(`^r-[a-z2-7]{16}$`)
)

func lazyRE(pattern string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })
}

// maxLogin is GitHub's limit on login length. The pattern alone would
// allow more, since each "-x" pair counts once.
const maxLogin = 39

// CheckLogin returns an error unless s is a valid user login.
func CheckLogin(s string) error {
	if len(s) > maxLogin {
		return fmt.Errorf("%w: login %q is longer than %d characters", ErrInvalidName, s, maxLogin)
	}
	return check("login", loginRE, s)
}

// CheckGroup returns an error unless s is a valid host group or team name.
func CheckGroup(s string) error { return check("host group", groupRE, s) }

// CheckTeam returns an error unless s is a valid team slug.
func CheckTeam(s string) error { return check("team", groupRE, s) }

// CheckPrincipal returns an error unless s is a valid certificate principal
// or Unix login name.
// The pattern refuses a leading '.', so "." and ".." cannot pass.
func CheckPrincipal(s string) error { return check("principal", principalRE, s) }

// CheckRequestID returns an error unless s has the form of a request ID.
func CheckRequestID(s string) error { return check("request id", requestIDRE, s) }

func check(what string, re func() *regexp.Regexp, s string) error {
	if !re().MatchString(s) {
		return fmt.Errorf("%w: %s %q", ErrInvalidName, what, s)
	}
	return nil
}
