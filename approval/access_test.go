package approval_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/github"
	"github.com/jit-ssh/jit-ssh/approval/static"
	"github.com/jit-ssh/jit-ssh/test/ghstub"
)

const (
	ghOrg         = ghstub.AcmeOrg
	ghServerToken = ghstub.AcmeServerToken
)

func newGH(t *testing.T, gh *ghstub.Server, opts ...github.Option) *github.Directory {
	t.Helper()
	d, err := github.New(gh.URL, ghOrg, ghServerToken, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestServiceFailsClosedOnGitHub: through the policy decision point, a
// GitHub outage is a 503-kind error that names GitHub.
func TestServiceFailsClosedOnGitHub(t *testing.T) {
	gh := ghstub.NewAcme(t)
	d := newGH(t, gh, github.WithCacheTTL(0))
	svc := approval.NewService(nil, d, nil, []string{"security"})
	gh.Fail(ghstub.Fail500)
	_, err := svc.Authenticate(context.Background(), "gho_alice")
	var ae *approval.Error
	if !errors.As(err, &ae) || !errors.Is(ae.Kind, approval.ErrUnavailable) || !strings.Contains(ae.Message, "github") {
		t.Fatalf("Service.Authenticate with GitHub failing = %v; want an unavailable error naming github", err)
	}
	gh.Fail(ghstub.FailNone)
	if _, err := svc.IsAuditor(context.Background(), "alice"); err != nil {
		t.Fatalf("IsAuditor after recovery: %v", err)
	}
}

// TestAuthenticateRefusesSystemActor: no identity, from GitHub or a static
// directory, may take the login of the server's own events (finding 9 of
// issue 13): its actions would read as the server's and it would see the
// server's events as its own. Other logins are unaffected.
func TestAuthenticateRefusesSystemActor(t *testing.T) {
	gh := ghstub.NewAcme(t)
	gh.AddUser("jit-ssh", "gho_system")
	gh.AddUser("JIT-SSH", "gho_system_caps")
	static := static.New(map[string]static.User{
		"alice":   {Token: "tok-alice"},
		"jit-ssh": {Token: "tok-system"},
		"Jit-Ssh": {Token: "tok-system-caps"},
	})

	tests := []struct {
		name     string
		dir      approval.Directory
		token    string
		reserved bool
	}{
		{"github jit-ssh", newGH(t, gh), "gho_system", true},
		{"github JIT-SSH", newGH(t, gh), "gho_system_caps", true},
		{"github alice", newGH(t, gh), "gho_alice", false},
		{"static jit-ssh", static, "tok-system", true},
		{"static Jit-Ssh", static, "tok-system-caps", true},
		{"static alice", static, "tok-alice", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := approval.NewService(nil, tt.dir, nil, nil)
			login, err := svc.Authenticate(t.Context(), tt.token)
			if !tt.reserved {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				return
			}
			var ae *approval.Error
			if !errors.As(err, &ae) || !errors.Is(err, approval.ErrForbidden) || ae.Code != "reserved_login" || !strings.Contains(ae.Message, "reserved") {
				t.Fatalf("Authenticate = %q, %v; want a reserved_login refusal", login, err)
			}
		})
	}
}

// The GitHub identity provider is a Directory; it cannot say so itself
// without importing approval.
var _ approval.Directory = (*github.Directory)(nil)
