package api

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// requestsOf counts login's requests in the ledger.
func (f *hardFixture) requestsOf(login string) int {
	f.t.Helper()
	var out struct {
		Requests []Request `json:"requests"`
	}
	f.must(call{token: tokenOf(login), method: "GET", path: "/v1/requests?mine=true"}, http.StatusOK, &out)
	return len(out.Requests)
}

func TestRateLimitRequestCreation(t *testing.T) {
	f := newHardFixture(t, WithLimits(Limits{Requests: Rate{PerMinute: 6, Burst: 3}}))
	body := jsonBody(CreateRequest{HostGroup: "prod-db", Reason: "x"})
	create := func(login string) reply {
		return f.do(call{token: tokenOf(login), method: "POST", path: "/v1/requests", body: body})
	}
	for i := range 3 {
		if r := create("alice"); r.status != http.StatusCreated {
			t.Fatalf("request %d within the burst: status %d %s", i+1, r.status, r.body)
		}
	}
	r := create("alice")
	if r.status != http.StatusTooManyRequests || r.code != "rate_limited" {
		t.Fatalf("request after the burst: status %d %q, want 429 rate_limited", r.status, r.code)
	}
	// 6 a minute: the next token is 10 s away.
	if r.retryAfter != "10" {
		t.Fatalf("Retry-After %q, want 10", r.retryAfter)
	}
	if n := f.requestsOf("alice"); n != 3 {
		t.Fatalf("alice has %d requests in the ledger, want 3: the refused one must not be recorded", n)
	}
	// Other identities have their own bucket.
	if r := create("erin"); r.status != http.StatusCreated {
		t.Fatalf("erin after alice was limited: status %d %s", r.status, r.body)
	}
	// Other endpoints are not limited for alice.
	f.must(call{token: tokenOf("alice"), method: "GET", path: "/v1/requests"}, http.StatusOK, nil)
	// Still limited just before the token, allowed once it is there.
	f.clock.advance(9 * time.Second)
	if r := create("alice"); r.status != http.StatusTooManyRequests || r.retryAfter != "1" {
		t.Fatalf("9 s later: status %d Retry-After %q, want 429 and 1", r.status, r.retryAfter)
	}
	f.clock.advance(time.Second)
	if r := create("alice"); r.status != http.StatusCreated {
		t.Fatalf("after Retry-After: status %d %s", r.status, r.body)
	}
}

func TestRateLimitIssuance(t *testing.T) {
	f := newHardFixture(t, WithLimits(Limits{Certificates: Rate{PerMinute: 2, Burst: 2}}))
	aliceGrant := f.create("alice", "staging", "")
	erinGrant := f.create("erin", "staging", "")
	issue := func(login, id string) reply {
		return f.do(call{token: tokenOf(login), method: "POST", path: "/v1/certificates", body: issueBody(id, f.key)})
	}
	for i := range 2 {
		if r := issue("alice", aliceGrant); r.status != http.StatusCreated {
			t.Fatalf("certificate %d within the burst: status %d %s", i+1, r.status, r.body)
		}
	}
	before := f.serials()
	r := issue("alice", aliceGrant)
	if r.status != http.StatusTooManyRequests || r.code != "rate_limited" || r.retryAfter != "30" {
		t.Fatalf("certificate after the burst: status %d %q Retry-After %q, want 429 rate_limited 30", r.status, r.code, r.retryAfter)
	}
	if after := f.serials(); len(after) != len(before) {
		t.Fatalf("a rate-limited issuance changed the ledger: %d -> %d certificates", len(before), len(after))
	}
	if r := issue("erin", erinGrant); r.status != http.StatusCreated {
		t.Fatalf("erin after alice was limited: status %d %s", r.status, r.body)
	}
	// Request creation has its own (here unlimited) budget.
	f.create("alice", "staging", "")
	f.clock.advance(30 * time.Second)
	if r := issue("alice", aliceGrant); r.status != http.StatusCreated {
		t.Fatalf("after Retry-After: status %d %s", r.status, r.body)
	}
}

func TestLimiterDropsIdleBuckets(t *testing.T) {
	l := newLimiter("requests", Rate{PerMinute: 60, Burst: 2})
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for i := range maxBuckets {
		if _, ok := l.allow("user"+strconv.Itoa(i), now); !ok {
			t.Fatalf("first call of a new login refused")
		}
	}
	// Two seconds on, every bucket is full again: a new login sweeps them.
	if _, ok := l.allow("newcomer", now.Add(2*time.Second)); !ok {
		t.Fatalf("newcomer refused")
	}
	if n := len(l.buckets); n != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", n)
	}
	if newLimiter("requests", Rate{}) != nil {
		t.Fatalf("a zero rate must mean no limiter")
	}
}

// serveReal runs the fixture's handler in the http.Server that `serve`
// uses and returns its address.
func serveReal(t *testing.T, h http.Handler, opts ...HTTPOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := HTTPServer(ln.Addr().String(), h, opts...)
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return ln.Addr().String()
}

func TestOversizedBody(t *testing.T) {
	f := newHardFixture(t)
	id := f.create("alice", "staging", "")
	before := f.serials()
	r := f.do(call{token: tokenOf("alice"), method: "POST", path: "/v1/certificates",
		body: issueBody(id, f.key+" "+strings.Repeat("c", MaxBodyBytes))})
	if r.status != http.StatusRequestEntityTooLarge || r.code != "body_too_large" {
		t.Fatalf("status %d %q, want 413 body_too_large", r.status, r.code)
	}
	if after := f.serials(); len(after) != len(before) {
		t.Fatalf("certificates changed")
	}
}

func TestOversizedHeader(t *testing.T) {
	f := newHardFixture(t)
	addr := serveReal(t, f.srv)
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/requests", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokenOf("alice"))
	req.Header.Set("X-Padding", strings.Repeat("p", 2*MaxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
	// A normal request on the same server still works.
	req.Header.Del("X-Padding")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("normal request after the big one: status %d", resp.StatusCode)
	}
}

// TestSlowlorisCutOff holds a connection open with headers that never end;
// the server must close it once ReadHeaderTimeout passes.
func TestSlowlorisCutOff(t *testing.T) {
	f := newHardFixture(t)
	addr := serveReal(t, f.srv, WithTimeouts(Timeouts{ReadHeader: 200 * time.Millisecond}))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: jit-ssh\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	// A safety net far beyond the timeout, so a server that never cuts the
	// client off fails the test instead of hanging it.
	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(make([]byte, 512))
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("the server kept the half-sent request open for %s", time.Since(start))
	case err == nil:
		t.Fatalf("the server answered %d bytes to a request whose headers never ended", n)
	case !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET):
		t.Fatalf("read: %v, want the connection closed", err)
	}
	t.Logf("slowloris connection closed by the server after %s (ReadHeaderTimeout 200ms)", time.Since(start).Round(time.Millisecond))

	// The server is still serving others.
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz after the slowloris: %d", resp.StatusCode)
	}
}

// TestLongPollOutlivesWriteTimeout checks the per-route write deadline: a
// long-poll longer than the server-wide write timeout still gets its answer.
func TestLongPollOutlivesWriteTimeout(t *testing.T) {
	f := newHardFixture(t)
	id := f.create("alice", "prod-db", "")
	addr := serveReal(t, f.srv, WithTimeouts(Timeouts{Write: 100 * time.Millisecond}))
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/requests/"+id+"?wait=400ms", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokenOf("alice"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("long-poll cut off: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(bufio.NewReader(resp.Body))
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), id) {
		t.Fatalf("long-poll: status %d, %v, body %q", resp.StatusCode, err, body)
	}
}

// TestStreamOutlivesWriteTimeout checks the same for a streamed listing
// whose writing goes on past the server-wide write timeout.
func TestStreamOutlivesWriteTimeout(t *testing.T) {
	f := newHardFixture(t)
	id := f.create("alice", "staging", "")
	for range 3 {
		f.issue("alice", id)
	}
	// Slow the listing down from inside: each row waits past the timeout.
	slow := NewServer(f.svc, f.iss, f.sign, &slowLedger{Store: f.db, delay: 60 * time.Millisecond}, WithClock(f.clock.now))
	addr := serveReal(t, slow, WithTimeouts(Timeouts{Write: 50 * time.Millisecond}))
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/certificates", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokenOf("alice"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("listing cut off: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("listing: status %d, %v", resp.StatusCode, err)
	}
	if n := strings.Count(string(body), "\n"); n != 3 {
		t.Fatalf("listing has %d lines, want 3: %q", n, body)
	}
}

// slowLedger delays each listed certificate.
type slowLedger struct {
	Store
	delay time.Duration
}

func (s *slowLedger) ListCertificates(ctx context.Context, f ca.CertFilter, fn func(*ca.Certificate) error) error {
	return s.Store.ListCertificates(ctx, f, func(c *ca.Certificate) error {
		time.Sleep(s.delay)
		return fn(c)
	})
}

// eventCount counts the ledger's events.
func (f *hardFixture) eventCount() int {
	f.t.Helper()
	n := 0
	if err := f.db.ListEvents(context.Background(), ca.EventFilter{}, func(*ca.Event) error { n++; return nil }); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// TestWriteBudgetCutsOffAFlood: one identity hammering every endpoint that
// writes to the ledger (refused reviews, edits, cancels, revocations,
// certificates) is cut off with 429 and Retry-After once its write budget
// is spent, whatever the endpoint; what it wrote is bounded by the budget
// and its identical refusals are counted, not recorded one each. Another
// identity is unaffected, and reads stay open.
func TestWriteBudgetCutsOffAFlood(t *testing.T) {
	const burst = 12
	f := newHardFixture(t, WithLimits(Limits{Writes: Rate{PerMinute: 60, Burst: burst}}))
	id := f.create("alice", "prod-db", "") // 1 of alice's budget
	erinGrant := f.create("erin", "staging", "")
	before := f.eventCount()
	refusedReview := call{token: tokenOf("alice"), method: "POST", path: "/v1/requests/" + id + "/reviews", body: `{"event":"APPROVE","body":"me"}`}
	calls := []call{
		refusedReview, // 403 not_an_approver: alice is not an approver
		{token: tokenOf("alice"), method: "PATCH", path: "/v1/requests/" + id, body: `{"reason":"again"}`},
		{token: tokenOf("alice"), method: "POST", path: "/v1/requests/" + id + "/reviews", body: `{"event":"COMMENT","body":"ping"}`},
		refusedReview,
		{token: tokenOf("alice"), method: "POST", path: "/v1/revocations", body: `{"user":"erin","reason":"x"}`},
		refusedReview,
		{token: tokenOf("alice"), method: "POST", path: "/v1/certificates", body: jsonBody(IssueRequest{RequestID: id, PublicKey: f.key})},
	}
	served, limited := 0, 0
	for i := range 20 * len(calls) {
		c := calls[i%len(calls)]
		r := f.do(c)
		if r.status == http.StatusTooManyRequests {
			if r.code != "rate_limited" || r.retryAfter != "1" {
				t.Fatalf("%s %s: 429 %q Retry-After %q, want rate_limited and 1 (60 a minute)", c.method, c.path, r.code, r.retryAfter)
			}
			limited++
			continue
		}
		if limited > 0 {
			t.Fatalf("%s %s answered %d after the budget was spent", c.method, c.path, r.status)
		}
		served++
	}
	if served != burst-1 || limited != 20*len(calls)-served {
		t.Fatalf("%d calls served, %d limited; want the budget (%d) served and the rest limited", served, limited, burst-1)
	}
	// The served calls: 4 identical refused reviews, the first recorded and
	// three counted; the rest one event each at most.
	added := f.eventCount() - before
	if added > served-3 {
		t.Errorf("the flood wrote %d events for %d served calls, want at most %d (identical refusals counted)", added, served, served-3)
	}
	reviewRefusals := 0
	if err := f.db.ListEvents(context.Background(), ca.EventFilter{Type: "review.refused"}, func(*ca.Event) error { reviewRefusals++; return nil }); err != nil {
		t.Fatal(err)
	}
	if reviewRefusals != 1 {
		t.Errorf("%d review.refused events for 4 identical refusals, want 1 until the window closes", reviewRefusals)
	}
	// An issuance refused by the write budget counts as a rate-limited
	// certificate.
	f.srv.metrics.mu.Lock()
	limitedCerts := f.srv.metrics.refused["rate_limited"]
	f.srv.metrics.mu.Unlock()
	if limitedCerts == 0 {
		t.Errorf("issuances refused by the write budget are not counted as rate_limited")
	}
	// Others write as before; alice still reads.
	if r := f.do(call{token: tokenOf("erin"), method: "POST", path: "/v1/certificates", body: issueBody(erinGrant, f.key)}); r.status != http.StatusCreated {
		t.Fatalf("erin's certificate during alice's flood: status %d %s", r.status, r.body)
	}
	f.must(call{token: tokenOf("alice"), method: "GET", path: "/v1/requests/" + id}, http.StatusOK, nil)
	// One token a second: alice may write again after Retry-After.
	f.clock.advance(time.Second)
	if r := f.do(calls[1]); r.status != http.StatusOK {
		t.Fatalf("alice's edit after Retry-After: status %d %s", r.status, r.body)
	}
	if r := f.do(calls[1]); r.status != http.StatusTooManyRequests {
		t.Fatalf("alice's second edit in that second: status %d, want 429", r.status)
	}
}

// TestLimitsAreAllOrNothing: a call that fits its own kind's bucket but not
// the write budget (or the reverse) is refused without spending the token
// it did get.
func TestLimitsAreAllOrNothing(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	kind, writes := newLimiter("requests", Rate{PerMinute: 60, Burst: 5}), newLimiter("ledger writes", Rate{PerMinute: 60, Burst: 1})
	if _, _, ok := allowAll([]*limiter{kind, writes, nil}, "alice", now); !ok {
		t.Fatal("first call refused")
	}
	l, wait, ok := allowAll([]*limiter{kind, writes}, "alice", now)
	if ok || l != writes || wait != time.Second {
		t.Fatalf("second call: refused by %v after %s (ok %v), want the write budget, 1s", l, wait, ok)
	}
	if got := kind.buckets["alice"].TokensAt(now); got != 4 {
		t.Errorf("the refused call spent the requests bucket: %g tokens left, want 4", got)
	}
}
