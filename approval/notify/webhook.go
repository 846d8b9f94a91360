package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Webhook defaults.
const (
	// DefaultTimeout bounds one post.
	DefaultTimeout = 5 * time.Second
	// DefaultQueue is how many messages may wait for delivery.
	DefaultQueue = 256
	// maxText is how many runes of a reason or review body a message quotes.
	maxText = 300
)

// Webhook is a notifier (it implements approval.Notifier) that posts Slack-compatible JSON ({"text": "..."})
// to an incoming-webhook URL. Notify only formats the message and queues
// it: a full queue drops the message (and logs that), so a slow or dead
// receiver never delays or fails a decision. One goroutine posts, each post
// bounded by the timeout; failures are logged, not retried. The URL is
// treated as a secret (Slack's carry one) and only its host is logged.
// Messages never carry tokens.
type Webhook struct {
	url     string
	host    string
	timeout time.Duration
	hc      *http.Client
	log     *slog.Logger

	queue chan []byte
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// Option configures a Webhook.
type Option func(*Webhook)

// WithTimeout bounds each post (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(w *Webhook) { w.timeout = d } }

// WithHTTPClient sets the HTTP client; nil means a plain client that
// does not follow redirects.
func WithHTTPClient(c *http.Client) Option { return func(w *Webhook) { w.hc = c } }

// WithLogger sets the logger for delivery failures.
func WithLogger(l *slog.Logger) Option { return func(w *Webhook) { w.log = l } }

// WithQueue sets how many messages may wait for delivery (default
// DefaultQueue).
func WithQueue(n int) Option {
	return func(w *Webhook) {
		if n > 0 {
			w.queue = make(chan []byte, n)
		}
	}
}

// NewWebhook starts a webhook notifier posting to rawURL. Close stops it.
func NewWebhook(rawURL string, opts ...Option) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("approval: webhook URL must be an http(s) URL")
	}
	w := &Webhook{url: rawURL, host: u.Host, timeout: DefaultTimeout, log: slog.New(slog.DiscardHandler),
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, o := range opts {
		o(w)
	}
	if w.queue == nil {
		w.queue = make(chan []byte, DefaultQueue)
	}
	if w.timeout <= 0 {
		w.timeout = DefaultTimeout
	}
	if w.hc == nil {
		w.hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	go w.run()
	return w, nil
}

// Notify formats n and queues it for delivery; it never blocks.
func (w *Webhook) Notify(ctx context.Context, n ca.Notification) {
	body, err := json.Marshal(struct {
		Text string `json:"text"`
	}{Text(n)})
	if err != nil {
		return
	}
	select {
	case <-w.stop:
		return
	default:
	}
	select {
	case w.queue <- body:
	default:
		w.log.LogAttrs(ctx, slog.LevelWarn, "webhook queue full, notification dropped",
			slog.String("webhook_host", w.host), slog.String("kind", n.Kind), slog.String("request_id", n.Request.ID))
	}
}

// Close stops accepting notifications and delivers what is queued until ctx
// ends.
func (w *Webhook) Close(ctx context.Context) {
	w.once.Do(func() { close(w.stop) })
	select {
	case <-w.done:
	case <-ctx.Done():
	}
}

func (w *Webhook) run() {
	defer close(w.done)
	for {
		select {
		case body := <-w.queue:
			w.post(body)
		case <-w.stop:
			for {
				select {
				case body := <-w.queue:
					w.post(body)
				default:
					return
				}
			}
		}
	}
}

func (w *Webhook) post(body []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		w.failed(err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "jit-ssh")
	resp, err := w.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may hold the webhook's secret
		}
		w.failed(err)
		return
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		w.failed(fmt.Errorf("receiver answered %s", resp.Status))
	}
}

func (w *Webhook) failed(err error) {
	w.log.LogAttrs(context.Background(), slog.LevelWarn, "webhook notification not delivered",
		slog.String("webhook_host", w.host), slog.String("error", err.Error()))
}

// Text renders a notification as one line of Slack mrkdwn. Text
// from people (reasons, review bodies) is shortened and escaped, so it
// cannot mention @channel or forge links. An urgent notification (break
// glass) starts with <!here> and a siren, so the channel's members are
// alerted at once.
func Text(n ca.Notification) string {
	r := &n.Request
	who := fmt.Sprintf("%s (%s for %s)", r.ID, r.HostGroup, r.Requester)
	var b strings.Builder
	if n.Urgent {
		b.WriteString("<!here> :rotating_light: URGENT ")
	}
	b.WriteString("jit-ssh: ")
	switch n.Kind {
	case ca.NotifyBreakGlass:
		fmt.Fprintf(&b, "%s BROKE GLASS on %s for %s (%s), without an approver; the grant ends %s. %s: review the follow-up by %s with: jit-ssh review %s --approve (justified) or --request-changes -m WHY (not justified: revokes its certificates)",
			r.Requester, r.HostGroup, shortDuration(r.Duration), r.ID, r.GrantEnds().UTC().Format(time.RFC3339),
			strings.Join(n.ApproverTeams, ", "), r.ReviewDueAt.UTC().Format(time.RFC3339), r.ID)
		b.WriteString(quote("Reason", r.Reason))
	case ca.NotifyNotJustified:
		fmt.Fprintf(&b, "%s found break-glass grant %s NOT JUSTIFIED; the grant ended and %d certificate(s) were revoked. Run 'jit-ssh host sync' on the hosts of %s",
			n.Actor, who, len(n.Revoked), r.HostGroup)
	case ca.NotifyJustified:
		fmt.Fprintf(&b, "%s found break-glass grant %s justified", n.Actor, who)
	case ca.NotifyCreated:
		if r.State == ca.StateApproved {
			fmt.Fprintf(&b, "%s was granted %s for %s (%s), auto-approved by policy", r.Requester, r.HostGroup, shortDuration(r.Duration), r.ID)
		} else {
			fmt.Fprintf(&b, "%s requests %s for %s (%s). Needs %d approval(s) from %s. Review with: jit-ssh review %s --approve",
				r.Requester, r.HostGroup, shortDuration(r.Duration), r.ID, max(n.ApprovalsRequired, 1), strings.Join(n.ApproverTeams, ", "), r.ID)
		}
		b.WriteString(quote("Reason", r.Reason))
	case ca.NotifyApproved:
		fmt.Fprintf(&b, "%s approved by %s; the grant ends %s", who, strings.Join(n.Approvers, ", "), r.GrantEnds().UTC().Format(time.RFC3339))
	case ca.NotifyDenied:
		fmt.Fprintf(&b, "%s denied %s", n.Actor, who)
	case ca.NotifyExpired:
		fmt.Fprintf(&b, "%s expired without enough approvals", who)
	default:
		event := "reviewed"
		if n.Review != nil {
			switch n.Review.Event {
			case ca.ReviewApprove:
				event = fmt.Sprintf("approved (%d of %d)", len(n.Approvers), n.ApprovalsRequired)
			case ca.ReviewRequestChanges:
				event = "requested changes on"
			case ca.ReviewComment:
				event = "commented on"
			}
		}
		fmt.Fprintf(&b, "%s %s %s", n.Actor, event, who)
	}
	if n.Review != nil && n.Kind != ca.NotifyCreated {
		b.WriteString(quote("", n.Review.Body))
	}
	return b.String()
}

func quote(label, s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return ""
	}
	if rs := []rune(s); len(rs) > maxText {
		s = string(rs[:maxText-1]) + "…"
	}
	s = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
	if label != "" {
		return fmt.Sprintf(". %s: “%s”", label, s)
	}
	return fmt.Sprintf(": “%s”", s)
}

// shortDuration renders 1h0m0s as 1h and 30m0s as 30m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
