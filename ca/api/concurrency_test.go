package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/static"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// Load of TestConcurrentLoginsReviewsAudits.
const (
	concRequesters = 30
	concApprovers  = 5
	concAuditors   = 3
	concRounds     = 2 // per requester: one staging login (2 certs) and one prod-db login (review, long-poll, cert)
)

// concPolicies are the dev server's two groups.
func concPolicies() []*approval.Policy {
	return []*approval.Policy{
		{Group: "staging", Principals: []string{"staging"}, Requesters: []string{"backend"}, ApprovalsRequired: 0,
			MaxDuration: time.Hour, CertTTL: 5 * time.Minute, Extensions: []string{"permit-pty"}},
		{Group: "prod-db", Principals: []string{"prod-db"}, Requesters: []string{"backend"}, Approvers: []string{"sre-leads"},
			ApprovalsRequired: 1, MaxDuration: time.Hour, CertTTL: 5 * time.Minute, Extensions: []string{"permit-pty"}},
	}
}

// concServer runs the real service in process (so -race sees the server's
// code): NewServer on httptest, a SQLite ledger file, the file signer and a
// static directory.
func concServer(t *testing.T) (*httptest.Server, *sqlite.DB) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	signer, err := ca.LoadOrCreateFileSigner(filepath.Join(dir, "ca_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]static.User{}
	for i := range concRequesters {
		users[fmt.Sprintf("user%02d", i)] = static.User{Token: fmt.Sprintf("tok-user%02d", i), Teams: []string{"backend"}}
	}
	for i := range concApprovers {
		users[fmt.Sprintf("approver%d", i)] = static.User{Token: fmt.Sprintf("tok-approver%d", i), Teams: []string{"sre-leads"}}
	}
	for i := range concAuditors {
		users[fmt.Sprintf("auditor%d", i)] = static.User{Token: fmt.Sprintf("tok-auditor%d", i), Teams: []string{"security"}}
	}
	svc := approval.NewService(db, static.New(users), concPolicies(), []string{"security"})
	srv := api.NewServer(svc, ca.NewIssuer(signer, db), signer, db)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs, db
}

func concClient(t *testing.T, base, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(base, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func concKey() (string, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	return string(ssh.MarshalAuthorizedKey(k)), nil
}

// concErrors collects every unexpected outcome; a "database is locked" or
// SQLITE_BUSY reaching a client is one of them (it shows as a 503 or 500).
type concErrors struct {
	mu   sync.Mutex
	errs []string
	busy int
}

func (e *concErrors) add(what string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	msg := fmt.Sprintf("%s: %v", what, err)
	var ae *api.Error
	if errors.As(err, &ae) {
		msg = fmt.Sprintf("%s: %d %s: %s", what, ae.Status, ae.Code, ae.Message)
	}
	low := strings.ToLower(msg)
	if strings.Contains(low, "locked") || strings.Contains(low, "busy") || strings.Contains(low, "ledger_unavailable") {
		e.busy++
	}
	e.errs = append(e.errs, msg)
}

// TestConcurrentLoginsReviewsAudits runs hundreds of concurrent logins
// (requests, approvals, long-polls, issuances) while auditors read the
// ledger, and requires every answer to be the expected success: SQLite's
// single writer must queue writers, never fail them.
func TestConcurrentLoginsReviewsAudits(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short (make test runs it): a concurrency stress test")
	}
	hs, db := concServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs concErrors
	var calls, certs atomic.Int64
	serials := sync.Map{}
	issue := func(c *api.Client, who, reqID string) {
		key, err := concKey()
		if err != nil {
			errs.add(who+": key", err)
			return
		}
		calls.Add(1)
		cert, err := c.IssueCertificate(ctx, reqID, key)
		if err != nil {
			errs.add(who+": issue", err)
			return
		}
		if _, dup := serials.LoadOrStore(cert.Serial, who); dup {
			errs.add(who, fmt.Errorf("serial %s issued twice", cert.Serial))
		}
		certs.Add(1)
	}

	start := time.Now()
	var logins sync.WaitGroup
	for i := range concRequesters {
		who := fmt.Sprintf("user%02d", i)
		c := concClient(t, hs.URL, "tok-"+who)
		approver := concClient(t, hs.URL, fmt.Sprintf("tok-approver%d", i%concApprovers))
		commenter := concClient(t, hs.URL, fmt.Sprintf("tok-approver%d", (i+1)%concApprovers))
		logins.Go(func() {
			for range concRounds {
				// staging: auto-approved, two certificates.
				calls.Add(1)
				req, err := c.CreateRequest(ctx, api.CreateRequest{HostGroup: "staging", Duration: "30m", Reason: "load"})
				if err != nil {
					errs.add(who+": create staging", err)
					return
				}
				issue(c, who, req.ID)
				issue(c, who, req.ID)

				// prod-db: the requester long-polls while one approver
				// comments and another approves, then gets a certificate.
				calls.Add(1)
				req, err = c.CreateRequest(ctx, api.CreateRequest{HostGroup: "prod-db", Duration: "30m", Reason: "load"})
				if err != nil {
					errs.add(who+": create prod-db", err)
					return
				}
				var reviews sync.WaitGroup
				reviews.Go(func() {
					calls.Add(2)
					if _, err := commenter.Review(ctx, req.ID, api.ReviewRequest{Event: "COMMENT", Body: "looking"}); err != nil {
						errs.add(who+": comment", err)
					}
					if _, err := approver.Review(ctx, req.ID, api.ReviewRequest{Event: "APPROVE", Body: "ok"}); err != nil {
						errs.add(who+": approve", err)
					}
				})
				got := req
				for got.State == "pending" {
					calls.Add(1)
					if got, err = c.GetRequest(ctx, req.ID, 20*time.Second, got.Version); err != nil {
						errs.add(who+": long-poll", err)
						break
					}
				}
				reviews.Wait()
				if err == nil && got.State != "approved" {
					errs.add(who, fmt.Errorf("prod-db request %s is %s after approval", req.ID, got.State))
					return
				}
				issue(c, who, req.ID)
			}
		})
	}

	// Auditors read all the while.
	stop := make(chan struct{})
	var audits sync.WaitGroup
	var reads atomic.Int64
	for i := range concAuditors {
		who := fmt.Sprintf("auditor%d", i)
		c := concClient(t, hs.URL, "tok-"+who)
		audits.Go(func() {
			for n := 0; ; n++ {
				// Auditors pace themselves a little: the point is reads
				// overlapping writes, not starving the writers of CPU.
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				var err error
				switch n % 4 {
				case 0:
					err = c.ListCertificates(ctx, api.CertificateFilter{}, func(api.Certificate) error { return nil })
				case 1:
					err = c.ListEvents(ctx, url.Values{}, func(api.Event) error { return nil })
				case 2:
					var v *api.VerifyResult
					if v, err = c.Verify(ctx); err == nil && !v.OK {
						err = fmt.Errorf("verify: %s at row %d", v.Problem, v.BadRow)
					}
				case 3:
					_, err = c.ListRequests(ctx, api.ListRequestsOptions{})
				}
				reads.Add(1)
				if err != nil {
					errs.add(who+": read "+strconv.Itoa(n%4), err)
				}
			}
		})
	}
	logins.Wait()
	close(stop)
	audits.Wait()
	elapsed := time.Since(start)

	for i, e := range errs.errs {
		if i == 20 {
			t.Errorf("... and %d more", len(errs.errs)-20)
			break
		}
		t.Error(e)
	}
	if errs.busy > 0 {
		t.Errorf("%d answers were lock or busy errors from the ledger", errs.busy)
	}
	want := int64(concRequesters * concRounds * 3)
	if certs.Load() != want {
		t.Errorf("clients received %d certificates, want %d", certs.Load(), want)
	}
	var inLedger int64
	if err := db.ListCertificates(ctx, ca.CertFilter{}, func(*ca.Certificate) error { inLedger++; return nil }); err != nil {
		t.Fatal(err)
	}
	if inLedger != certs.Load() {
		t.Errorf("the ledger holds %d certificates, clients received %d", inLedger, certs.Load())
	}
	if _, err := db.Verify(ctx); err != nil {
		t.Errorf("ledger verify after the load: %v", err)
	}
	t.Logf("%d login/review/issue calls and %d audit reads by %d clients in %s: %d certificates, %d errors",
		calls.Load(), reads.Load(), concRequesters+concApprovers+concAuditors, elapsed.Round(time.Millisecond), certs.Load(), len(errs.errs))
}
