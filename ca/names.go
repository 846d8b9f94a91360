package ca

import (
	"fmt"
	"strings"
)

// Names that end up in sshd files, certificate KeyIds or principals are
// checked before use. The checks deliberately exclude whitespace, commas,
// colons, quotes, slashes, NULs and non-ASCII, so no name can inject a
// second principal, a second KeyId field or a path.
//
// They are plain byte loops rather than regular expressions: every process
// of the single jit-ssh binary would otherwise compile the patterns (about
// 1.5 ms of a 30 ms login). names_test.go holds the patterns they are
// equivalent to and checks the two agree (FuzzNamesMatchPatterns).
//
//	login:      ^[A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38}$, at most 39 bytes
//	host group: ^[a-z0-9][a-z0-9._-]{0,62}$ (also team slugs)
//	principal:  ^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$
//	request id: ^r-[a-z2-7]{16}$

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlnum(c byte) bool { return isLower(c) || isUpper(c) || isDigit(c) }

// groupStart: what a host group may start with; isPunct: what else it and
// a principal may contain.
func groupStart(c byte) bool { return isLower(c) || isDigit(c) }
func isPunct(c byte) bool    { return c == '.' || c == '_' || c == '-' }

func validLogin(s string) bool {
	if len(s) == 0 || len(s) > maxLogin || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isAlnum(c):
		case c == '-' && s[i-1] != '-': // i > 0: s[0] is not '-'
		default:
			return false
		}
	}
	return true
}

func validGroup(s string) bool {
	if len(s) == 0 || len(s) > 63 || !groupStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !groupStart(s[i]) && !isPunct(s[i]) {
			return false
		}
	}
	return true
}

func validPrincipal(s string) bool {
	if len(s) == 0 || len(s) > 64 || (!isAlnum(s[0]) && s[0] != '_') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isAlnum(s[i]) && !isPunct(s[i]) {
			return false
		}
	}
	return true
}

func validRequestID(s string) bool {
	if len(s) != 18 || s[:2] != "r-" {
		return false
	}
	for i := 2; i < len(s); i++ {
		if c := s[i]; !isLower(c) && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// maxLogin is GitHub's limit on login length. The pattern alone would
// allow more, since each "-x" pair counts once.
const maxLogin = 39

// SystemActor is the actor of the events the server records on its own
// (a request expiring, a grant ending). No identity may have this login:
// its actions would read as the server's, and it would see the server's
// events as its own (see IsReservedLogin).
const SystemActor = "jit-ssh"

// IsReservedLogin reports whether login is SystemActor or BreakGlassBy, in
// any case (GitHub logins are case-insensitive): the identity layer refuses
// such an identity and static configuration may not declare one. Reserving
// BreakGlassBy keeps a KeyId's by=break-glass from ever naming a person.
func IsReservedLogin(login string) bool {
	return strings.EqualFold(login, SystemActor) || strings.EqualFold(login, BreakGlassBy)
}

// CheckLogin returns an error unless s is a valid user login.
func CheckLogin(s string) error {
	if len(s) > maxLogin {
		return fmt.Errorf("%w: login %q is longer than %d characters", ErrInvalidName, s, maxLogin)
	}
	return check("login", validLogin, s)
}

// CheckGroup returns an error unless s is a valid host group or team name.
func CheckGroup(s string) error { return check("host group", validGroup, s) }

// CheckTeam returns an error unless s is a valid team slug.
func CheckTeam(s string) error { return check("team", validGroup, s) }

// CheckPrincipal returns an error unless s is a valid certificate principal
// or Unix login name.
// The pattern refuses a leading '.', so "." and ".." cannot pass.
func CheckPrincipal(s string) error { return check("principal", validPrincipal, s) }

// CheckRequestID returns an error unless s has the form of a request ID.
func CheckRequestID(s string) error { return check("request id", validRequestID, s) }

func check(what string, valid func(string) bool, s string) error {
	if !valid(s) {
		return fmt.Errorf("%w: %s %q", ErrInvalidName, what, s)
	}
	return nil
}
