package approval_test

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/oidc"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
	"github.com/jit-ssh/jit-ssh/test/oidcstub"
)

// TestBreakGlassFollowUpOutlivesTheGrant: the requester cannot make the
// follow-up go away: not by ending the grant (cancel), not by letting it
// run out, not by commenting on it or editing it; it stays reviewable, the
// overdue block still applies, and an approver can still find it not
// justified.
func TestBreakGlassFollowUpOutlivesTheGrant(t *testing.T) {
	e := newBGEnv(t)
	a := e.authority(t)
	r := e.breakGlass(t, "alice")
	c, err := a.IssueCertificate(t.Context(), "alice", r.ID, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newKey(t)))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Review(t.Context(), "alice", r.ID, ca.ReviewComment, "all fine, trust me"); err != nil {
		t.Fatalf("alice's comment: %v", err)
	}
	reason := "INC-1: nothing to see"
	if _, err := e.svc.Edit(t.Context(), "alice", r.ID, 0, &reason); err == nil {
		t.Error("alice edited her break-glass grant")
	}
	if _, err := e.svc.Cancel(t.Context(), "alice", r.ID); err != nil {
		t.Fatalf("alice ending her grant: %v", err)
	}
	e.clk.advance(time.Hour)
	if err := e.svc.EndElapsedGrants(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := e.db.GetRequest(t.Context(), r.ID)
	if err != nil || got.FollowUp != ca.FollowUpNeedsReview {
		t.Fatalf("after a comment, a refused edit, cancel and an hour: %+v, %v; want the follow-up still needs_review", got, err)
	}
	list, err := e.svc.List(t.Context(), "bob", approval.ListFilter{Reviewable: true})
	if err != nil || len(list) != 1 || list[0].ID != r.ID {
		t.Fatalf("bob's reviewable list = %v, %v; want the ended break-glass grant", list, err)
	}
	e.clk.advance(23 * time.Hour)
	_, err = e.svc.BreakGlass(t.Context(), "alice", "prod-db", 0, "INC-2: again")
	checkErr(t, err, approval.ErrForbidden, approval.CodeFollowUpOverdue)
	got, err = e.svc.Review(t.Context(), "bob", r.ID, ca.ReviewDeny, "no incident on record")
	if err != nil || got.FollowUp != ca.FollowUpNotJustified {
		t.Fatalf("bob's DENY of the ended grant: %+v, %v", got, err)
	}
	if cert, err := e.db.GetCertificate(t.Context(), c.Serial); err != nil || cert.RevokedAt.IsZero() {
		t.Errorf("certificate %d of the grant not revoked: %+v, %v", c.Serial, cert, err)
	}
	verifyLedger(t, e.db)
}

// TestWorkloadCannotBreakGlass: a CI job is in no team, so it cannot break
// glass even for a group whose workloads it matches; nothing is recorded
// but the refusal.
func TestWorkloadCannotBreakGlass(t *testing.T) {
	stub := oidcstub.New(t)
	clk := &testClock{t: t0}
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"), sqlite.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	web := &approval.Policy{Group: "web", Principals: []string{"deploy"}, Requesters: []string{"oncall"}, Approvers: []string{"sre-leads"},
		ApprovalsRequired: 1, MaxDuration: time.Hour, CertTTL: 5 * time.Minute,
		Workloads:  []approval.WorkloadRule{{Repository: "acme/web", Ref: "refs/heads/main"}},
		BreakGlass: &approval.BreakGlassPolicy{Teams: []string{"oncall"}, MaxDuration: 30 * time.Minute, ReviewWithin: time.Hour, ReasonPattern: regexp.MustCompile(`.`)}}
	svc := approval.NewService(db, staticDirectory(), []*approval.Policy{web}, []string{"security"},
		approval.WithClock(clk.now), approval.WithWorkloadVerifier(oidc.New(stub.URL, oidcstub.DefaultAudience)))
	ctx, login, err := svc.AuthenticateWorkload(t.Context(), stub.Token(nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.BreakGlass(ctx, login, "web", 0, "INC-9: deploy broke prod")
	checkErr(t, err, approval.ErrForbidden, approval.CodeNotABreakGlassTeam)
	if reqs, err := db.ListRequests(t.Context(), ca.RequestFilter{Requester: login}); err != nil || len(reqs) != 0 {
		t.Errorf("requests of %s after the refusal: %v, %v; want none", login, reqs, err)
	}
}
