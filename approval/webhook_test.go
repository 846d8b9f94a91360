package approval_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/notify"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// The webhook is a Notifier; it cannot say so itself without importing
// approval.
var _ approval.Notifier = (*notify.Webhook)(nil)

// webhookSecretPath stands for the secret part of a Slack incoming-webhook
// URL; it must never show in logs.
const webhookSecretPath = "/services/T000/B000/XXXXsecretXXXX"

// delivery is one POST the receiver got.
type delivery struct {
	contentType string
	userAgent   string
	body        []byte
	text        string
}

// receiver is the outside world: an HTTP server that takes webhook posts.
// Until release is called, its handler holds every post (a slow
// receiver); status is what it answers.
type receiver struct {
	srv    *httptest.Server
	got    chan delivery
	hold   chan struct{}
	once   sync.Once
	status int
}

func newReceiver(t *testing.T, held bool, status int) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan delivery, 64), hold: make(chan struct{}), status: status}
	if !held {
		rc.release()
	}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-rc.hold
		b, _ := io.ReadAll(r.Body)
		d := delivery{contentType: r.Header.Get("Content-Type"), userAgent: r.Header.Get("User-Agent"), body: b}
		var msg struct {
			Text string `json:"text"`
		}
		if r.Method != http.MethodPost || r.URL.Path != webhookSecretPath || json.Unmarshal(b, &msg) != nil {
			d.text = "BAD " + r.Method + " " + r.URL.Path + " " + string(b)
		} else {
			d.text = msg.Text
		}
		rc.got <- d
		w.WriteHeader(rc.status)
	}))
	t.Cleanup(func() { rc.release(); rc.srv.Close() })
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + webhookSecretPath }

func (rc *receiver) release() { rc.once.Do(func() { close(rc.hold) }) }

// next returns the next delivery, failing the test if none comes.
func (rc *receiver) next(t *testing.T) delivery {
	t.Helper()
	select {
	case d := <-rc.got:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver got no notification")
		return delivery{}
	}
}

// lockedBuffer collects log output written from the webhook's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newWebhookEnv is newEnv with the webhook as the service's notifier.
func newWebhookEnv(t *testing.T, w approval.Notifier) *env {
	t.Helper()
	clk := &testClock{t: t0}
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"), sqlite.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc := approval.NewService(db, staticDirectory(), testPolicies(), []string{"security"},
		approval.WithClock(clk.now), approval.WithPendingTTL(pendingTTL), approval.WithNotifier(w))
	return &env{svc: svc, db: db, clk: clk}
}

func newTestWebhook(t *testing.T, url string, opts ...notify.Option) *notify.Webhook {
	t.Helper()
	w, err := notify.NewWebhook(url, opts...)
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	t.Cleanup(func() { w.Close(t.Context()) })
	return w
}

// checkNoSecrets fails if s holds any token of the directory or the
// webhook URL's secret path.
func checkNoSecrets(t *testing.T, what, s string) {
	t.Helper()
	for login := range users {
		if strings.Contains(s, "token-"+login) {
			t.Errorf("%s carries %s's token: %q", what, login, s)
		}
	}
	if strings.Contains(s, "XXXXsecretXXXX") {
		t.Errorf("%s carries the webhook URL's secret: %q", what, s)
	}
}

// TestWebhookPostsEveryLifecycleEvent drives requests through the service
// and checks the receiver gets one Slack-compatible message per committed
// change: created, reviewed, approved, denied and expired.
func TestWebhookPostsEveryLifecycleEvent(t *testing.T) {
	rc := newReceiver(t, false, http.StatusOK)
	e := newWebhookEnv(t, newTestWebhook(t, rc.url()))

	r := e.create(t, "alice", "prod-db", time.Hour)
	e.clk.advance(time.Second)
	if _, err := e.svc.Review(t.Context(), "dave", r.ID, ca.ReviewRequestChanges, "use the read replica"); err != nil {
		t.Fatal(err)
	}
	e.clk.advance(time.Second)
	if _, err := e.svc.Review(t.Context(), "bob", r.ID, ca.ReviewComment, "<!channel> which table?"); err != nil {
		t.Fatal(err)
	}
	e.clk.advance(time.Second)
	e.review(t, "bob", r.ID, ca.ReviewApprove)
	e.clk.advance(time.Second)
	approvedAt := e.clk.now()
	if got := e.review(t, "dave", r.ID, ca.ReviewApprove); got.State != ca.StateApproved {
		t.Fatalf("state after two approvals = %s, want approved", got.State)
	}

	denied := e.create(t, "erin", "db-one", 30*time.Minute)
	if _, err := e.svc.Review(t.Context(), "frank", denied.ID, ca.ReviewDeny, "change freeze"); err != nil {
		t.Fatal(err)
	}

	stale := e.create(t, "alice", "db-one", 30*time.Minute)
	e.clk.advance(pendingTTL)
	if err := e.svc.ExpirePending(t.Context()); err != nil {
		t.Fatal(err)
	}

	auto := e.create(t, "erin", "staging", 10*time.Minute)

	want := []struct {
		name     string
		contains []string
		lacks    []string
	}{
		{"created", []string{"alice requests prod-db for 1h (" + r.ID + ")", "Needs 2 approval(s) from sre-leads",
			"jit-ssh review " + r.ID + " --approve", "Reason: “INC-42: replica lag”"}, nil},
		{"reviewed: request changes", []string{"dave requested changes on " + r.ID + " (prod-db for alice)", "“use the read replica”"}, nil},
		{"reviewed: comment, escaped", []string{"bob commented on " + r.ID, "&lt;!channel&gt; which table?"}, []string{"<!channel>"}},
		{"reviewed: one approval of two", []string{"bob approved (1 of 2) " + r.ID}, nil},
		// dave's change request came first, so he is listed first.
		{"approved", []string{r.ID + " (prod-db for alice) approved by dave, bob",
			"the grant ends " + approvedAt.Add(time.Hour).UTC().Format(time.RFC3339)}, nil},
		{"created for the denied one", []string{"erin requests db-one for 30m (" + denied.ID + ")"}, nil},
		{"denied", []string{"frank denied " + denied.ID + " (db-one for erin)", "“change freeze”"}, nil},
		{"created for the stale one", []string{"alice requests db-one for 30m (" + stale.ID + ")"}, nil},
		{"expired", []string{stale.ID + " (db-one for alice) expired without enough approvals"}, nil},
		{"auto-approved", []string{"erin was granted staging for 10m (" + auto.ID + "), auto-approved by policy"}, nil},
	}
	for _, w := range want {
		d := rc.next(t)
		if ct, _, _ := mime.ParseMediaType(d.contentType); ct != "application/json" {
			t.Errorf("%s: Content-Type %q, want application/json", w.name, d.contentType)
		}
		if d.userAgent != "jit-ssh" {
			t.Errorf("%s: User-Agent %q, want jit-ssh", w.name, d.userAgent)
		}
		// Slack's incoming webhooks want an object with a "text" string.
		var obj map[string]any
		if err := json.Unmarshal(d.body, &obj); err != nil {
			t.Fatalf("%s: body is not a JSON object: %v: %s", w.name, err, d.body)
		}
		if _, ok := obj["text"].(string); !ok || len(obj) != 1 {
			t.Errorf("%s: body %s, want exactly {\"text\": \"...\"}", w.name, d.body)
		}
		if !strings.HasPrefix(d.text, "jit-ssh: ") {
			t.Errorf("%s: text %q does not start with \"jit-ssh: \"", w.name, d.text)
		}
		for _, c := range w.contains {
			if !strings.Contains(d.text, c) {
				t.Errorf("%s: text %q\n  lacks %q", w.name, d.text, c)
			}
		}
		for _, c := range w.lacks {
			if strings.Contains(d.text, c) {
				t.Errorf("%s: text %q\n  has %q", w.name, d.text, c)
			}
		}
		checkNoSecrets(t, w.name, string(d.body))
	}
	select {
	case d := <-rc.got:
		t.Errorf("unexpected extra notification %q", d.text)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestWebhookNeverBlocksDecisions: a receiver that does not answer (or is
// gone) neither delays nor fails a decision, and what it cost is logged
// without the webhook URL's secret.
func TestWebhookNeverBlocksDecisions(t *testing.T) {
	t.Run("slow receiver", func(t *testing.T) {
		rc := newReceiver(t, true, http.StatusOK) // holds every post until released
		logs := &lockedBuffer{}
		w := newTestWebhook(t, rc.url(), notify.WithQueue(2), notify.WithTimeout(time.Minute),
			notify.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
		e := newWebhookEnv(t, w)

		// Far more notifications than the queue holds, all while the
		// receiver sits on the first post. If Notify waited for the
		// receiver, these calls would never return.
		done := make(chan *ca.Request, 1)
		go func() {
			var last *ca.Request
			for range 5 {
				r, err := e.svc.Create(t.Context(), "alice", "db-one", 30*time.Minute, "INC-7")
				if err != nil {
					t.Error(err)
					break
				}
				e.clk.advance(time.Second)
				if last, err = e.svc.Review(t.Context(), "bob", r.ID, ca.ReviewApprove, "ok"); err != nil {
					t.Error(err)
					break
				}
			}
			done <- last
		}()
		var last *ca.Request
		select {
		case last = <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("decisions did not return while the webhook receiver was stuck")
		}
		if last == nil || last.State != ca.StateApproved {
			t.Fatalf("last request = %+v, want approved", last)
		}
		if stored, err := e.db.GetRequest(t.Context(), last.ID); err != nil || stored.State != ca.StateApproved {
			t.Fatalf("stored request = %+v, %v; want approved", stored, err)
		}
		if !strings.Contains(logs.String(), "webhook queue full, notification dropped") {
			t.Errorf("overflow was not logged:\n%s", logs.String())
		}
		checkNoSecrets(t, "log", logs.String())

		// Once the receiver answers, what was queued is delivered; the
		// dropped rest is not.
		rc.release()
		w.Close(t.Context())
		n := len(rc.got)
		if n < 1 || n > 3 { // one in flight plus a queue of two
			t.Errorf("receiver got %d notifications after release, want between 1 and 3 (10 sent, queue of 2)", n)
		}
	})

	t.Run("receiver down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := "http://" + ln.Addr().String() + webhookSecretPath
		ln.Close() // nothing listens there any more
		logs := &lockedBuffer{}
		w := newTestWebhook(t, dead, notify.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
		e := newWebhookEnv(t, w)

		r := e.create(t, "alice", "db-one", 30*time.Minute)
		if got := e.review(t, "bob", r.ID, ca.ReviewApprove); got.State != ca.StateApproved {
			t.Fatalf("state = %s, want approved although the receiver is down", got.State)
		}
		if _, err := e.svc.Authorize(t.Context(), "alice", r.ID); err != nil {
			t.Fatalf("Authorize with the receiver down: %v", err)
		}
		w.Close(t.Context())
		out := logs.String()
		if strings.Count(out, "webhook notification not delivered") != 2 {
			t.Errorf("want two delivery failures logged (created, approved), got:\n%s", out)
		}
		if !strings.Contains(out, "webhook_host="+ln.Addr().String()) {
			t.Errorf("failure log does not name the receiver's host:\n%s", out)
		}
		checkNoSecrets(t, "log", out)
	})

	t.Run("receiver refuses", func(t *testing.T) {
		rc := newReceiver(t, false, http.StatusInternalServerError)
		logs := &lockedBuffer{}
		w := newTestWebhook(t, rc.url(), notify.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
		e := newWebhookEnv(t, w)
		r := e.create(t, "alice", "db-one", 30*time.Minute)
		if got := e.review(t, "bob", r.ID, ca.ReviewApprove); got.State != ca.StateApproved {
			t.Fatalf("state = %s, want approved although the receiver fails", got.State)
		}
		w.Close(t.Context())
		if !strings.Contains(logs.String(), "receiver answered 500 Internal Server Error") {
			t.Errorf("the receiver's 500 was not logged:\n%s", logs.String())
		}
		checkNoSecrets(t, "log", logs.String())
	})
}

// TestWebhookDoesNotFollowRedirects: a receiver that redirects does not
// get the message re-sent elsewhere.
func TestWebhookDoesNotFollowRedirects(t *testing.T) {
	elsewhere := newReceiver(t, false, http.StatusOK)
	redirector := httptest.NewServer(http.RedirectHandler(elsewhere.url(), http.StatusTemporaryRedirect))
	t.Cleanup(redirector.Close)
	logs := &lockedBuffer{}
	w := newTestWebhook(t, redirector.URL+webhookSecretPath, notify.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	w.Notify(t.Context(), ca.Notification{Kind: ca.NotifyExpired, Actor: "jit-ssh",
		Request: ca.Request{ID: "r-x", HostGroup: "db-one", Requester: "alice"}})
	w.Close(t.Context())
	if n := len(elsewhere.got); n != 0 {
		t.Errorf("the redirect target got %d posts, want 0", n)
	}
	if !strings.Contains(logs.String(), "receiver answered 307") {
		t.Errorf("the redirect was not logged as a failure:\n%s", logs.String())
	}
}

func TestWebhookCloseStopsAccepting(t *testing.T) {
	rc := newReceiver(t, false, http.StatusOK)
	w := newTestWebhook(t, rc.url())
	n := ca.Notification{Kind: ca.NotifyExpired, Actor: "jit-ssh",
		Request: ca.Request{ID: "r-x", HostGroup: "db-one", Requester: "alice"}}
	w.Notify(t.Context(), n)
	w.Close(t.Context())
	if got := len(rc.got); got != 1 {
		t.Fatalf("Close delivered %d queued notifications, want 1", got)
	}
	w.Notify(t.Context(), n) // after Close: dropped, no panic
	w.Close(t.Context())     // twice: no panic
	if got := len(rc.got); got != 1 {
		t.Errorf("a notification after Close was delivered (%d posts)", got)
	}
}
