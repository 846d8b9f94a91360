package static_test

import (
	"errors"
	"testing"

	"github.com/jit-ssh/jit-ssh/approval/static"
	"github.com/jit-ssh/jit-ssh/ca"
)

func TestDirectory(t *testing.T) {
	d := static.New(map[string]static.User{
		"alice": {Token: "tok-alice", Teams: []string{"backend"}},
		"ghost": {Token: "", Teams: []string{"sre"}}, // no token: can never sign in
	})
	for _, tt := range []struct {
		token, want string
		wantErr     error
	}{
		{"tok-alice", "alice", nil},
		{"tok-alic", "", ca.ErrUnauthenticated},
		{"", "", ca.ErrUnauthenticated},
	} {
		got, err := d.Authenticate(t.Context(), tt.token)
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("Authenticate(%q) = %q, %v; want %q, %v", tt.token, got, err, tt.want, tt.wantErr)
		}
	}
	for _, tt := range []struct {
		login, team string
		want        bool
	}{
		{"alice", "backend", true},
		{"alice", "sre", false},
		{"nobody", "backend", false},
	} {
		if got, err := d.IsMember(t.Context(), tt.login, tt.team); got != tt.want || err != nil {
			t.Errorf("IsMember(%q, %q) = %v, %v; want %v", tt.login, tt.team, got, err, tt.want)
		}
	}
}
