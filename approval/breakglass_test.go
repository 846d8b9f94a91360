package approval_test

import (
	"context"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// notes records the notifications a service sends.
type notes struct {
	mu  sync.Mutex
	got []ca.Notification
}

func (n *notes) Notify(_ context.Context, x ca.Notification) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, x)
}

func (n *notes) kinds() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, x := range n.got {
		out = append(out, x.Kind)
	}
	return out
}

func (n *notes) last() ca.Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.got[len(n.got)-1]
}

// bgPolicies: prod-db allows break glass for oncall (30m, reviewed within
// 24h, the reason naming an incident) and is open only in office hours;
// db-one has no break_glass policy.
func bgPolicies() []*approval.Policy {
	return []*approval.Policy{
		{Group: "prod-db", Principals: []string{"prod-db"}, Requesters: []string{"backend"}, Approvers: []string{"sre-leads"},
			ApprovalsRequired: 1, MaxDuration: 2 * time.Hour, CertTTL: 5 * time.Minute, AllowedHours: mustHours("Mon-Fri 07:00-20:00 UTC"),
			BreakGlass: &approval.BreakGlassPolicy{Teams: []string{"oncall"}, MaxDuration: 30 * time.Minute, ReviewWithin: 24 * time.Hour,
				ReasonPattern: regexp.MustCompile(`^INC-[0-9]+`)}},
		{Group: "db-one", Principals: []string{"db-one"}, Requesters: []string{"backend"}, Approvers: []string{"sre-leads"},
			ApprovalsRequired: 1, MaxDuration: time.Hour, CertTTL: 5 * time.Minute},
	}
}

type bgEnv struct {
	*env
	dir   *mutableDir
	notes *notes
}

// newBGEnv: alice and sam (a requester who also approves) are on call;
// mallory is on call but no requester; erin is a requester not on call.
func newBGEnv(t *testing.T) *bgEnv {
	t.Helper()
	clk := &testClock{t: t0}
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"), sqlite.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir := newMutableDir()
	for _, u := range []string{"alice", "sam", "mallory"} {
		dir.add(u, "oncall")
	}
	n := &notes{}
	svc := approval.NewService(db, dir, bgPolicies(), []string{"security"},
		approval.WithClock(clk.now), approval.WithPendingTTL(pendingTTL), approval.WithNotifier(n))
	return &bgEnv{env: &env{svc: svc, db: db, clk: clk}, dir: dir, notes: n}
}

func (e *bgEnv) breakGlass(t *testing.T, login string) *ca.Request {
	t.Helper()
	r, err := e.svc.BreakGlass(t.Context(), login, "prod-db", 0, "INC-42: primary down")
	if err != nil {
		t.Fatalf("BreakGlass(%s): %v", login, err)
	}
	return r
}

func (e *bgEnv) eventTypes(t *testing.T, id string) []string {
	t.Helper()
	var out []string
	err := e.db.ListEvents(t.Context(), ca.EventFilter{RequestID: id}, func(ev *ca.Event) error {
		out = append(out, ev.Type)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBreakGlassGrants: at 3 a.m. on a Saturday (outside allowed_hours), an
// on-call requester gets a grant at once, for the break-glass maximum,
// recorded with its own event, needs_review until the review is due, every
// approver told at once and urgently; its certificates say by=break-glass.
func TestBreakGlassGrants(t *testing.T) {
	e := newBGEnv(t)
	e.clk.set(time.Date(2025, 6, 7, 3, 0, 0, 0, time.UTC))
	now := e.clk.now()
	r := e.breakGlass(t, "alice")
	if r.State != ca.StateApproved || !r.BreakGlass || r.FollowUp != ca.FollowUpNeedsReview || !r.ApprovedAt.Equal(now) ||
		r.Duration != 30*time.Minute || !r.ReviewDueAt.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("break-glass request = %+v; want approved now for 30m, needs_review due in 24h", r)
	}
	if got := e.eventTypes(t, r.ID); !slices.Equal(got, []string{ca.EventRequestCreated, ca.EventBreakGlass}) {
		t.Errorf("events = %v; want request.created, grant.break_glass (not grant.started)", got)
	}
	if got := e.notes.kinds(); !slices.Equal(got, []string{ca.NotifyBreakGlass}) {
		t.Fatalf("notifications = %v; want one %s", got, ca.NotifyBreakGlass)
	}
	if n := e.notes.last(); !n.Urgent || !slices.Equal(n.ApproverTeams, []string{"sre-leads"}) {
		t.Errorf("notification urgent=%v teams=%v; want urgent, to sre-leads", n.Urgent, n.ApproverTeams)
	}
	cert, err := e.authority(t).IssueCertificate(t.Context(), "alice", r.ID, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newKey(t)))))
	if err != nil {
		t.Fatalf("IssueCertificate under the break-glass grant: %v", err)
	}
	if want := "jit-ssh:user=alice:group=prod-db:req=" + r.ID + ":by=break-glass"; cert.KeyID != want || len(cert.Approvers) != 0 {
		t.Errorf("KeyId %q, approvers %v; want %q and none", cert.KeyID, cert.Approvers, want)
	}
	if !cert.ValidBefore.Equal(now.Add(5 * time.Minute)) {
		t.Errorf("ValidBefore = %s; want cert_ttl (5m) from now", cert.ValidBefore)
	}
	verifyLedger(t, e.db)
}

// TestBreakGlassRefusals: a non-member, a group without break glass, a
// missing or non-matching reason, a duration over the cap; each refused
// with its code, and none leaves a request.
func TestBreakGlassRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, login, group, reason string
		d                          time.Duration
		kind                       error
		code                       string
	}{
		{"requester not on call", "erin", "prod-db", "INC-1: x", 0, approval.ErrForbidden, approval.CodeNotABreakGlassTeam},
		{"on call but no requester", "mallory", "prod-db", "INC-1: x", 0, approval.ErrForbidden, approval.CodeNotABreakGlassTeam},
		{"approver not on call", "bob", "prod-db", "INC-1: x", 0, approval.ErrForbidden, approval.CodeNotABreakGlassTeam},
		{"no break_glass policy", "alice", "db-one", "INC-1: x", 0, approval.ErrForbidden, approval.CodeBreakGlassNotAllowed},
		{"no reason", "alice", "prod-db", " ", 0, approval.ErrInvalid, approval.CodeReasonRequired},
		{"reason without incident", "alice", "prod-db", "primary down", 0, approval.ErrInvalid, approval.CodeReasonPattern},
		{"over the cap", "alice", "prod-db", "INC-1: x", 31 * time.Minute, approval.ErrInvalid, approval.CodeInvalidDuration},
		{"under a minute", "alice", "prod-db", "INC-1: x", time.Second, approval.ErrInvalid, approval.CodeInvalidDuration},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newBGEnv(t)
			_, err := e.svc.BreakGlass(t.Context(), tc.login, tc.group, tc.d, tc.reason)
			checkErr(t, err, tc.kind, tc.code)
			if reqs, _ := e.db.ListRequests(t.Context(), ca.RequestFilter{}); len(reqs) != 0 {
				t.Errorf("a refused break glass left %d request(s)", len(reqs))
			}
			if len(e.notes.kinds()) != 0 {
				t.Errorf("a refused break glass notified: %v", e.notes.kinds())
			}
		})
	}
	// Exactly the cap is allowed.
	e := newBGEnv(t)
	if _, err := e.svc.BreakGlass(t.Context(), "alice", "prod-db", 30*time.Minute, "INC-7"); err != nil {
		t.Errorf("BreakGlass for exactly max_duration: %v", err)
	}
}

// TestBreakGlassSelfReview: the requester cannot review the follow-up of
// their own break-glass grant, even as an approver of the group; a
// non-approver cannot either. It stays needs_review.
func TestBreakGlassSelfReview(t *testing.T) {
	e := newBGEnv(t)
	r := e.breakGlass(t, "sam") // sam is also in sre-leads
	_, err := e.svc.Review(t.Context(), "sam", r.ID, ca.ReviewApprove, "")
	checkErr(t, err, approval.ErrForbidden, approval.CodeSelfReview)
	_, err = e.svc.Review(t.Context(), "erin", r.ID, ca.ReviewApprove, "")
	checkErr(t, err, approval.ErrForbidden, approval.CodeNotAnApprover)
	if got, _ := e.db.GetRequest(t.Context(), r.ID); got.FollowUp != ca.FollowUpNeedsReview || len(got.Reviews) != 0 {
		t.Errorf("after refused reviews: follow-up %q, %d reviews; want needs_review, none", got.FollowUp, len(got.Reviews))
	}
}

// TestBreakGlassJustified: an approver's APPROVE records the follow-up as
// justified; the grant keeps running and its certificates stay good; a
// second review is refused; it leaves the reviewable list.
func TestBreakGlassJustified(t *testing.T) {
	e := newBGEnv(t)
	a := e.authority(t)
	r := e.breakGlass(t, "alice")
	if _, err := a.IssueCertificate(t.Context(), "alice", r.ID, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newKey(t))))); err != nil {
		t.Fatal(err)
	}
	list, err := e.svc.List(t.Context(), "bob", approval.ListFilter{Reviewable: true})
	if err != nil || len(list) != 1 || list[0].ID != r.ID {
		t.Fatalf("bob's reviewable list = %v, %v; want the break-glass grant", list, err)
	}
	if mine, _ := e.svc.List(t.Context(), "alice", approval.ListFilter{Reviewable: true}); len(mine) != 0 {
		t.Errorf("alice's own follow-up is reviewable by her: %v", mine)
	}
	e.clk.advance(10 * time.Minute)
	got := e.review(t, "bob", r.ID, ca.ReviewApprove)
	if got.FollowUp != ca.FollowUpJustified || !got.FollowedUpAt.Equal(e.clk.now()) || !got.OpenAt(e.clk.now()) {
		t.Errorf("after APPROVE: follow-up %q at %s, open %v; want justified now, still open", got.FollowUp, got.FollowedUpAt, got.OpenAt(e.clk.now()))
	}
	if n := e.notes.last(); n.Kind != ca.NotifyJustified || n.Urgent {
		t.Errorf("notification %s urgent=%v; want %s, not urgent", n.Kind, n.Urgent, ca.NotifyJustified)
	}
	_, err = e.svc.Review(t.Context(), "dave", r.ID, ca.ReviewDeny, "too late")
	checkErr(t, err, approval.ErrConflict, approval.CodeFollowUpRecorded)
	if list, _ := e.svc.List(t.Context(), "bob", approval.ListFilter{Reviewable: true}); len(list) != 0 {
		t.Errorf("a reviewed follow-up is still reviewable: %v", list)
	}
	if _, krlVersion, _ := a.KRL(t.Context()); krlVersion != 0 {
		t.Errorf("a justified follow-up revoked something (KRL version %d)", krlVersion)
	}
	verifyLedger(t, e.db)
}

// TestBreakGlassNotJustified: REQUEST_CHANGES or DENY records not
// justified, ends the open grant, revokes every unexpired certificate of it
// at once (the KRL lists them), refuses further issuance and notifies again,
// urgently.
func TestBreakGlassNotJustified(t *testing.T) {
	for _, event := range []string{ca.ReviewRequestChanges, ca.ReviewDeny} {
		t.Run(event, func(t *testing.T) {
			e := newBGEnv(t)
			a := e.authority(t)
			r := e.breakGlass(t, "alice")
			var serials []uint64
			for range 2 {
				c, err := a.IssueCertificate(t.Context(), "alice", r.ID, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newKey(t)))))
				if err != nil {
					t.Fatal(err)
				}
				serials = append(serials, c.Serial)
				e.clk.advance(time.Minute)
			}
			got, err := e.svc.Review(t.Context(), "bob", r.ID, event, "no incident on record")
			if err != nil {
				t.Fatalf("Review(%s): %v", event, err)
			}
			now := e.clk.now()
			if got.FollowUp != ca.FollowUpNotJustified || got.OpenAt(now) || !got.GrantEnds().Equal(now) {
				t.Errorf("after %s: follow-up %q, open %v, ends %s; want not_justified, ended now", event, got.FollowUp, got.OpenAt(now), got.GrantEnds())
			}
			for _, s := range serials {
				c, err := e.db.GetCertificate(t.Context(), s)
				if err != nil || c.RevokedAt.IsZero() {
					t.Errorf("certificate %d not revoked: %+v, %v", s, c, err)
				}
			}
			n := e.notes.last()
			if n.Kind != ca.NotifyNotJustified || !n.Urgent || len(n.Revoked) != 2 {
				t.Errorf("notification %s urgent=%v revoked=%v; want %s, urgent, both serials", n.Kind, n.Urgent, n.Revoked, ca.NotifyNotJustified)
			}
			_, err = a.IssueCertificate(t.Context(), "alice", r.ID, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newKey(t)))))
			checkErr(t, err, approval.ErrConflict, approval.CodeGrantEnded)
			if _, v, err := a.KRL(t.Context()); err != nil || v == 0 {
				t.Errorf("KRL version %d, %v; want the revocations in it", v, err)
			}
			verifyLedger(t, e.db)
		})
	}
}

// TestBreakGlassOverdueBlocks: while a follow-up is past review_within,
// the person cannot break glass again, in any group's name, and is told
// which request is overdue; others still can; once reviewed, they can.
func TestBreakGlassOverdueBlocks(t *testing.T) {
	e := newBGEnv(t)
	first := e.breakGlass(t, "alice")
	// Not yet due: a second break glass is allowed (the first is still
	// within review_within).
	e.clk.advance(23 * time.Hour)
	e.breakGlass(t, "alice")
	e.clk.advance(time.Hour) // exactly due: overdue
	_, err := e.svc.BreakGlass(t.Context(), "alice", "prod-db", 0, "INC-43: again")
	checkErr(t, err, approval.ErrForbidden, approval.CodeFollowUpOverdue)
	if err == nil || !strings.Contains(err.Error(), first.ID) {
		t.Errorf("refusal %q does not name the overdue request %s", err, first.ID)
	}
	refused := e.refusalEvents(t)
	if len(refused) == 0 || refused[len(refused)-1].Data["code"] != approval.CodeFollowUpOverdue {
		t.Errorf("the refusal is not recorded: %v", refused)
	}
	e.breakGlass(t, "sam") // someone else is not blocked
	e.review(t, "bob", first.ID, ca.ReviewApprove)
	if _, err := e.svc.BreakGlass(t.Context(), "alice", "prod-db", 0, "INC-44"); err != nil {
		t.Errorf("break glass after the overdue follow-up was reviewed: %v", err)
	}
}

// TestBreakGlassAuthorizeRechecks: a break-glass grant's certificates need
// the requester still on call.
func TestBreakGlassAuthorizeRechecks(t *testing.T) {
	e := newBGEnv(t)
	r := e.breakGlass(t, "alice")
	e.dir.remove("alice", "oncall")
	_, err := e.svc.Authorize(t.Context(), "alice", r.ID)
	checkErr(t, err, approval.ErrForbidden, approval.CodeNotABreakGlassTeam)
}

// TestBreakGlassOverdueBlocksPastTheListLimit: the overdue block sees an
// overdue follow-up however many newer break-glass grants the requester
// has. The check once listed the newest 1000 open follow-ups only, so
// breaking glass a thousand times within review_within pushed the overdue
// one out of the list and the block never applied.
func TestBreakGlassOverdueBlocksPastTheListLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("a thousand break-glass grants")
	}
	e := newBGEnv(t)
	first := e.breakGlass(t, "alice")
	for range 1000 {
		e.clk.advance(time.Second)
		e.breakGlass(t, "alice")
	}
	// The first is due now, none of the others yet.
	e.clk.advance(24*time.Hour - 1000*time.Second)
	_, err := e.svc.BreakGlass(t.Context(), "alice", "prod-db", 0, "INC-45: once more")
	checkErr(t, err, approval.ErrForbidden, approval.CodeFollowUpOverdue)
	if err == nil || !strings.Contains(err.Error(), first.ID) {
		t.Errorf("refusal %v does not name the overdue request %s", err, first.ID)
	}
}
