package ca_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/ca"
)

// The patterns the name checks implement (see ca/names.go); the checks are
// byte loops so that no process compiles these at start-up.
var nameOracles = []struct {
	what  string
	check func(string) error
	re    *regexp.Regexp
	max   int // extra length limit beyond the pattern; 0: none
}{
	{"login", ca.CheckLogin, regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38}$`), 39},
	{"host group", ca.CheckGroup, regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`), 0},
	{"team", ca.CheckTeam, regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`), 0},
	{"principal", ca.CheckPrincipal, regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`), 0},
	{"request id", ca.CheckRequestID, regexp.MustCompile(`^r-[a-z2-7]{16}$`), 0},
}

func agreeWithPatterns(t *testing.T, s string) {
	t.Helper()
	for _, o := range nameOracles {
		want := o.re.MatchString(s) && (o.max == 0 || len(s) <= o.max)
		if got := o.check(s) == nil; got != want {
			t.Errorf("%s check of %q accepts = %v, the pattern %s says %v", o.what, s, got, o.re, want)
		}
	}
}

// TestNamesMatchPatterns compares the checks with their patterns on every
// string of up to three bytes over an alphabet with each character class
// at its edges, and on edge lengths and known tricky names.
func TestNamesMatchPatterns(t *testing.T) {
	alphabet := []byte("aAzZ09_.-r28/ :\x00\xc3\x80\n,")
	var walk func(prefix string, depth int)
	walk = func(prefix string, depth int) {
		agreeWithPatterns(t, prefix)
		if depth == 0 {
			return
		}
		for _, c := range alphabet {
			walk(prefix+string(c), depth-1)
		}
	}
	walk("", 3)
	for _, s := range []string{
		"r-abcdefghijklmnop", "r-abcdefghijklmno8", "r-abcdefghijklmn2", "R-abcdefghijklmnop", "r-abcdefghijklmnopq",
		"a-b-c", "a--b", "-ab", "ab-", strings.Repeat("a", 38) + "-", strings.Repeat("ab-", 13), strings.Repeat("a-", 19) + "a",
		strings.Repeat("a", 39), strings.Repeat("a", 40), strings.Repeat("g", 63), strings.Repeat("g", 64),
		strings.Repeat("p", 64), strings.Repeat("p", 65), "_svc", ".hidden", "prod.db_2", "ålice", "Prod",
	} {
		agreeWithPatterns(t, s)
	}
}

func FuzzNamesMatchPatterns(f *testing.F) {
	for _, s := range []string{"alice", "a-b", "r-abcdefghijklmnop", "prod.db_2", "_x", "a--b", strings.Repeat("a", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { agreeWithPatterns(t, s) })
}
