package approval_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/oidc"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
	"github.com/jit-ssh/jit-ssh/test/oidcstub"
)

// newWorkloadEnv is newEnv with the group web (one approval from
// sre-leads, for acme/web's production deploys from main) and workload
// tokens verified against a stand-in issuer.
func newWorkloadEnv(t *testing.T) (*env, *oidcstub.Server) {
	t.Helper()
	stub := oidcstub.New(t)
	clk := &testClock{t: t0}
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"), sqlite.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	web := &approval.Policy{Group: "web", Principals: []string{"deploy"}, Approvers: []string{"sre-leads"}, ApprovalsRequired: 1,
		MaxDuration: time.Hour, CertTTL: 5 * time.Minute,
		Workloads: []approval.WorkloadRule{{Repository: "acme/web", Ref: "refs/heads/main", Environment: "production"}}}
	svc := approval.NewService(db, staticDirectory(), append(testPolicies(), web), []string{"security"},
		approval.WithClock(clk.now), approval.WithPendingTTL(pendingTTL),
		approval.WithWorkloadVerifier(oidc.New(stub.URL, oidcstub.DefaultAudience)))
	return &env{svc: svc, db: db, clk: clk}, stub
}

// as authenticates a fresh token with claims over the stub's defaults.
func as(t *testing.T, e *env, stub *oidcstub.Server, over map[string]any) (context.Context, string) {
	t.Helper()
	ctx, login, err := e.svc.AuthenticateWorkload(t.Context(), stub.Token(over))
	if err != nil {
		t.Fatalf("AuthenticateWorkload: %v", err)
	}
	return ctx, login
}

// A workload's request is decided by the claims of the call's own token:
// another job of the same run (another environment) may not be issued
// certificates under the production job's grant, and the workload needs
// the group's approval like a person.
func TestWorkloadFollowsThePolicy(t *testing.T) {
	e, stub := newWorkloadEnv(t)
	ctx, login := as(t, e, stub, nil)
	if login != "gha:acme/web:run=4242" {
		t.Fatalf("login %q", login)
	}
	r, err := e.svc.Create(ctx, login, "web", 10*time.Minute, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != ca.StatePending || !strings.HasPrefix(r.Reason, "GitHub Actions run 4242 of acme/web") {
		t.Fatalf("request %+v: want pending, with the run as its reason", r)
	}
	ctx, _ = as(t, e, stub, nil)
	if _, err := e.svc.Authorize(ctx, login, r.ID); !isCode(err, approval.CodeRequestNotApproved) {
		t.Fatalf("Authorize before the approval: %v", err)
	}
	// A workload is no approver, even of its own group's requests.
	ctx, _ = as(t, e, stub, nil)
	if _, err := e.svc.Review(ctx, login, r.ID, ca.ReviewApprove, ""); err == nil {
		t.Fatal("a workload approved a request")
	}
	e.review(t, "bob", r.ID, ca.ReviewApprove)

	staging, sameRun := as(t, e, stub, map[string]any{"environment": "staging"})
	if sameRun != login {
		t.Fatalf("the staging job of the run is %q", sameRun)
	}
	_, err = e.svc.Authorize(staging, sameRun, r.ID)
	if !isCode(err, approval.CodeNotARequester) || !strings.Contains(err.Error(), "repo:acme/web:environment:staging") {
		t.Fatalf("Authorize for the run's staging job: %v, want not_a_requester naming it", err)
	}
	ctx, _ = as(t, e, stub, nil)
	g, err := e.svc.Authorize(ctx, login, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if g.User != login || len(g.Approvers) != 1 || g.Approvers[0] != "bob" {
		t.Errorf("grant %+v", g)
	}
	// A login without the verified claims (no token behind this call) is
	// no workload.
	if _, err := e.svc.Authorize(t.Context(), login, r.ID); !isCode(err, approval.CodeNotARequester) {
		t.Errorf("Authorize without a verified token: %v", err)
	}
}

// A group only workloads may request refuses people, saying so.
func TestWorkloadOnlyGroupRefusesPeople(t *testing.T) {
	e, _ := newWorkloadEnv(t)
	_, err := e.svc.Create(t.Context(), "alice", "web", 10*time.Minute, "INC-1")
	if !isCode(err, approval.CodeNotARequester) || !strings.Contains(err.Error(), "only CI workloads") {
		t.Fatalf("alice requesting web: %v", err)
	}
}

func TestWorkloadRefusedWithoutVerifier(t *testing.T) {
	e := newEnv(t, nil)
	_, _, err := e.svc.AuthenticateWorkload(t.Context(), "x.y.z")
	if !errors.Is(err, approval.ErrUnauthenticated) || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("got %v", err)
	}
}

func TestWorkloadTokenRefusalsAndOutage(t *testing.T) {
	e, stub := newWorkloadEnv(t)
	_, _, err := e.svc.AuthenticateWorkload(t.Context(), stub.Token(map[string]any{"aud": "other"}))
	if !errors.Is(err, approval.ErrUnauthenticated) || !strings.HasPrefix(err.Error(), "the GitHub Actions ID token was refused: expected audience") {
		t.Errorf("wrong audience: %v", err)
	}
	// The issuer rotated its key and its JWKS is down: the new key cannot
	// be fetched, so nothing can be decided.
	if err := stub.Rotate(false); err != nil {
		t.Fatal(err)
	}
	stub.FailJWKS(true)
	_, _, err = e.svc.AuthenticateWorkload(t.Context(), stub.Token(nil))
	if !errors.Is(err, approval.ErrUnavailable) || !isCode(err, approval.CodeIdentityUnavailable) {
		t.Errorf("issuer down: %v, want ErrUnavailable", err)
	}
}

func isCode(err error, code string) bool {
	var ae *approval.Error
	return errors.As(err, &ae) && ae.Code == code
}
