package api_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/static"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// t0 is a Monday, 10:00 UTC.
var t0 = time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testServer struct {
	url   string
	clock *clock
	svc   *approval.Service
	db    *sqlite.DB
	hs    *httptest.Server
}

// newTestServer runs the real service (approval rules, issuer with a file
// key, SQLite ledger) behind httptest, with the dev directory of SPEC 4a.
func newTestServer(t *testing.T) *testServer {
	t.Helper()
	return newTestServerAt(t, filepath.Join(t.TempDir(), "ledger.db"))
}

// newTestServerAt is newTestServer on the ledger file at path.
func newTestServerAt(t *testing.T, path string) *testServer {
	t.Helper()
	clk := &clock{t: t0}
	db, err := sqlite.Open(t.Context(), path, sqlite.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	users := map[string]static.User{}
	for login, teams := range map[string][]string{
		"alice": {"backend"}, "erin": {"backend"}, "bob": {"sre-leads"}, "dave": {"sre-leads"}, "carol": {"security"},
	} {
		users[login] = static.User{Token: "dev-" + login, Teams: teams}
	}
	policies := []*approval.Policy{
		{Group: "prod-db", Principals: []string{"prod-db"}, Requesters: []string{"backend"}, Approvers: []string{"sre-leads"},
			ApprovalsRequired: 1, MaxDuration: time.Hour, CertTTL: 5 * time.Minute,
			BreakGlass: &approval.BreakGlassPolicy{Teams: []string{"backend"}, MaxDuration: 30 * time.Minute, ReviewWithin: 24 * time.Hour}},
		{Group: "staging", Principals: []string{"staging"}, Requesters: []string{"backend"}, Approvers: []string{"sre-leads"},
			ApprovalsRequired: 0, MaxDuration: time.Hour, CertTTL: 5 * time.Minute},
	}
	svc := approval.NewService(db, static.New(users), policies, []string{"security"},
		approval.WithClock(clk.now), approval.WithPendingTTL(2*time.Hour))
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ca.NewFileSigner(caKey)
	if err != nil {
		t.Fatal(err)
	}
	issuer := ca.NewIssuer(signer, db, ca.WithClock(clk.now))
	hs := httptest.NewServer(api.NewServer(svc, issuer, signer, db, api.WithClock(clk.now)))
	t.Cleanup(hs.Close)
	return &testServer{url: hs.URL, clock: clk, svc: svc, db: db, hs: hs}
}

// stop stops the server and closes its ledger (the server stopped, as
// before someone edits the file).
func (s *testServer) stop(t *testing.T) {
	t.Helper()
	s.hs.Close()
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
}

func (s *testServer) as(t *testing.T, login string) *api.Client {
	t.Helper()
	c, err := api.NewClient(s.url, "dev-"+login)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func subjectKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(k))
}

func events(t *testing.T, c *api.Client, q url.Values) []api.Event {
	t.Helper()
	var out []api.Event
	if err := c.ListEvents(t.Context(), q, func(ev api.Event) error { out = append(out, ev); return nil }); err != nil {
		t.Fatalf("ListEvents(%v): %v", q, err)
	}
	return out
}

func certs(t *testing.T, c *api.Client, f api.CertificateFilter) []api.Certificate {
	t.Helper()
	var out []api.Certificate
	if err := c.ListCertificates(t.Context(), f, func(cert api.Certificate) error { out = append(out, cert); return nil }); err != nil {
		t.Fatalf("ListCertificates(%+v): %v", f, err)
	}
	return out
}

// must returns a function that passes on a call's value and fails the test
// on its error: req := must[*api.Request](t); r := req(c.CreateRequest(...)).
func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// TestLifecycleEvents walks every state change the ledger must record and
// checks the event log holds each, in order, with its actor and the data
// that explains the decision.
func TestLifecycleEvents(t *testing.T) {
	ctx := t.Context()
	s := newTestServer(t)
	alice, bob, dave, erin, carol := s.as(t, "alice"), s.as(t, "bob"), s.as(t, "dave"), s.as(t, "erin"), s.as(t, "carol")
	req, crt := must[*api.Request](t), must[*api.Certificate](t)

	// A reviewed, edited, approved request; a certificate; a refusal; a
	// revocation that ends the grant.
	r1 := req(alice.CreateRequest(ctx, api.CreateRequest{HostGroup: "prod-db", Duration: "30m", Reason: "INC-1 replication lag"}))
	req(bob.Review(ctx, r1.ID, api.ReviewRequest{Event: ca.ReviewRequestChanges, Body: "15m is enough"}))
	fifteen := "INC-1 replication lag, 15m"
	req(alice.EditRequest(ctx, r1.ID, api.EditRequest{Duration: "15m", Reason: &fifteen}))
	req(bob.Review(ctx, r1.ID, api.ReviewRequest{Event: ca.ReviewApprove, Body: "ok"}))
	cert := crt(alice.IssueCertificate(ctx, r1.ID, subjectKey(t)))
	rsaKey := must[*rsa.PrivateKey](t)(rsa.GenerateKey(rand.Reader, 2048))
	rsaPub := must[ssh.PublicKey](t)(ssh.NewPublicKey(&rsaKey.PublicKey))
	if _, err := alice.IssueCertificate(ctx, r1.ID, string(ssh.MarshalAuthorizedKey(rsaPub))); err == nil {
		t.Fatal("a 2048-bit RSA key got a certificate")
	}
	must[*api.RevokeResult](t)(bob.Revoke(ctx, api.RevokeRequest{Serial: cert.Serial, Reason: "laptop stolen"}))

	// Cancelled; expired; auto-approved and run out; denied.
	s.clock.advance(time.Minute)
	r2 := req(alice.CreateRequest(ctx, api.CreateRequest{HostGroup: "prod-db", Duration: "10m", Reason: "INC-2"}))
	req(alice.CancelRequest(ctx, r2.ID))
	r3 := req(alice.CreateRequest(ctx, api.CreateRequest{HostGroup: "prod-db", Duration: "10m", Reason: "INC-3"}))
	r4 := req(alice.CreateRequest(ctx, api.CreateRequest{HostGroup: "staging", Duration: "20m", Reason: "deploy check"}))
	s.clock.advance(3 * time.Hour)
	if err := s.svc.ExpirePending(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.svc.EndElapsedGrants(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.svc.EndElapsedGrants(ctx); err != nil { // nothing left to end: no second event
		t.Fatal(err)
	}
	r5 := req(erin.CreateRequest(ctx, api.CreateRequest{HostGroup: "prod-db", Duration: "10m", Reason: "curious"}))
	req(dave.Review(ctx, r5.ID, api.ReviewRequest{Event: ca.ReviewDeny, Body: "no ticket"}))

	type row struct{ typ, actor, request string }
	want := []row{
		{ca.EventRequestCreated, "alice", r1.ID},
		{ca.EventReview, "bob", r1.ID},
		{ca.EventRequestEdited, "alice", r1.ID},
		{ca.EventReview, "bob", r1.ID},
		{ca.EventGrantStarted, "alice", r1.ID},
		{ca.EventCertIssued, "alice", r1.ID},
		{ca.EventIssueRefused, "alice", r1.ID},
		{ca.EventRevoked, "bob", r1.ID},
		{ca.EventGrantEnded, "bob", r1.ID},
		{ca.EventRequestCreated, "alice", r2.ID},
		{ca.EventRequestCancelled, "alice", r2.ID},
		{ca.EventRequestCreated, "alice", r3.ID},
		{ca.EventRequestCreated, "alice", r4.ID},
		{ca.EventGrantStarted, "alice", r4.ID},
		{ca.EventRequestExpired, "jit-ssh", r3.ID},
		{ca.EventGrantEnded, "jit-ssh", r4.ID},
		{ca.EventRequestCreated, "erin", r5.ID},
		{ca.EventReview, "dave", r5.ID},
		{ca.EventRequestDenied, "dave", r5.ID},
	}
	got := events(t, carol, nil)
	var gotRows []row
	for _, ev := range got {
		gotRows = append(gotRows, row{ev.Type, ev.Actor, ev.RequestID})
	}
	if !slices.Equal(gotRows, want) {
		t.Fatalf("event log:\n got %v\nwant %v", gotRows, want)
	}
	for i, ev := range got {
		if ev.ID != int64(i+1) || ev.Time.IsZero() {
			t.Errorf("event %d: id %d time %s, want id %d and a time", i, ev.ID, ev.Time, i+1)
		}
	}

	// The data explains each decision.
	data := func(i int, key string) string { return strings.TrimSpace(strings.Trim(fmtAny(got[i].Data[key]), `"`)) }
	checks := []struct {
		i         int
		key, want string
	}{
		{0, "reason", "INC-1 replication lag"},
		{0, "duration", "30m0s"},
		{0, "approvals_required", "1"},
		{1, "event", ca.ReviewRequestChanges},
		{1, "body", "15m is enough"},
		{2, "duration", "15m0s"},
		{2, "previous_duration", "30m0s"},
		{2, "dismissed_reviews", "[bob:REQUEST_CHANGES]"},
		{3, "event", ca.ReviewApprove},
		{4, "approvers", "[bob]"},
		{5, "key_id", cert.KeyID},
		{5, "approvers", "[bob]"},
		{6, "code", "invalid_public_key"},
		{6, "fingerprint", ssh.FingerprintSHA256(rsaPub)},
		{7, "reason", "laptop stolen"},
		{8, "ended_early", "true"},
		{10, "previous_state", ca.StatePending},
		{14, "pending_ttl", "2h0m0s"},
		{15, "ended_early", "false"},
		{15, "reason", "duration elapsed"},
		{18, "body", "no ticket"},
	}
	for _, c := range checks {
		if g := data(c.i, c.key); g != c.want {
			t.Errorf("event %d (%s) data[%s] = %q, want %q", c.i+1, got[c.i].Type, c.key, g, c.want)
		}
	}
	if got[5].Serial != cert.Serial || got[7].Serial != cert.Serial {
		t.Errorf("issued/revoked events carry serials %q/%q, want %s", got[5].Serial, got[7].Serial, cert.Serial)
	}
	if !strings.Contains(data(6, "reason"), "2048 bits") {
		t.Errorf("refusal reason %q does not say what was wrong with the key", data(6, "reason"))
	}

	res := must[*api.VerifyResult](t)(carol.Verify(ctx))
	if !res.OK || res.Rows != int64(len(want)) {
		t.Errorf("Verify after the lifecycle = %+v, want ok with %d rows", res, len(want))
	}
}

func fmtAny(v any) string {
	switch x := v.(type) {
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmtAny(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case string:
		return x
	default:
		return ""
	}
}

// TestLedgerReadAccess: auditors read the whole ledger; everyone else only
// their own certificates and the events of their own requests.
func TestLedgerReadAccess(t *testing.T) {
	ctx := t.Context()
	s := newTestServer(t)
	alice, erin, bob, carol := s.as(t, "alice"), s.as(t, "erin"), s.as(t, "bob"), s.as(t, "carol")
	req, crt := must[*api.Request](t), must[*api.Certificate](t)
	issue := func(c *api.Client, group string) *api.Certificate {
		r := req(c.CreateRequest(ctx, api.CreateRequest{HostGroup: group, Duration: "10m", Reason: "work"}))
		if group == "prod-db" {
			req(bob.Review(ctx, r.ID, api.ReviewRequest{Event: ca.ReviewApprove}))
		}
		return crt(c.IssueCertificate(ctx, r.ID, subjectKey(t)))
	}
	aliceCert, erinCert := issue(alice, "prod-db"), issue(erin, "staging")

	serials := func(cs []api.Certificate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Serial)
		}
		slices.Sort(out)
		return out
	}
	both := []string{aliceCert.Serial, erinCert.Serial}
	slices.Sort(both)

	t.Run("auditor sees every certificate and event", func(t *testing.T) {
		if got := serials(certs(t, carol, api.CertificateFilter{})); !slices.Equal(got, both) {
			t.Errorf("carol's certificates = %v, want %v", got, both)
		}
		if got := serials(certs(t, carol, api.CertificateFilter{User: "erin"})); !slices.Equal(got, []string{erinCert.Serial}) {
			t.Errorf("carol's certificates of erin = %v, want erin's", got)
		}
		evs := events(t, carol, nil)
		actors := map[string]bool{}
		for _, ev := range evs {
			actors[ev.Actor] = true
		}
		if !actors["alice"] || !actors["erin"] || !actors["bob"] {
			t.Errorf("carol's events come from %v, want alice, erin and bob", actors)
		}
		if _, err := carol.GetCertificate(ctx, must[uint64](t)(strconv.ParseUint(aliceCert.Serial, 10, 64))); err != nil {
			t.Errorf("carol reading alice's certificate: %v", err)
		}
		if res, err := carol.Verify(ctx); err != nil || !res.OK {
			t.Errorf("carol verify = %+v, %v", res, err)
		}
		if _, err := carol.Report(ctx, time.Time{}); err != nil {
			t.Errorf("carol report: %v", err)
		}
	})

	t.Run("requester sees only their own", func(t *testing.T) {
		if got := serials(certs(t, alice, api.CertificateFilter{})); !slices.Equal(got, []string{aliceCert.Serial}) {
			t.Errorf("alice's certificates = %v, want only her own %s", got, aliceCert.Serial)
		}
		if got := serials(certs(t, alice, api.CertificateFilter{KeyID: erinCert.KeyID})); len(got) != 0 {
			t.Errorf("alice found erin's certificate by key id: %v", got)
		}
		err := alice.ListCertificates(ctx, api.CertificateFilter{User: "erin"}, func(api.Certificate) error { return nil })
		if !api.IsStatus(err, http.StatusForbidden) {
			t.Errorf("alice listing erin's certificates = %v, want 403", err)
		}
		_, err = alice.GetCertificate(ctx, must[uint64](t)(strconv.ParseUint(erinCert.Serial, 10, 64)))
		if !api.IsStatus(err, http.StatusNotFound) {
			t.Errorf("alice reading erin's certificate = %v, want 404", err)
		}
		evs := events(t, alice, nil)
		if len(evs) == 0 {
			t.Fatal("alice sees no events of her own")
		}
		sawReview := false
		for _, ev := range evs {
			if ev.RequestID != aliceCert.RequestID {
				t.Errorf("alice sees an event not about her request: %+v", ev)
			}
			sawReview = sawReview || (ev.Actor == "bob" && ev.Type == ca.EventReview)
		}
		if !sawReview {
			t.Errorf("alice does not see bob's review of her own request: %+v", evs)
		}
		err = alice.ListEvents(ctx, url.Values{"user": {"erin"}}, func(api.Event) error { return nil })
		if !api.IsStatus(err, http.StatusForbidden) {
			t.Errorf("alice listing erin's events = %v, want 403", err)
		}
		if _, err := alice.Verify(ctx); !api.IsStatus(err, http.StatusForbidden) {
			t.Errorf("alice verify = %v, want 403", err)
		}
		if _, err := alice.Report(ctx, time.Time{}); !api.IsStatus(err, http.StatusForbidden) {
			t.Errorf("alice report = %v, want 403", err)
		}
	})

	t.Run("an approver is not an auditor", func(t *testing.T) {
		if got := certs(t, bob, api.CertificateFilter{}); len(got) != 0 {
			t.Errorf("bob lists %d certificates, want none (he holds none)", len(got))
		}
		for _, ev := range events(t, bob, nil) {
			if ev.Actor != "bob" {
				t.Errorf("bob sees an event by %s: %+v", ev.Actor, ev)
			}
		}
		if _, err := bob.Verify(ctx); !api.IsStatus(err, http.StatusForbidden) {
			t.Errorf("bob verify = %v, want 403", err)
		}
	})

	t.Run("no token, no ledger", func(t *testing.T) {
		anon := must[*api.Client](t)(api.NewClient(s.url, ""))
		err := anon.ListEvents(ctx, nil, func(api.Event) error { return nil })
		if !api.IsStatus(err, http.StatusUnauthorized) {
			t.Errorf("anonymous events = %v, want 401", err)
		}
		err = anon.ListCertificates(ctx, api.CertificateFilter{}, func(api.Certificate) error { return nil })
		if !api.IsStatus(err, http.StatusUnauthorized) {
			t.Errorf("anonymous certificates = %v, want 401", err)
		}
	})
}
