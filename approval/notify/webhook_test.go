package notify_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/approval/notify"
	"github.com/jit-ssh/jit-ssh/ca"
)

var t0 = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)

func TestNewWebhookRefuses(t *testing.T) {
	for _, u := range []string{"", "ftp://hooks.example.com/x", "hooks.slack.com/services/x", "http://", "https://%zz"} {
		if w, err := notify.NewWebhook(u); err == nil {
			w.Close(t.Context())
			t.Errorf("NewWebhook(%q) succeeded, want an error", u)
		} else if u != "" && strings.Contains(err.Error(), u) {
			t.Errorf("NewWebhook(%q) error %q echoes the URL, which may hold a secret", u, err)
		}
	}
}

func TestWebhookText(t *testing.T) {
	approvedAt := t0.Add(5 * time.Minute)
	req := ca.Request{ID: "r-abc", HostGroup: "prod-db", Requester: "alice", State: ca.StatePending,
		Reason: "INC-9", Duration: 90 * time.Minute, CreatedAt: t0}
	with := func(f func(r *ca.Request)) ca.Request { r := req; f(&r); return r }
	rv := func(who, event, body string) *ca.Review { return &ca.Review{Reviewer: who, Event: event, Body: body} }
	tests := []struct {
		name string
		n    ca.Notification
		want string
	}{
		{"created", ca.Notification{Kind: ca.NotifyCreated, Actor: "alice", Request: req, ApprovalsRequired: 2, ApproverTeams: []string{"sre-leads", "dba"}},
			"jit-ssh: alice requests prod-db for 1h30m (r-abc). Needs 2 approval(s) from sre-leads, dba. Review with: jit-ssh review r-abc --approve. Reason: “INC-9”"},
		{"created without a reason", ca.Notification{Kind: ca.NotifyCreated, Actor: "alice", Request: with(func(r *ca.Request) { r.Reason = " \n " }), ApprovalsRequired: 1, ApproverTeams: []string{"sre-leads"}},
			"jit-ssh: alice requests prod-db for 1h30m (r-abc). Needs 1 approval(s) from sre-leads. Review with: jit-ssh review r-abc --approve"},
		{"auto-approved", ca.Notification{Kind: ca.NotifyCreated, Actor: "alice", Request: with(func(r *ca.Request) { r.State, r.ApprovedAt, r.Duration = ca.StateApproved, t0, time.Hour })},
			"jit-ssh: alice was granted prod-db for 1h (r-abc), auto-approved by policy. Reason: “INC-9”"},
		{"approval short of the threshold", ca.Notification{Kind: ca.NotifyReviewed, Actor: "bob", ApprovalsRequired: 2, Approvers: []string{"bob"},
			Request: with(func(r *ca.Request) { r.Reviews = []ca.Review{*rv("bob", ca.ReviewApprove, "")} }), Review: rv("bob", ca.ReviewApprove, "")},
			"jit-ssh: bob approved (1 of 2) r-abc (prod-db for alice)"},
		{"request changes", ca.Notification{Kind: ca.NotifyReviewed, Actor: "dave", Review: rv("dave", ca.ReviewRequestChanges, "why\nso long?"), Request: req},
			"jit-ssh: dave requested changes on r-abc (prod-db for alice): “why so long?”"},
		{"comment", ca.Notification{Kind: ca.NotifyReviewed, Actor: "alice", Review: rv("alice", ca.ReviewComment, "a <b> & c"), Request: req},
			"jit-ssh: alice commented on r-abc (prod-db for alice): “a &lt;b&gt; &amp; c”"},
		{"approved", ca.Notification{Kind: ca.NotifyApproved, Actor: "dave", Review: rv("dave", ca.ReviewApprove, "ok"), Approvers: []string{"bob", "dave"},
			Request: with(func(r *ca.Request) {
				r.State, r.ApprovedAt = ca.StateApproved, approvedAt
				r.Reviews = []ca.Review{*rv("bob", ca.ReviewApprove, ""), *rv("dave", ca.ReviewApprove, "ok")}
			})},
			"jit-ssh: r-abc (prod-db for alice) approved by bob, dave; the grant ends 2025-06-02T11:35:00Z: “ok”"},
		{"denied", ca.Notification{Kind: ca.NotifyDenied, Actor: "frank", Review: rv("frank", ca.ReviewDeny, "freeze"), Request: with(func(r *ca.Request) { r.State = ca.StateDenied })},
			"jit-ssh: frank denied r-abc (prod-db for alice): “freeze”"},
		{"expired", ca.Notification{Kind: ca.NotifyExpired, Actor: "jit-ssh", Request: with(func(r *ca.Request) { r.State = ca.StateExpired })},
			"jit-ssh: r-abc (prod-db for alice) expired without enough approvals"},
		{"break glass", ca.Notification{Kind: ca.NotifyBreakGlass, Actor: "alice", Urgent: true, ApproverTeams: []string{"sre-leads"},
			Request: with(func(r *ca.Request) {
				r.State, r.ApprovedAt, r.Duration, r.BreakGlass, r.ReviewDueAt = ca.StateApproved, t0, 30*time.Minute, true, t0.Add(24*time.Hour)
			})},
			"<!here> :rotating_light: URGENT jit-ssh: alice BROKE GLASS on prod-db for 30m (r-abc), without an approver; the grant ends 2025-06-02T10:30:00Z. " +
				"sre-leads: review the follow-up by 2025-06-03T10:00:00Z with: jit-ssh review r-abc --approve (justified) or --request-changes -m WHY (not justified: revokes its certificates). Reason: “INC-9”"},
		{"not justified", ca.Notification{Kind: ca.NotifyNotJustified, Actor: "bob", Urgent: true, Revoked: []uint64{7, 8}, Review: rv("bob", ca.ReviewRequestChanges, "no incident"), Request: req},
			"<!here> :rotating_light: URGENT jit-ssh: bob found break-glass grant r-abc (prod-db for alice) NOT JUSTIFIED; the grant ended and 2 certificate(s) were revoked. Run 'jit-ssh host sync' on the hosts of prod-db: “no incident”"},
		{"justified", ca.Notification{Kind: ca.NotifyJustified, Actor: "bob", Review: rv("bob", ca.ReviewApprove, ""), Request: req},
			"jit-ssh: bob found break-glass grant r-abc (prod-db for alice) justified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := notify.Text(tt.n); got != tt.want {
				t.Errorf("Text =\n  %q\nwant\n  %q", got, tt.want)
			}
		})
	}

	t.Run("long text is shortened", func(t *testing.T) {
		n := ca.Notification{Kind: ca.NotifyReviewed, Actor: "bob", Review: rv("bob", ca.ReviewComment, strings.Repeat("é", 1000)), Request: req}
		got := notify.Text(n)
		if !strings.HasSuffix(got, "…”") || strings.Count(got, "é") != 299 {
			t.Errorf("a 1000-rune body was quoted as %d runes: %q", strings.Count(got, "é"), got)
		}
	})
}
