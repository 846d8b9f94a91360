package approval_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/static"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// t0 is a Monday, 10:00 UTC.
var t0 = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)

const pendingTTL = 2 * time.Hour

// testClock is a clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// The directory of the tests.
var users = map[string][]string{
	"alice":   {"backend"},
	"erin":    {"backend"},
	"bob":     {"sre-leads"},
	"dave":    {"sre-leads"},
	"frank":   {"sre-leads"},
	"sam":     {"backend", "sre-leads"}, // may request and approve
	"carol":   {"security"},             // auditor
	"mallory": nil,
}

func staticDirectory() *static.Directory {
	m := map[string]static.User{}
	for login, teams := range users {
		m[login] = static.User{Token: "token-" + login, Teams: teams}
	}
	return static.New(m)
}

// mutableDir is a Directory whose teams the test changes between calls,
// like GitHub team membership changing under a running server.
type mutableDir struct {
	mu    sync.Mutex
	teams map[string][]string
	err   error
}

func newMutableDir() *mutableDir {
	d := &mutableDir{teams: map[string][]string{}}
	for login, teams := range users {
		d.teams[login] = slices.Clone(teams)
	}
	return d
}

func (d *mutableDir) Authenticate(context.Context, string) (string, error) {
	return "", errors.New("not used")
}

func (d *mutableDir) IsMember(_ context.Context, login, team string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return false, d.err
	}
	return slices.Contains(d.teams[login], team), nil
}

func (d *mutableDir) remove(login, team string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.teams[login] = slices.DeleteFunc(d.teams[login], func(t string) bool { return t == team })
}

func (d *mutableDir) add(login, team string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !slices.Contains(d.teams[login], team) {
		d.teams[login] = append(d.teams[login], team)
	}
}

func (d *mutableDir) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.err = err
}

func mustHours(s string) *approval.Hours {
	h, err := approval.ParseHours(s)
	if err != nil {
		panic(err)
	}
	return h
}

func testPolicies() []*approval.Policy {
	return []*approval.Policy{
		{Group: "prod-db", Principals: []string{"prod-db"}, Requesters: []string{"backend"}, Approvers: []string{"sre-leads"},
			ApprovalsRequired: 2, MaxDuration: 2 * time.Hour, CertTTL: 5 * time.Minute,
			Extensions: []string{"permit-pty"}, SourceAddress: []string{"10.0.0.0/8"}},
		{Group: "db-one", Principals: []string{"db-one", "dba"}, Requesters: []string{"backend"}, Approvers: []string{"sre-leads"},
			ApprovalsRequired: 1, MaxDuration: time.Hour, CertTTL: 5 * time.Minute},
		{Group: "staging", Principals: []string{"staging"}, Requesters: []string{"backend"},
			ApprovalsRequired: 0, MaxDuration: 30 * time.Minute, CertTTL: 5 * time.Minute},
		{Group: "office", Principals: []string{"office"}, Requesters: []string{"backend"}, Approvers: []string{"sre-leads"},
			ApprovalsRequired: 0, MaxDuration: 2 * time.Hour, CertTTL: 5 * time.Minute, AllowedHours: mustHours("Mon-Fri 07:00-20:00 UTC")},
		{Group: "office-db", Principals: []string{"office-db"}, Requesters: []string{"backend"}, Approvers: []string{"sre-leads"},
			ApprovalsRequired: 1, MaxDuration: 2 * time.Hour, CertTTL: 5 * time.Minute, AllowedHours: mustHours("Mon-Fri 07:00-20:00 UTC")},
	}
}

type env struct {
	svc *approval.Service
	db  *sqlite.DB
	clk *testClock
}

// newEnv returns a service over a real ledger in a temp dir, with the clock
// at t0. dir nil means the static directory.
func newEnv(t *testing.T, dir approval.Directory) *env {
	t.Helper()
	clk := &testClock{t: t0}
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"), sqlite.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if dir == nil {
		dir = staticDirectory()
	}
	svc := approval.NewService(db, dir, testPolicies(), []string{"security"},
		approval.WithClock(clk.now), approval.WithPendingTTL(pendingTTL))
	return &env{svc: svc, db: db, clk: clk}
}

func (e *env) create(t *testing.T, login, group string, d time.Duration) *ca.Request {
	t.Helper()
	r, err := e.svc.Create(t.Context(), login, group, d, "INC-42: replica lag")
	if err != nil {
		t.Fatalf("Create(%s, %s, %s): %v", login, group, d, err)
	}
	return r
}

func (e *env) review(t *testing.T, login, id, event string) *ca.Request {
	t.Helper()
	r, err := e.svc.Review(t.Context(), login, id, event, "looks fine")
	if err != nil {
		t.Fatalf("Review(%s, %s): %v", login, event, err)
	}
	return r
}

// checkErr fails unless err is an *approval.Error of the given kind and
// code; kind nil means err must be nil.
func checkErr(t *testing.T, err error, kind error, code string) {
	t.Helper()
	if kind == nil {
		if err != nil {
			t.Errorf("error = %v, want nil", err)
		}
		return
	}
	var ae *approval.Error
	if !errors.As(err, &ae) {
		t.Errorf("error = %v (%T), want an *approval.Error %v/%s", err, err, kind, code)
		return
	}
	if !errors.Is(err, kind) || ae.Code != code {
		t.Errorf("error = %v/%s (%q), want %v/%s", ae.Kind, ae.Code, ae.Message, kind, code)
	}
	if ae.Message == "" {
		t.Errorf("error %s has no message", ae.Code)
	}
}

func verifyLedger(t *testing.T, db *sqlite.DB) {
	t.Helper()
	if _, err := db.Verify(t.Context()); err != nil {
		t.Errorf("ledger does not verify: %v", err)
	}
}

func TestCreate(t *testing.T) {
	tests := []struct {
		name     string
		login    string
		group    string
		d        time.Duration
		reason   string
		wantKind error
		wantCode string
		wantDur  time.Duration
		state    string
	}{
		{name: "pending request", login: "alice", group: "prod-db", d: time.Hour, wantDur: time.Hour, state: ca.StatePending},
		{name: "default duration is an hour", login: "alice", group: "prod-db", wantDur: time.Hour, state: ca.StatePending},
		{name: "default duration is capped by max_duration", login: "alice", group: "staging", wantDur: 30 * time.Minute, state: ca.StateApproved},
		{name: "max_duration exactly", login: "alice", group: "prod-db", d: 2 * time.Hour, wantDur: 2 * time.Hour, state: ca.StatePending},
		{name: "one minute", login: "alice", group: "prod-db", d: time.Minute, wantDur: time.Minute, state: ca.StatePending},
		{name: "longer than max_duration", login: "alice", group: "prod-db", d: 2*time.Hour + time.Second, wantKind: approval.ErrInvalid, wantCode: "invalid_duration"},
		{name: "shorter than a minute", login: "alice", group: "prod-db", d: 59 * time.Second, wantKind: approval.ErrInvalid, wantCode: "invalid_duration"},
		{name: "negative duration", login: "alice", group: "prod-db", d: -time.Hour, wantKind: approval.ErrInvalid, wantCode: "invalid_duration"},
		{name: "unknown group", login: "alice", group: "prod-web", d: time.Hour, wantKind: approval.ErrNotFound, wantCode: "unknown_host_group"},
		{name: "malformed group", login: "alice", group: "Prod DB", d: time.Hour, wantKind: approval.ErrInvalid, wantCode: "invalid_host_group"},
		{name: "approver is not a requester", login: "bob", group: "prod-db", d: time.Hour, wantKind: approval.ErrForbidden, wantCode: "not_a_requester"},
		{name: "no teams at all", login: "mallory", group: "staging", d: time.Minute, wantKind: approval.ErrForbidden, wantCode: "not_a_requester"},
		{name: "control characters in reason", login: "alice", group: "prod-db", d: time.Hour, reason: "ok\x1b[31m", wantKind: approval.ErrInvalid, wantCode: "invalid_reason"},
		{name: "invalid UTF-8 in reason", login: "alice", group: "prod-db", d: time.Hour, reason: "\xff", wantKind: approval.ErrInvalid, wantCode: "invalid_reason"},
		{name: "reason too long", login: "alice", group: "prod-db", d: time.Hour, reason: strings.Repeat("x", approval.MaxReasonLen+1), wantKind: approval.ErrInvalid, wantCode: "invalid_reason"},
		{name: "multi-line reason", login: "alice", group: "prod-db", d: time.Hour, reason: "INC-1\n\tdetails", wantDur: time.Hour, state: ca.StatePending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			reason := tt.reason
			if reason == "" {
				reason = "INC-42"
			}
			r, err := e.svc.Create(t.Context(), tt.login, tt.group, tt.d, reason)
			checkErr(t, err, tt.wantKind, tt.wantCode)
			if tt.wantKind != nil {
				if r != nil {
					t.Errorf("Create returned a request alongside an error")
				}
				if got, _ := e.db.ListRequests(t.Context(), ca.RequestFilter{}); len(got) != 0 {
					t.Errorf("refused Create stored %d requests", len(got))
				}
				return
			}
			if err := ca.CheckRequestID(r.ID); err != nil {
				t.Errorf("request id %q: %v", r.ID, err)
			}
			if r.Duration != tt.wantDur || r.State != tt.state || r.Requester != tt.login || r.HostGroup != tt.group ||
				r.Reason != reason || !r.CreatedAt.Equal(t0) || r.Version != 1 {
				t.Errorf("Create = %+v; want duration %s state %s by %s at %s", r, tt.wantDur, tt.state, tt.login, t0)
			}
			stored, err := e.db.GetRequest(t.Context(), r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.State != r.State || stored.Duration != r.Duration || stored.Version != r.Version {
				t.Errorf("stored request %+v differs from returned %+v", stored, r)
			}
			verifyLedger(t, e.db)
		})
	}
}

func TestCreateIDsAreUnique(t *testing.T) {
	e := newEnv(t, nil)
	seen := map[string]bool{}
	for range 20 {
		r := e.create(t, "alice", "prod-db", time.Hour)
		if seen[r.ID] {
			t.Fatalf("request id %s handed out twice", r.ID)
		}
		seen[r.ID] = true
	}
}

func TestAutoApprove(t *testing.T) {
	e := newEnv(t, nil)
	r := e.create(t, "alice", "staging", 20*time.Minute)
	if r.State != ca.StateApproved || !r.ApprovedAt.Equal(t0) {
		t.Fatalf("staging request: state %s approved at %s, want approved at %s", r.State, r.ApprovedAt, t0)
	}
	if want := t0.Add(20 * time.Minute); !r.GrantEnds().Equal(want) {
		t.Errorf("grant ends %s, want %s", r.GrantEnds(), want)
	}
	g, err := e.svc.Authorize(t.Context(), "alice", r.ID)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	if len(g.Approvers) != 0 {
		t.Errorf("auto-approved grant has approvers %q, want none", g.Approvers)
	}
	keyID, err := ca.KeyID(g.User, g.Group, g.RequestID, g.Approvers)
	if err != nil {
		t.Fatal(err)
	}
	if want := "jit-ssh:user=alice:group=staging:req=" + r.ID + ":by=-"; keyID != want {
		t.Errorf("KeyID = %q, want %q", keyID, want)
	}
}

func TestAuthorize(t *testing.T) {
	e := newEnv(t, nil)
	r := e.create(t, "alice", "prod-db", 90*time.Minute)
	e.clk.advance(10 * time.Minute)
	e.review(t, "bob", r.ID, ca.ReviewApprove)
	e.clk.advance(5 * time.Minute)
	approvedAt := e.clk.now()
	e.review(t, "dave", r.ID, ca.ReviewApprove)
	e.clk.advance(time.Minute)

	g, err := e.svc.Authorize(t.Context(), "alice", r.ID)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	want := ca.Grant{
		RequestID: r.ID, User: "alice", Group: "prod-db", Approvers: []string{"bob", "dave"},
		Ends: approvedAt.Add(90 * time.Minute), // the clock starts at approval, not at request
		Profile: ca.Profile{Principals: []string{"prod-db"}, CertTTL: 5 * time.Minute,
			Extensions: []string{"permit-pty"}, SourceAddress: []string{"10.0.0.0/8"}},
	}
	if g.RequestID != want.RequestID || g.User != want.User || g.Group != want.Group || !slices.Equal(g.Approvers, want.Approvers) ||
		!g.Ends.Equal(want.Ends) || !slices.Equal(g.Profile.Principals, want.Profile.Principals) || g.Profile.CertTTL != want.Profile.CertTTL ||
		!slices.Equal(g.Profile.Extensions, want.Profile.Extensions) || !slices.Equal(g.Profile.SourceAddress, want.Profile.SourceAddress) {
		t.Errorf("Authorize =\n  %+v\nwant\n  %+v", g, want)
	}

	// The grant issues a real certificate through the real pipeline.
	signer, err := ca.LoadOrCreateFileSigner(filepath.Join(t.TempDir(), "ca"))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := ca.ParseSubjectKey("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
	if err != nil {
		t.Fatal(err)
	}
	rec, cert, err := ca.NewIssuer(signer, e.db, ca.WithClock(e.clk.now)).Issue(t.Context(), g, subject)
	if err != nil {
		t.Fatalf("Issue under the grant: %v", err)
	}
	if want := "jit-ssh:user=alice:group=prod-db:req=" + r.ID + ":by=bob,dave"; cert.KeyId != want {
		t.Errorf("KeyId = %q, want %q", cert.KeyId, want)
	}
	if _, err := e.db.GetCertificate(t.Context(), rec.Serial); err != nil {
		t.Errorf("issued certificate not in the ledger: %v", err)
	}
	verifyLedger(t, e.db)
}

func TestAuthorizeRefuses(t *testing.T) {
	tests := []struct {
		name     string
		group    string
		setup    func(t *testing.T, e *env, dir *mutableDir, id string)
		login    string
		wantKind error
		wantCode string
	}{
		{
			name:  "grant still open one second before its end",
			group: "db-one",
			setup: func(t *testing.T, e *env, _ *mutableDir, _ string) { e.clk.advance(time.Hour - time.Second) },
			login: "alice",
		},
		{
			name:     "grant ended",
			group:    "db-one",
			setup:    func(t *testing.T, e *env, _ *mutableDir, _ string) { e.clk.advance(time.Hour) },
			login:    "alice",
			wantKind: approval.ErrConflict, wantCode: "grant_ended",
		},
		{
			name:  "grant ended early by an approver",
			group: "db-one",
			setup: func(t *testing.T, e *env, _ *mutableDir, id string) {
				if _, err := e.svc.Cancel(t.Context(), "dave", id); err != nil {
					t.Fatal(err)
				}
				e.clk.advance(time.Second)
			},
			login:    "alice",
			wantKind: approval.ErrConflict, wantCode: "grant_ended",
		},
		{
			name:  "requester removed from the team after approval",
			group: "db-one",
			setup: func(t *testing.T, e *env, dir *mutableDir, _ string) { dir.remove("alice", "backend") },
			login: "alice", wantKind: approval.ErrForbidden, wantCode: "not_a_requester",
		},
		{
			name:  "the only approver left the team",
			group: "db-one",
			setup: func(t *testing.T, e *env, dir *mutableDir, _ string) { dir.remove("bob", "sre-leads") },
			login: "alice", wantKind: approval.ErrForbidden, wantCode: "approval_no_longer_valid",
		},
		{
			name:  "one of two required approvers left the team",
			group: "prod-db",
			setup: func(t *testing.T, e *env, dir *mutableDir, _ string) { dir.remove("dave", "sre-leads") },
			login: "alice", wantKind: approval.ErrForbidden, wantCode: "approval_no_longer_valid",
		},
		{
			name:  "identity provider down: fail closed",
			group: "db-one",
			setup: func(t *testing.T, e *env, dir *mutableDir, _ string) { dir.fail(errors.New("api.github.com: 502")) },
			login: "alice", wantKind: approval.ErrUnavailable, wantCode: "identity_unavailable",
		},
		{
			name:  "approver asks for a certificate under someone else's grant",
			group: "db-one",
			login: "bob", wantKind: approval.ErrForbidden, wantCode: "not_requester",
		},
		{
			name:  "a peer cannot even see the grant",
			group: "db-one",
			login: "erin", wantKind: approval.ErrNotFound, wantCode: "request_not_found",
		},
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
			if tt.setup != nil {
				tt.setup(t, e, dir, r.ID)
			}
			g, err := e.svc.Authorize(t.Context(), tt.login, r.ID)
			checkErr(t, err, tt.wantKind, tt.wantCode)
			if tt.wantKind != nil && g.RequestID != "" {
				t.Errorf("Authorize returned grant %+v alongside an error", g)
			}
		})
	}
}

func TestAuthorizeNotApproved(t *testing.T) {
	e := newEnv(t, nil)
	r := e.create(t, "alice", "prod-db", time.Hour)
	e.review(t, "bob", r.ID, ca.ReviewApprove)
	_, err := e.svc.Authorize(t.Context(), "alice", r.ID)
	checkErr(t, err, approval.ErrConflict, "request_not_approved")

	if _, err := e.svc.Review(t.Context(), "dave", r.ID, ca.ReviewDeny, "not during the freeze"); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Authorize(t.Context(), "alice", r.ID)
	checkErr(t, err, approval.ErrConflict, "request_not_approved")
}

func TestAuthorizeOutsideAllowedHours(t *testing.T) {
	e := newEnv(t, nil)
	e.clk.set(time.Date(2025, 6, 2, 19, 30, 0, 0, time.UTC)) // Monday 19:30
	r := e.create(t, "alice", "office", time.Hour)
	if _, err := e.svc.Authorize(t.Context(), "alice", r.ID); err != nil {
		t.Fatalf("Authorize inside the window: %v", err)
	}
	e.clk.advance(31 * time.Minute) // 20:01, grant still open
	_, err := e.svc.Authorize(t.Context(), "alice", r.ID)
	checkErr(t, err, approval.ErrForbidden, "outside_allowed_hours")
}

func TestGetVisibility(t *testing.T) {
	e := newEnv(t, nil)
	r := e.create(t, "alice", "prod-db", time.Hour)
	tests := []struct {
		login    string
		wantKind error
		wantCode string
	}{
		{"alice", nil, ""}, // requester
		{"bob", nil, ""},   // approver of the group
		{"carol", nil, ""}, // auditor
		{"erin", approval.ErrNotFound, "request_not_found"}, // same team, not hers
		{"mallory", approval.ErrNotFound, "request_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.login, func(t *testing.T) {
			got, err := e.svc.Get(t.Context(), tt.login, r.ID)
			checkErr(t, err, tt.wantKind, tt.wantCode)
			if tt.wantKind == nil && (got == nil || got.ID != r.ID) {
				t.Errorf("Get = %+v, want request %s", got, r.ID)
			}
			if tt.wantKind != nil && got != nil {
				t.Errorf("Get leaked request %s to %s", got.ID, tt.login)
			}
		})
	}
	// An unknown id and someone else's id are indistinguishable.
	_, errUnknown := e.svc.Get(t.Context(), "erin", "r-aaaaaaaaaaaaaaaa")
	_, errHidden := e.svc.Get(t.Context(), "erin", r.ID)
	var aeUnknown, aeHidden *approval.Error
	if !errors.As(errUnknown, &aeUnknown) || !errors.As(errHidden, &aeHidden) || aeUnknown.Code != aeHidden.Code {
		t.Errorf("unknown id gives %v, hidden id gives %v; want the same not-found answer", errUnknown, errHidden)
	}
	_, err := e.svc.Get(t.Context(), "alice", "../etc/passwd")
	checkErr(t, err, approval.ErrInvalid, "invalid_request_id")
}

func TestList(t *testing.T) {
	e := newEnv(t, nil)
	alicePending := e.create(t, "alice", "prod-db", time.Hour)
	e.clk.advance(time.Minute)
	aliceStaging := e.create(t, "alice", "staging", time.Minute) // auto-approved
	e.clk.advance(time.Minute)
	erinPending := e.create(t, "erin", "db-one", time.Hour)
	e.clk.advance(time.Minute)
	samPending := e.create(t, "sam", "prod-db", time.Hour)
	e.clk.advance(time.Minute)
	erinDenied := e.create(t, "erin", "prod-db", time.Hour)
	if _, err := e.svc.Review(t.Context(), "bob", erinDenied.ID, ca.ReviewDeny, "no"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		login    string
		f        approval.ListFilter
		want     []*ca.Request // newest first
		wantKind error
	}{
		{name: "default: own requests", login: "alice", want: []*ca.Request{aliceStaging, alicePending}},
		{name: "mine", login: "erin", f: approval.ListFilter{Mine: true}, want: []*ca.Request{erinDenied, erinPending}},
		{name: "mine with state", login: "erin", f: approval.ListFilter{Mine: true, State: ca.StatePending}, want: []*ca.Request{erinPending}},
		{name: "auditor sees everything", login: "carol", want: []*ca.Request{erinDenied, samPending, erinPending, aliceStaging, alicePending}},
		{name: "auditor with state", login: "carol", f: approval.ListFilter{State: ca.StateDenied}, want: []*ca.Request{erinDenied}},
		{name: "auditor mine is empty", login: "carol", f: approval.ListFilter{Mine: true}, want: nil},
		{name: "approver default is own only", login: "bob", want: nil},
		{name: "reviewable: pending requests of approved groups", login: "bob", f: approval.ListFilter{Reviewable: true},
			want: []*ca.Request{samPending, erinPending, alicePending}},
		{name: "reviewable never lists your own", login: "sam", f: approval.ListFilter{Reviewable: true},
			want: []*ca.Request{erinPending, alicePending}},
		{name: "reviewable for a non-approver is empty", login: "alice", f: approval.ListFilter{Reviewable: true}, want: nil},
		{name: "reviewable for the auditor is empty", login: "carol", f: approval.ListFilter{Reviewable: true}, want: nil},
		{name: "reviewable and approved is empty", login: "bob", f: approval.ListFilter{Reviewable: true, State: ca.StateApproved}, want: nil},
		{name: "unknown state", login: "alice", f: approval.ListFilter{State: "merged"}, wantKind: approval.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.svc.List(t.Context(), tt.login, tt.f)
			if tt.wantKind != nil {
				checkErr(t, err, tt.wantKind, "invalid_state")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var gotIDs, wantIDs []string
			for _, r := range got {
				gotIDs = append(gotIDs, r.ID)
			}
			for _, r := range tt.want {
				wantIDs = append(wantIDs, r.ID)
			}
			if !slices.Equal(gotIDs, wantIDs) {
				t.Errorf("List(%s, %+v) = %q, want %q", tt.login, tt.f, gotIDs, wantIDs)
			}
			if got == nil {
				t.Errorf("List returned nil, want an empty list")
			}
		})
	}

	// Once the pending requests expire, they leave the reviewable queue and
	// are listed as expired; listing writes nothing, the sweeper records
	// the expiry.
	e.clk.advance(pendingTTL)
	got, err := e.svc.List(t.Context(), "bob", approval.ListFilter{Reviewable: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("reviewable after the pending TTL: %d requests, want 0", len(got))
	}
	mine, err := e.svc.List(t.Context(), "alice", approval.ListFilter{Mine: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range mine {
		if r.ID == alicePending.ID && r.State != ca.StateExpired {
			t.Errorf("listed state after the pending TTL = %s, want expired", r.State)
		}
	}
	stored, err := e.db.GetRequest(t.Context(), alicePending.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.State != ca.StatePending {
		t.Errorf("stored state after listing = %s, want pending: a read does not write", stored.State)
	}
	if err := e.svc.ExpirePending(t.Context()); err != nil {
		t.Fatal(err)
	}
	if stored, err = e.db.GetRequest(t.Context(), alicePending.ID); err != nil {
		t.Fatal(err)
	}
	if stored.State != ca.StateExpired {
		t.Errorf("stored state after the sweep = %s, want expired", stored.State)
	}
	verifyLedger(t, e.db)
}

func TestExpirePending(t *testing.T) {
	e := newEnv(t, nil)
	old := e.create(t, "alice", "prod-db", time.Hour)
	e.clk.advance(pendingTTL / 2)
	young := e.create(t, "erin", "prod-db", time.Hour)
	approved := e.create(t, "alice", "staging", 10*time.Minute)
	e.clk.advance(pendingTTL / 2) // old is exactly pendingTTL old

	if err := e.svc.ExpirePending(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		r    *ca.Request
		want string
	}{{old, ca.StateExpired}, {young, ca.StatePending}, {approved, ca.StateApproved}} {
		got, err := e.db.GetRequest(t.Context(), c.r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != c.want {
			t.Errorf("%s (created %s) state = %s, want %s", c.r.ID, c.r.CreatedAt, got.State, c.want)
		}
	}
	// Expiring twice is harmless.
	if err := e.svc.ExpirePending(t.Context()); err != nil {
		t.Fatal(err)
	}
	verifyLedger(t, e.db)
}

func TestCancelGrant(t *testing.T) {
	tests := []struct {
		login    string
		wantKind error
		wantCode string
	}{
		{"alice", nil, ""},
		{"dave", nil, ""},
		{"carol", approval.ErrForbidden, "not_an_approver"}, // auditors may look, not act
		{"erin", approval.ErrNotFound, "request_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.login, func(t *testing.T) {
			e := newEnv(t, nil)
			r := e.create(t, "alice", "db-one", time.Hour)
			e.review(t, "bob", r.ID, ca.ReviewApprove)
			e.clk.advance(10 * time.Minute)
			got, err := e.svc.Cancel(t.Context(), tt.login, r.ID)
			checkErr(t, err, tt.wantKind, tt.wantCode)
			stored, _ := e.db.GetRequest(t.Context(), r.ID)
			if tt.wantKind != nil {
				if !stored.EndedAt.IsZero() {
					t.Errorf("refused cancel ended the grant")
				}
				return
			}
			if !got.EndedAt.Equal(e.clk.now()) || !stored.GrantEnds().Equal(e.clk.now()) || stored.OpenAt(e.clk.now()) {
				t.Errorf("after cancel: ended %s, grant ends %s; want both %s", stored.EndedAt, stored.GrantEnds(), e.clk.now())
			}
			e.clk.advance(time.Second)
			_, err = e.svc.Cancel(t.Context(), "alice", r.ID)
			checkErr(t, err, approval.ErrConflict, "request_closed")
		})
	}
}

func TestWait(t *testing.T) {
	e := newEnv(t, nil)
	r := e.create(t, "alice", "db-one", time.Hour)

	t.Run("returns when another goroutine reviews", func(t *testing.T) {
		type result struct {
			r   *ca.Request
			err error
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			got, err := e.svc.Wait(t.Context(), "alice", r.ID, r.Version, 30*time.Second)
			done <- result{got, err}
		}()
		if _, err := e.svc.Review(t.Context(), "bob", r.ID, ca.ReviewApprove, ""); err != nil {
			t.Fatal(err)
		}
		select {
		case res := <-done:
			if res.err != nil {
				t.Fatal(res.err)
			}
			if res.r.State != ca.StateApproved || res.r.Version == r.Version {
				t.Errorf("Wait returned state %s version %d, want approved with a new version", res.r.State, res.r.Version)
			}
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Errorf("Wait took %s to notice the review", elapsed)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Wait did not return after the review")
		}
	})

	t.Run("times out without a change", func(t *testing.T) {
		cur, err := e.svc.Get(t.Context(), "alice", r.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.svc.Wait(t.Context(), "alice", r.ID, cur.Version, 20*time.Millisecond)
		if err != nil || got.Version != cur.Version {
			t.Errorf("Wait = version %d, %v; want the unchanged version %d", got.Version, err, cur.Version)
		}
	})

	t.Run("returns when the caller gives up", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		cur, _ := e.svc.Get(t.Context(), "alice", r.ID)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = e.svc.Wait(ctx, "alice", r.ID, cur.Version, time.Minute)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Wait ignored the cancelled context")
		}
	})

	t.Run("others cannot wait on a request they cannot see", func(t *testing.T) {
		_, err := e.svc.Wait(t.Context(), "erin", r.ID, 0, time.Second)
		checkErr(t, err, approval.ErrNotFound, "request_not_found")
	})
}

func TestConcurrentApprovals(t *testing.T) {
	e := newEnv(t, nil)
	r := e.create(t, "alice", "prod-db", time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, who := range []string{"bob", "dave", "frank"} {
		wg.Go(func() {
			_, err := e.svc.Review(t.Context(), who, r.ID, ca.ReviewApprove, "")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		var ae *approval.Error
		switch {
		case err == nil:
			ok++
		case errors.As(err, &ae) && ae.Code == "request_not_pending":
			// the third approval arrived after the second approved it
		default:
			t.Errorf("concurrent review: %v", err)
		}
	}
	if ok < 2 {
		t.Errorf("%d concurrent approvals succeeded, want at least 2", ok)
	}
	got, err := e.db.GetRequest(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != ca.StateApproved {
		t.Errorf("state after concurrent approvals = %s, want approved", got.State)
	}
	verifyLedger(t, e.db)
}

func TestAuthenticate(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		token    string
		want     string
		wantKind error
	}{
		{"token-alice", "alice", nil},
		{"token-carol", "carol", nil},
		{"", "", approval.ErrUnauthenticated},
		{"token-nobody", "", approval.ErrUnauthenticated},
		{"token-alice ", "", approval.ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			got, err := e.svc.Authenticate(t.Context(), tt.token)
			checkErr(t, err, tt.wantKind, "unauthenticated")
			if got != tt.want {
				t.Errorf("Authenticate(%q) = %q, want %q", tt.token, got, tt.want)
			}
		})
	}
}

// TestReadsDoNotWrite: Get, List and Wait show a due expiry or grant end
// as the sweeper's write would leave it, but commit nothing; the sweepers
// record it, with the version the reads showed.
func TestReadsDoNotWrite(t *testing.T) {
	e := newEnv(t, nil)
	pending := e.create(t, "alice", "prod-db", time.Hour)
	grant := e.create(t, "alice", "staging", 10*time.Minute) // auto-approved
	countEvents := func() int {
		n := 0
		if err := e.db.ListEvents(t.Context(), ca.EventFilter{}, func(*ca.Event) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := countEvents()
	e.clk.advance(pendingTTL)

	got, err := e.svc.Get(t.Context(), "alice", pending.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != ca.StateExpired || got.Version != pending.Version+1 || !got.UpdatedAt.Equal(e.clk.now()) {
		t.Errorf("Get of an overdue request = %s v%d updated %s, want expired v%d updated %s", got.State, got.Version, got.UpdatedAt, pending.Version+1, e.clk.now())
	}
	ended, err := e.svc.Get(t.Context(), "alice", grant.ID)
	if err != nil {
		t.Fatal(err)
	}
	if end := grant.ApprovedAt.Add(grant.Duration); !ended.EndedAt.Equal(end) || ended.Version != grant.Version+1 {
		t.Errorf("Get of an elapsed grant = ended %s v%d, want ended %s v%d", ended.EndedAt, ended.Version, end, grant.Version+1)
	}
	if _, err := e.svc.List(t.Context(), "alice", approval.ListFilter{Mine: true}); err != nil {
		t.Fatal(err)
	}
	// A waiter holding the stored version is answered at once.
	waited, err := e.svc.Wait(t.Context(), "alice", pending.ID, pending.Version, 30*time.Second)
	if err != nil || waited.State != ca.StateExpired {
		t.Errorf("Wait on an overdue request = %v, %v; want it expired at once", waited, err)
	}
	if n := countEvents(); n != before {
		t.Errorf("reads wrote %d events, want none", n-before)
	}
	for _, id := range []string{pending.ID, grant.ID} {
		stored, err := e.db.GetRequest(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Version != 1 || stored.State == ca.StateExpired || !stored.EndedAt.IsZero() {
			t.Errorf("%s was changed by a read: %s v%d ended %s", id, stored.State, stored.Version, stored.EndedAt)
		}
	}

	if err := e.svc.ExpirePending(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.EndElapsedGrants(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := countEvents(); n != before+2 {
		t.Errorf("the sweepers wrote %d events, want 2 (an expiry and a grant end)", n-before)
	}
	for _, want := range []*ca.Request{got, ended} {
		stored, err := e.db.GetRequest(t.Context(), want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.State != want.State || stored.Version != want.Version || !stored.EndedAt.Equal(want.EndedAt) {
			t.Errorf("%s after the sweep = %s v%d ended %s; the read showed %s v%d ended %s",
				want.ID, stored.State, stored.Version, stored.EndedAt, want.State, want.Version, want.EndedAt)
		}
	}
	verifyLedger(t, e.db)
}
