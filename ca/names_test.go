package ca_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/ca"
)

// injected are names that would let a crafted login, group or approver add a
// field to a KeyId, a second principal, a path or a line to an sshd file.
var injected = []struct{ name, s string }{
	{"empty", ""},
	{"newline", "alice\nbob"},
	{"carriage return", "alice\r"},
	{"comma", "alice,bob"},
	{"colon", "alice:group=prod"},
	{"equals", "user=alice"},
	{"space", "alice bob"},
	{"tab", "alice\tbob"},
	{"NUL", "alice\x00"},
	{"non-ASCII", "alicé"},
	{"homoglyph", "аlice"}, // Cyrillic a
	{"slash", "../alice"},
	{"quote", `alice"`},
}

func TestCheckNames(t *testing.T) {
	tests := []struct {
		what  string
		check func(string) error
		good  []string
		bad   []string
	}{
		{
			what:  "login",
			check: ca.CheckLogin,
			good:  []string{"alice", "a", "Alice-Smith", "a1-b2-c3", "A" + strings.Repeat("b", 38)},
			bad:   []string{"-alice", "alice-", "al--ice", "al_ice", "al.ice", "A" + strings.Repeat("b", 39), "-"},
		},
		{
			what:  "group",
			check: ca.CheckGroup,
			good:  []string{"prod-db", "staging", "eu.prod_db-2", "0", strings.Repeat("a", 63)},
			bad:   []string{"Prod", "-prod", ".prod", "_prod", strings.Repeat("a", 64)},
		},
		{
			what:  "team",
			check: ca.CheckTeam,
			good:  []string{"sre-leads", "backend", "security"},
			bad:   []string{"SRE", "sre leads"},
		},
		{
			what:  "principal",
			check: ca.CheckPrincipal,
			good:  []string{"prod-db", "root", "_svc", "deploy.user", "Admin_1", strings.Repeat("p", 64)},
			bad:   []string{".", "..", ".hidden", "-rf", "a/b", strings.Repeat("p", 65)},
		},
		{
			what:  "request id",
			check: ca.CheckRequestID,
			good:  []string{"r-abcdefghijklmnop", "r-2345672345672345"},
			bad:   []string{"r-abcdefghijklmno", "r-abcdefghijklmnopq", "r-ABCDEFGHIJKLMNOP", "r-abcdefghijklmn01", "x-abcdefghijklmnop"},
		},
	}
	for _, tt := range tests {
		for _, s := range tt.good {
			t.Run(tt.what+"/good/"+s, func(t *testing.T) {
				if err := tt.check(s); err != nil {
					t.Errorf("Check%s(%q) = %v, want nil", tt.what, s, err)
				}
			})
		}
		bad := append([]string(nil), tt.bad...)
		for _, in := range injected {
			bad = append(bad, in.s)
		}
		for _, s := range bad {
			t.Run(tt.what+"/bad/"+s, func(t *testing.T) {
				err := tt.check(s)
				if !errors.Is(err, ca.ErrInvalidName) {
					t.Errorf("check %s %q = %v, want an error wrapping ca.ErrInvalidName", tt.what, s, err)
				}
			})
		}
	}
}
