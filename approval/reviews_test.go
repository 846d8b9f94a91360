package approval_test

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
)

// step is one action in a review scenario and what must come of it.
type step struct {
	do       string // review, edit, cancel, get, sweep, advance
	who      string
	id       string // default: the scenario's request
	event    string
	body     string
	dur      time.Duration
	reason   *string
	wantKind error
	wantCode string
	state    string // the stored state after the step
	shown    string // the state the step returns, if not state (a read shows a due change it does not record)
}

func approve(who string) step { return step{do: "review", who: who, event: ca.ReviewApprove} }
func changes(who string) step {
	return step{do: "review", who: who, event: ca.ReviewRequestChanges, body: "use the read replica"}
}
func comment(who string) step {
	return step{do: "review", who: who, event: ca.ReviewComment, body: "which table?"}
}
func deny(who string) step {
	return step{do: "review", who: who, event: ca.ReviewDeny, body: "change freeze"}
}
func editReason(who string) step {
	r := "INC-42: replica lag, read only"
	return step{do: "edit", who: who, reason: &r}
}
func editDuration(who string, d time.Duration) step { return step{do: "edit", who: who, dur: d} }
func cancel(who string) step                        { return step{do: "cancel", who: who} }
func get(who string) step                           { return step{do: "get", who: who} }
func advance(d time.Duration) step                  { return step{do: "advance", dur: d} }
func sweep() step                                   { return step{do: "sweep"} }

func (s step) is(state string) step    { s.state = state; return s }
func (s step) shows(state string) step { s.shown = state; return s }
func (s step) fails(kind error, code string) step {
	s.wantKind, s.wantCode = kind, code
	return s
}
func (s step) withBody(b string) step { s.body = b; return s }

const (
	pending   = ca.StatePending
	approved  = ca.StateApproved
	denied    = ca.StateDenied
	expired   = ca.StateExpired
	cancelled = ca.StateCancelled
)

func TestReviewRules(t *testing.T) {
	forbidden, conflict, invalid, notFound := approval.ErrForbidden, approval.ErrConflict, approval.ErrInvalid, approval.ErrNotFound
	tests := []struct {
		name      string
		group     string // default prod-db: 2 approvals from sre-leads
		requester string // default alice
		steps     []step
	}{
		{name: "two approvals approve", steps: []step{
			approve("bob").is(pending),
			approve("dave").is(approved),
		}},
		{name: "one approval is enough when one is required", group: "db-one", steps: []step{
			approve("bob").is(approved),
		}},
		{name: "the same approver twice counts once", steps: []step{
			approve("bob").is(pending),
			approve("bob").is(pending),
			approve("dave").is(approved),
		}},
		{name: "self-approval is refused even for an approver", requester: "sam", steps: []step{
			approve("sam").fails(forbidden, "self_review").is(pending),
			changes("sam").fails(forbidden, "self_review").is(pending),
			deny("sam").fails(forbidden, "self_review").is(pending),
			approve("bob").is(pending), // sam's refused approval did not count
			approve("dave").is(approved),
		}},
		{name: "a non-approver's approval is refused and does not count", steps: []step{
			approve("erin").fails(forbidden, "not_an_approver").is(pending),    // a peer who cannot read it is told why
			approve("mallory").fails(forbidden, "not_an_approver").is(pending), // in no team at all
			comment("mallory").fails(forbidden, "not_an_approver").is(pending),
			approve("carol").fails(forbidden, "not_an_approver").is(pending), // auditor sees, may not approve
			approve("bob").is(pending),
			approve("erin").fails(forbidden, "not_an_approver").is(pending), // and it still does not count
			approve("dave").is(approved),
		}},
		{name: "reviewing a request that does not exist", steps: []step{
			{do: "review", who: "bob", id: "r-aaaaaaaaaaaaaaaa", event: ca.ReviewApprove, wantKind: notFound, wantCode: "request_not_found", state: pending},
			{do: "review", who: "mallory", id: "r-aaaaaaaaaaaaaaaa", event: ca.ReviewApprove, wantKind: notFound, wantCode: "request_not_found", state: pending},
			{do: "review", who: "bob", id: "../etc", event: ca.ReviewApprove, wantKind: invalid, wantCode: "invalid_request_id", state: pending},
		}},
		{name: "the requester cannot approve without approver membership", steps: []step{
			approve("alice").fails(forbidden, "not_an_approver").is(pending),
		}},
		{name: "request changes blocks until that reviewer approves", steps: []step{
			changes("dave").is(pending),
			approve("bob").is(pending),
			approve("frank").is(pending), // two approvals, still blocked
			comment("dave").is(pending),  // a comment does not lift the block
			approve("dave").is(approved), // dave lifts his own block
		}},
		{name: "another approver cannot clear a block", steps: []step{
			changes("dave").is(pending),
			approve("bob").is(pending),
			approve("frank").is(pending),
			approve("bob").is(pending),
		}},
		{name: "a later change request withdraws an approval", steps: []step{
			approve("bob").is(pending),
			changes("bob").is(pending),
			approve("dave").is(pending),
			approve("frank").is(pending), // dave + frank, but bob blocks
			approve("bob").is(approved),
		}},
		{name: "comments neither approve nor block", steps: []step{
			comment("bob").is(pending),
			comment("alice").is(pending), // the requester may comment
			approve("dave").is(pending),
			approve("frank").is(approved),
		}},
		{name: "editing dismisses approvals", steps: []step{
			approve("bob").is(pending),
			editReason("alice").is(pending),
			approve("dave").is(pending), // bob's approval no longer counts
			approve("bob").is(approved), // until he approves again
		}},
		{name: "narrowing the duration dismisses approvals", steps: []step{
			approve("bob").is(pending),
			editDuration("alice", 30*time.Minute).is(pending),
			approve("dave").is(pending),
			approve("bob").is(approved),
		}},
		{name: "editing dismisses change requests", steps: []step{
			changes("dave").is(pending),
			editDuration("alice", 30*time.Minute).is(pending),
			approve("bob").is(pending),
			approve("frank").is(approved), // dave's block went with the edit
		}},
		{name: "edits may only narrow", steps: []step{
			editDuration("alice", 2*time.Hour).fails(invalid, "invalid_duration").is(pending),
			editDuration("alice", 30*time.Second).fails(invalid, "invalid_duration").is(pending),
			{do: "edit", who: "alice", wantKind: invalid, wantCode: "empty_edit", state: pending},
		}},
		{name: "only the requester edits", steps: []step{
			approve("bob").is(pending),
			editReason("bob").fails(forbidden, "not_requester").is(pending),
			approve("dave").is(approved), // the refused edit dismissed nothing
		}},
		{name: "deny is final", steps: []step{
			approve("bob").is(pending),
			deny("dave").is(denied),
			approve("frank").fails(conflict, "request_not_pending").is(denied),
			editReason("alice").fails(conflict, "request_not_pending").is(denied),
			cancel("alice").fails(conflict, "request_closed").is(denied),
		}},
		{name: "cancel", steps: []step{
			approve("bob").is(pending),
			cancel("bob").fails(forbidden, "not_requester").is(pending),
			cancel("alice").is(cancelled),
			approve("dave").fails(conflict, "request_not_pending").is(cancelled),
			cancel("alice").fails(conflict, "request_closed").is(cancelled),
		}},
		{name: "reviews after approval conflict", group: "db-one", steps: []step{
			approve("bob").is(approved),
			approve("dave").fails(conflict, "request_not_pending").is(approved),
			changes("dave").fails(conflict, "request_not_pending").is(approved),
			editReason("alice").fails(conflict, "request_not_pending").is(approved),
		}},
		{name: "pending request expires after the pending TTL", steps: []step{
			approve("bob").is(pending),
			advance(pendingTTL),
			approve("dave").fails(conflict, "request_not_pending").is(expired),
		}},
		{name: "expiry is shown on read and recorded by the sweeper", steps: []step{
			advance(pendingTTL + time.Minute),
			get("alice").shows(expired).is(pending), // a read does not write
			sweep().is(expired),
			get("alice").is(expired),
		}},
		{name: "an action on an overdue request records its expiry first", steps: []step{
			advance(pendingTTL + time.Minute),
			editReason("alice").fails(conflict, "request_not_pending").is(expired),
		}},
		{name: "still reviewable just before the pending TTL", steps: []step{
			approve("bob").is(pending),
			advance(pendingTTL - 3*time.Second), // the next step runs a second before the TTL
			approve("dave").is(approved),
			advance(time.Hour), // approved requests do not expire as pending
			get("alice").is(approved),
		}},
		{name: "blocking and denying need a reason", steps: []step{
			changes("bob").withBody("").fails(invalid, "body_required").is(pending),
			deny("bob").withBody(" \n").fails(invalid, "body_required").is(pending),
			comment("bob").withBody("").fails(invalid, "body_required").is(pending),
			approve("bob").withBody("\x00").fails(invalid, "invalid_body").is(pending),
		}},
		{name: "unknown review event", steps: []step{
			{do: "review", who: "bob", event: "MERGE", wantKind: invalid, wantCode: "invalid_review_event", state: pending},
			{do: "review", who: "bob", event: "approve", wantKind: invalid, wantCode: "invalid_review_event", state: pending},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			group, requester := tt.group, tt.requester
			if group == "" {
				group = "prod-db"
			}
			if requester == "" {
				requester = "alice"
			}
			r := e.create(t, requester, group, time.Hour)
			approvedAt := time.Time{}
			for i, s := range tt.steps {
				if s.do == "advance" {
					e.clk.advance(s.dur)
					continue
				}
				e.clk.advance(time.Second) // distinct times for every step
				var got *ca.Request
				var err error
				switch s.do {
				case "review":
					id := r.ID
					if s.id != "" {
						id = s.id
					}
					got, err = e.svc.Review(t.Context(), s.who, id, s.event, s.body)
				case "edit":
					got, err = e.svc.Edit(t.Context(), s.who, r.ID, s.dur, s.reason)
				case "cancel":
					got, err = e.svc.Cancel(t.Context(), s.who, r.ID)
				case "get":
					got, err = e.svc.Get(t.Context(), s.who, r.ID)
				case "sweep":
					err = e.svc.ExpirePending(t.Context())
				default:
					t.Fatalf("unknown step %q", s.do)
				}
				if s.wantKind != nil && err == nil {
					t.Fatalf("step %d (%s %s %s) succeeded, want %v/%s", i, s.do, s.who, s.event, s.wantKind, s.wantCode)
				}
				checkErr(t, err, s.wantKind, s.wantCode)
				if shown := cmp.Or(s.shown, s.state); err == nil && got != nil && got.State != shown {
					t.Errorf("step %d (%s %s %s) returned state %s, want %s", i, s.do, s.who, s.event, got.State, shown)
				}
				stored, err := e.db.GetRequest(t.Context(), r.ID)
				if err != nil {
					t.Fatal(err)
				}
				if stored.State != s.state {
					t.Fatalf("after step %d (%s %s %s): stored state %s, want %s", i, s.do, s.who, s.event, stored.State, s.state)
				}
				if s.state == approved && approvedAt.IsZero() {
					approvedAt = e.clk.now()
					if !stored.ApprovedAt.Equal(approvedAt) {
						t.Errorf("approved_at = %s, want the approving review's time %s", stored.ApprovedAt, approvedAt)
					}
				}
				if s.state != approved && !stored.ApprovedAt.IsZero() {
					t.Errorf("step %d: %s request has approved_at %s", i, stored.State, stored.ApprovedAt)
				}
			}
			verifyLedger(t, e.db)
		})
	}
}

func TestEditRecordsDismissal(t *testing.T) {
	e := newEnv(t, nil)
	r := e.create(t, "alice", "prod-db", time.Hour)
	e.review(t, "bob", r.ID, ca.ReviewApprove)
	if _, err := e.svc.Review(t.Context(), "dave", r.ID, ca.ReviewRequestChanges, "why?"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Review(t.Context(), "frank", r.ID, ca.ReviewComment, "+1 to dave"); err != nil {
		t.Fatal(err)
	}
	reason := "read only"
	got, err := e.svc.Edit(t.Context(), "alice", r.ID, 45*time.Minute, &reason)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.db.GetRequest(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []*ca.Request{got, stored} {
		if req.Duration != 45*time.Minute || req.Reason != reason {
			t.Errorf("after edit: duration %s reason %q, want 45m %q", req.Duration, req.Reason, reason)
		}
		var dismissed []bool
		for _, rv := range req.Reviews {
			dismissed = append(dismissed, rv.Dismissed)
		}
		if want := []bool{true, true, false}; !slices.Equal(dismissed, want) {
			t.Errorf("dismissed flags (approve, request changes, comment) = %v, want %v", dismissed, want)
		}
	}
}

func TestTallyReviews(t *testing.T) {
	rv := func(who, event string) ca.Review { return ca.Review{Reviewer: who, Event: event} }
	dismissed := func(r ca.Review) ca.Review { r.Dismissed = true; return r }
	tests := []struct {
		name          string
		reviews       []ca.Review
		wantApprovers []string
		wantBlockers  []string
		need          int
		satisfied     bool
	}{
		{name: "no reviews", need: 1},
		{name: "approvals in order", reviews: []ca.Review{rv("dave", "APPROVE"), rv("bob", "APPROVE")},
			wantApprovers: []string{"dave", "bob"}, need: 2, satisfied: true},
		{name: "duplicate approvals count once", reviews: []ca.Review{rv("bob", "APPROVE"), rv("bob", "APPROVE")},
			wantApprovers: []string{"bob"}, need: 2},
		{name: "requester never counts", reviews: []ca.Review{rv("alice", "APPROVE"), rv("bob", "APPROVE")},
			wantApprovers: []string{"bob"}, need: 2},
		{name: "requester cannot block", reviews: []ca.Review{rv("bob", "APPROVE"), rv("alice", "REQUEST_CHANGES")},
			wantApprovers: []string{"bob"}, need: 1, satisfied: true},
		{name: "comments are ignored", reviews: []ca.Review{rv("bob", "APPROVE"), rv("bob", "COMMENT"), rv("dave", "COMMENT")},
			wantApprovers: []string{"bob"}, need: 1, satisfied: true},
		{name: "a block stops any number of approvals", reviews: []ca.Review{rv("bob", "APPROVE"), rv("dave", "APPROVE"), rv("frank", "REQUEST_CHANGES")},
			wantApprovers: []string{"bob", "dave"}, wantBlockers: []string{"frank"}, need: 1},
		{name: "later approval clears own block", reviews: []ca.Review{rv("frank", "REQUEST_CHANGES"), rv("frank", "APPROVE")},
			wantApprovers: []string{"frank"}, need: 1, satisfied: true},
		{name: "later block withdraws own approval", reviews: []ca.Review{rv("frank", "APPROVE"), rv("frank", "REQUEST_CHANGES")},
			wantBlockers: []string{"frank"}, need: 1},
		{name: "dismissed reviews do not count", reviews: []ca.Review{dismissed(rv("bob", "APPROVE")), dismissed(rv("dave", "REQUEST_CHANGES")), rv("frank", "APPROVE")},
			wantApprovers: []string{"frank"}, need: 1, satisfied: true},
		{name: "order follows each reviewer's first review", reviews: []ca.Review{rv("bob", "REQUEST_CHANGES"), rv("dave", "APPROVE"), rv("bob", "APPROVE")},
			wantApprovers: []string{"bob", "dave"}, need: 2, satisfied: true},
		{name: "deny is not an approval", reviews: []ca.Review{rv("bob", "DENY")}, need: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := approval.TallyReviews(&ca.Request{Requester: "alice", Reviews: tt.reviews})
			if !slices.Equal(got.Approvers, tt.wantApprovers) {
				t.Errorf("Approvers = %q, want %q", got.Approvers, tt.wantApprovers)
			}
			if !slices.Equal(got.Blockers, tt.wantBlockers) {
				t.Errorf("Blockers = %q, want %q", got.Blockers, tt.wantBlockers)
			}
			if s := got.Satisfied(tt.need); s != tt.satisfied {
				t.Errorf("Satisfied(%d) = %v, want %v", tt.need, s, tt.satisfied)
			}
		})
	}
}

// TestApprovalFromFormerMemberDoesNotCount: an approval only counts while
// its author is still a member of an approver team. Otherwise the request
// would turn "approved" with an approval Authorize then refuses, and sit
// there unusable instead of waiting for another approver.
func TestApprovalFromFormerMemberDoesNotCount(t *testing.T) {
	dir := newMutableDir()
	e := newEnv(t, dir)
	r := e.create(t, "alice", "prod-db", time.Hour)
	e.review(t, "bob", r.ID, ca.ReviewApprove)
	dir.remove("bob", "sre-leads")

	got := e.review(t, "dave", r.ID, ca.ReviewApprove)
	if got.State != ca.StatePending {
		t.Fatalf("after dave's approval (bob has left sre-leads): state %s, want pending", got.State)
	}
	got = e.review(t, "frank", r.ID, ca.ReviewApprove)
	if got.State != ca.StateApproved {
		t.Fatalf("after frank's approval: state %s, want approved", got.State)
	}
	g, err := e.svc.Authorize(t.Context(), "alice", r.ID)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	if want := []string{"dave", "frank"}; !slices.Equal(g.Approvers, want) {
		t.Errorf("grant approvers = %q, want %q", g.Approvers, want)
	}

	// A directory outage while tallying fails closed.
	r2 := e.create(t, "alice", "db-one", time.Hour)
	dir.fail(errors.New("github: 502"))
	_, err = e.svc.Review(t.Context(), "dave", r2.ID, ca.ReviewApprove, "")
	checkErr(t, err, approval.ErrUnavailable, "identity_unavailable")
	dir.fail(nil)
	if stored, _ := e.db.GetRequest(t.Context(), r2.ID); stored.State != ca.StatePending {
		t.Errorf("state after a review during an outage = %s, want pending", stored.State)
	}
}

// TestAllowedHoursAcrossReview: allowed_hours (Mon-Fri 07:00-20:00 UTC for
// office-db) is checked when a request is filed and at every issuance; a
// review may arrive at any time, but a grant approved inside the window is
// unusable outside it.
func TestAllowedHoursAcrossReview(t *testing.T) {
	monday := func(h, m int) time.Time { return time.Date(2025, 6, 2, h, m, 0, 0, time.UTC) }
	tests := []struct {
		name                  string
		create, review, issue time.Time
		createCode, issueCode string // "" = allowed
	}{
		{name: "all inside the window", create: monday(9, 0), review: monday(9, 10), issue: monday(9, 20)},
		{name: "issued in the window's last minute", create: monday(19, 0), review: monday(19, 30), issue: monday(19, 59)},
		{name: "approved inside, issued after the window closed", create: monday(19, 0), review: monday(19, 30), issue: monday(20, 0),
			issueCode: "outside_allowed_hours"},
		{name: "approved after the window closed is still unusable", create: monday(19, 50), review: monday(20, 10), issue: monday(20, 15),
			issueCode: "outside_allowed_hours"},
		{name: "filed before the window opens", create: monday(6, 59), createCode: "outside_allowed_hours"},
		{name: "filed on a Sunday", create: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), createCode: "outside_allowed_hours"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.clk.set(tt.create)
			r, err := e.svc.Create(t.Context(), "alice", "office-db", time.Hour, "maintenance")
			if tt.createCode != "" {
				checkErr(t, err, approval.ErrForbidden, tt.createCode)
				if reqs, _ := e.db.ListRequests(t.Context(), ca.RequestFilter{}); len(reqs) != 0 {
					t.Errorf("a refused request was stored: %+v", reqs[0])
				}
				return
			}
			if err != nil {
				t.Fatalf("Create at %s: %v", tt.create, err)
			}
			e.clk.set(tt.review)
			if got := e.review(t, "bob", r.ID, ca.ReviewApprove); got.State != approved {
				t.Fatalf("state after the approval at %s = %s, want approved", tt.review, got.State)
			}
			e.clk.set(tt.issue)
			g, err := e.svc.Authorize(t.Context(), "alice", r.ID)
			if tt.issueCode == "" {
				checkErr(t, err, nil, "")
				if !g.Ends.Equal(tt.review.Add(time.Hour)) {
					t.Errorf("grant ends %s, want an hour after the approval (%s)", g.Ends, tt.review.Add(time.Hour))
				}
				return
			}
			checkErr(t, err, approval.ErrForbidden, tt.issueCode)
		})
	}
}

// TestMembershipRevokedBeforeIssuance: every issuance re-checks the
// requester's membership of a requester team and each approver's of an
// approver team; someone who left stops counting, someone who comes back
// counts again.
func TestMembershipRevokedBeforeIssuance(t *testing.T) {
	type change struct {
		remove bool
		login  string
		team   string
	}
	out := func(login, team string) change { return change{remove: true, login: login, team: team} }
	back := func(login, team string) change { return change{login: login, team: team} }
	tests := []struct {
		name      string
		group     string // prod-db needs bob and dave; db-one needs bob
		changes   []change
		wantCode  string
		approvers []string // of the grant when allowed
	}{
		{name: "nobody left", group: "prod-db", approvers: []string{"bob", "dave"}},
		{name: "requester left", group: "prod-db", changes: []change{out("alice", "backend")}, wantCode: "not_a_requester"},
		{name: "first approver left", group: "prod-db", changes: []change{out("bob", "sre-leads")}, wantCode: "approval_no_longer_valid"},
		{name: "second approver left", group: "prod-db", changes: []change{out("dave", "sre-leads")}, wantCode: "approval_no_longer_valid"},
		{name: "both approvers left", group: "prod-db", changes: []change{out("bob", "sre-leads"), out("dave", "sre-leads")}, wantCode: "approval_no_longer_valid"},
		{name: "the only approver left", group: "db-one", changes: []change{out("bob", "sre-leads")}, wantCode: "approval_no_longer_valid"},
		{name: "requester and approver left", group: "db-one", changes: []change{out("bob", "sre-leads"), out("alice", "backend")}, wantCode: "not_a_requester"},
		{name: "approver left and came back", group: "db-one", changes: []change{out("bob", "sre-leads"), back("bob", "sre-leads")}, approvers: []string{"bob"}},
		{name: "requester left and came back", group: "db-one", changes: []change{out("alice", "backend"), back("alice", "backend")}, approvers: []string{"bob"}},
		{name: "an unrelated team change does not matter", group: "db-one", changes: []change{out("frank", "sre-leads")}, approvers: []string{"bob"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newMutableDir()
			e := newEnv(t, dir)
			r := e.create(t, "alice", tt.group, time.Hour)
			e.review(t, "bob", r.ID, ca.ReviewApprove)
			if tt.group == "prod-db" {
				e.review(t, "dave", r.ID, ca.ReviewApprove)
			}
			if _, err := e.svc.Authorize(t.Context(), "alice", r.ID); err != nil {
				t.Fatalf("Authorize before any change: %v", err)
			}
			for _, c := range tt.changes {
				if c.remove {
					dir.remove(c.login, c.team)
				} else {
					dir.add(c.login, c.team)
				}
			}
			g, err := e.svc.Authorize(t.Context(), "alice", r.ID)
			// The request itself stays approved: a refusal is about now.
			if stored, _ := e.db.GetRequest(t.Context(), r.ID); stored.State != approved {
				t.Errorf("stored state %s, want approved", stored.State)
			}
			if tt.wantCode != "" {
				checkErr(t, err, approval.ErrForbidden, tt.wantCode)
				return
			}
			checkErr(t, err, nil, "")
			if !slices.Equal(g.Approvers, tt.approvers) {
				t.Errorf("grant approvers = %q, want %q", g.Approvers, tt.approvers)
			}
		})
	}
}

// TestRefusalsAreRecorded: every decision the policy refuses is recorded
// in the ledger with its code and reason; bad input, conflicts and unknown
// requests are not decisions and leave no event.
func TestRefusalsAreRecorded(t *testing.T) {
	tests := []struct {
		name     string
		do       func(e *env, id string) error
		typ      string // "" = nothing recorded
		actor    string
		code     string
		onReq    bool // the event names the request
		wantData map[string]any
	}{
		{name: "request by a non-requester", typ: ca.EventRequestRefused, actor: "bob", code: "not_a_requester",
			do: func(e *env, _ string) error {
				_, err := e.svc.Create(context.Background(), "bob", "prod-db", time.Hour, "x")
				return err
			}, wantData: map[string]any{"action": "create", "host_group": "prod-db"}},
		{name: "request outside allowed hours", typ: ca.EventRequestRefused, actor: "alice", code: "outside_allowed_hours",
			do: func(e *env, _ string) error {
				e.clk.set(time.Date(2025, 6, 7, 10, 0, 0, 0, time.UTC)) // Saturday
				_, err := e.svc.Create(context.Background(), "alice", "office-db", time.Hour, "x")
				return err
			}, wantData: map[string]any{"action": "create", "host_group": "office-db"}},
		{name: "approval by a non-approver", typ: ca.EventReviewRefused, actor: "erin", code: "not_an_approver", onReq: true,
			do: func(e *env, id string) error {
				_, err := e.svc.Review(context.Background(), "erin", id, ca.ReviewApprove, "")
				return err
			}, wantData: map[string]any{"event": "APPROVE"}},
		{name: "self-approval", typ: ca.EventReviewRefused, actor: "sam", code: "self_review", onReq: true,
			do: func(e *env, _ string) error {
				r, err := e.svc.Create(context.Background(), "sam", "prod-db", time.Hour, "x")
				if err != nil {
					return err
				}
				_, err = e.svc.Review(context.Background(), "sam", r.ID, ca.ReviewApprove, "")
				return err
			}, wantData: map[string]any{"event": "APPROVE"}},
		{name: "edit by someone else", typ: ca.EventRequestRefused, actor: "bob", code: "not_requester", onReq: true,
			do: func(e *env, id string) error {
				_, err := e.svc.Edit(context.Background(), "bob", id, 30*time.Minute, nil)
				return err
			}, wantData: map[string]any{"action": "edit"}},
		{name: "cancel by someone else", typ: ca.EventRequestRefused, actor: "bob", code: "not_requester", onReq: true,
			do: func(e *env, id string) error {
				_, err := e.svc.Cancel(context.Background(), "bob", id)
				return err
			}, wantData: map[string]any{"action": "cancel"}},
		{name: "bad input is not a decision", do: func(e *env, _ string) error {
			_, err := e.svc.Create(context.Background(), "alice", "prod-db", 3*time.Hour, "x")
			return err
		}},
		{name: "a conflict is not a decision", do: func(e *env, id string) error {
			if _, err := e.svc.Cancel(context.Background(), "alice", id); err != nil {
				return err
			}
			_, err := e.svc.Review(context.Background(), "bob", id, ca.ReviewApprove, "")
			return err
		}},
		{name: "an unknown request is not a decision", do: func(e *env, _ string) error {
			_, err := e.svc.Review(context.Background(), "mallory", "r-aaaaaaaaaaaaaaaa", ca.ReviewApprove, "")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			r := e.create(t, "alice", "prod-db", time.Hour)
			if err := tt.do(e, r.ID); err == nil {
				t.Fatal("the step succeeded, want a refusal")
			}
			got := e.refusalEvents(t)
			if tt.typ == "" {
				if len(got) != 0 {
					t.Errorf("recorded %+v, want no refusal", got[0])
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("recorded %d refusals, want 1", len(got))
			}
			ev := got[0]
			if ev.Type != tt.typ || ev.Actor != tt.actor || ev.Data["code"] != tt.code || ev.Data["reason"] == "" {
				t.Errorf("refusal = %s by %s, data %v; want %s by %s with code %s and a reason", ev.Type, ev.Actor, ev.Data, tt.typ, tt.actor, tt.code)
			}
			if tt.onReq && !strings.HasPrefix(ev.RequestID, "r-") {
				t.Errorf("refusal names request %q, want the request", ev.RequestID)
			}
			for k, v := range tt.wantData {
				if ev.Data[k] != v {
					t.Errorf("data[%s] = %v, want %v", k, ev.Data[k], v)
				}
			}
			verifyLedger(t, e.db)
		})
	}
}
