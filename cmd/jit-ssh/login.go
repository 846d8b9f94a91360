package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/agent"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

type loginOptions struct {
	group    string
	duration time.Duration
	reason   string
	noWait   bool
	timeout  time.Duration
	ensure   bool // --ensure: see runEnsure
	// breakGlass asks for a grant at once without an approver, under the
	// group's break_glass policy (a new request only; an open grant is
	// reused).
	breakGlass bool

	// now and after are the login's clock and its pause between retried
	// polls; nil means time.Now and time.After (tests inject both).
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
}

// loginAPI is what login uses of the server's API: *api.Client, or a fake
// in the unit tests.
type loginAPI interface {
	ListRequests(ctx context.Context, o api.ListRequestsOptions) ([]api.Request, error)
	CreateRequest(ctx context.Context, in api.CreateRequest) (*api.Request, error)
	GetRequest(ctx context.Context, id string, wait time.Duration, version int64) (*api.Request, error)
	IssueCertificate(ctx context.Context, id, publicKey string) (*api.Certificate, error)
}

var _ loginAPI = (*api.Client)(nil)

// grantMargin: a grant that ends sooner than this is not worth reusing.
const grantMargin = 30 * time.Second

func newLoginCmd(e *env) *cobra.Command {
	o := &loginOptions{}
	cmd := &cobra.Command{
		Use:   "login GROUP",
		Short: "Get a short-lived certificate for a host group into ssh-agent",
		Long: `Reuse your open grant for GROUP or request one, wait for its approval, then
put a fresh key and its certificate into your running ssh-agent for exactly the
certificate's lifetime. Afterwards plain ssh works. The private key exists only
in memory and in the agent.`,
		Example: `  jit-ssh login staging
  jit-ssh login prod-db --reason "INC-1234: replica lag" --duration 30m
  jit-ssh login prod-db --break-glass --reason "INC-42: primary down"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.ensure {
				return o.runEnsure(cmd.Context(), e, args[0])
			}
			key := generateKey()
			o.group = args[0]
			if err := ca.CheckGroup(o.group); err != nil {
				return &usageError{fmt.Errorf("%q is not a host group name", o.group)}
			}
			if o.breakGlass && strings.TrimSpace(o.reason) == "" {
				return &usageError{errors.New("--break-glass needs --reason: say what the emergency is (e.g. \"INC-42: primary down\"); the approvers review the grant from it")}
			}
			return o.run(cmd.Context(), e, key)
		},
	}
	cmd.Flags().DurationVar(&o.duration, "duration", 0, "grant length for a new request (default: the group's default, at most its max_duration)")
	cmd.Flags().StringVar(&o.reason, "reason", "", "why you need access, for a new request (required where the group needs approval: its approvers decide from it)")
	cmd.Flags().BoolVar(&o.noWait, "no-wait", false, "file the request and return without waiting for approval")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 15*time.Minute, "how long to wait for approval")
	cmd.Flags().BoolVar(&o.ensure, "ensure", false, "do nothing when the agent holds a certificate for GROUP with over a minute left, else log in with all output on stderr (what 'jit-ssh ssh-config' has ssh run)")
	cmd.Flags().BoolVar(&o.breakGlass, "break-glass", false, "emergency: grant at once without an approver, where the group's break_glass policy allows you; needs --reason; every approver is alerted and must review it afterwards")
	return cmd
}

func (o *loginOptions) run(ctx context.Context, e *env, key *ephemeralKey) error {
	c, err := e.loginClient() // a GitHub Actions job signs in with its ID tokens (actions.go)
	if err != nil {
		return err
	}
	// Reach the agent first: there is no point in asking for access that
	// cannot be loaded.
	keys, err := agent.Dial(e.getenv("SSH_AUTH_SOCK"))
	if err != nil {
		return err
	}
	defer keys.Close()
	return o.login(ctx, e, c, keys, key)
}

// login is the login once the server and the agent are reached: the
// remembered grant, else find or file a request, wait for it, then issue
// and load.
func (o *loginOptions) login(ctx context.Context, e *env, c loginAPI, keys *agent.Keyring, key *ephemeralKey) error {
	if o.now == nil {
		o.now = time.Now
	}
	if o.after == nil {
		o.after = time.After
	}
	server := e.serverURL()
	if g, ok := e.cachedGrantFor(server, o.group, o.now()); ok {
		fmt.Fprintf(e.stderr, "Using your open grant %s for %s (remembered; ends in %s).\n", g.RequestID, g.Group, until(g.EndsAt, o.now()))
		o.noteUnused(e, g.RequestID, ca.StateApproved)
		err := o.issueAndLoad(ctx, e, c, keys, &api.Request{ID: g.RequestID, HostGroup: g.Group}, key)
		if !grantRefused(err) {
			return err
		}
		// Ended, revoked or not this caller's: forget it and look again.
		fmt.Fprintf(e.stderr, "Grant %s cannot be used any more (%v); looking for another.\n", g.RequestID, err)
		e.rememberGrant(server, o.group, "", time.Time{})
	}

	req, err := o.findOrCreate(ctx, e, c)
	if err != nil {
		return err
	}
	if req.State == ca.StatePending {
		if o.noWait {
			fmt.Fprintf(e.stderr, "Request %s for %s is waiting for %s. Run 'jit-ssh login %s' again once it is approved.\n",
				req.ID, req.HostGroup, asked(req), o.group)
			return nil
		}
		if req, err = o.waitForApproval(ctx, e, c, req); err != nil {
			return err
		}
	}
	if req.State == ca.StateApproved && req.GrantEndsAt != nil {
		e.rememberGrant(server, o.group, req.ID, *req.GrantEndsAt)
	}
	return o.issueAndLoad(ctx, e, c, keys, req, key)
}

// findOrCreate returns the caller's open grant or pending request for the
// group, or files a new request.
func (o *loginOptions) findOrCreate(ctx context.Context, e *env, c loginAPI) (*api.Request, error) {
	mine, err := c.ListRequests(ctx, api.ListRequestsOptions{Mine: true})
	if err != nil {
		return nil, err
	}
	now := o.now()
	for i := range mine {
		r := &mine[i]
		if r.HostGroup != o.group {
			continue
		}
		if r.OpenAt(now.Add(grantMargin)) {
			fmt.Fprintf(e.stderr, "Using your open grant %s for %s (ends in %s).\n", r.ID, r.HostGroup, until(*r.GrantEndsAt, now))
			o.noteUnused(e, r.ID, r.State)
			return r, nil
		}
	}
	for i := range mine {
		if r := &mine[i]; r.HostGroup == o.group && r.State == ca.StatePending && !o.breakGlass {
			fmt.Fprintf(e.stderr, "Your request %s for %s is already waiting for review.\n", r.ID, r.HostGroup)
			o.noteUnused(e, r.ID, r.State)
			return r, nil
		}
	}
	in := api.CreateRequest{HostGroup: o.group, Reason: o.reason, BreakGlass: o.breakGlass}
	if o.duration > 0 {
		in.Duration = o.duration.String()
	}
	r, err := c.CreateRequest(ctx, in)
	if err != nil {
		return nil, err
	}
	if r.BreakGlass {
		fmt.Fprintf(e.stderr, "BREAK GLASS: grant %s for %s starts now without an approver (ends in %s). The approvers of %s have been alerted;\n"+
			"one of them must review it by %s, and if they find it not justified its certificates are revoked. You cannot break glass again while a follow-up is overdue.\n",
			r.ID, r.HostGroup, until(*r.GrantEndsAt, o.now()), r.HostGroup, fmtTime(r.ReviewDueAt))
	} else if r.State == ca.StateApproved {
		fmt.Fprintf(e.stderr, "Request %s for %s was approved by policy (grant ends in %s).\n", r.ID, r.HostGroup, until(*r.GrantEndsAt, o.now()))
	} else {
		fmt.Fprintf(e.stderr, "Requested %s as %s.\n", r.HostGroup, r.ID)
	}
	return r, nil
}

// noteUnused says so when --duration or --reason were given but login
// reuses an existing request (id, in state) and so does not apply them.
func (o *loginOptions) noteUnused(e *env, id, state string) {
	var flags []string
	if o.duration > 0 {
		flags = append(flags, "--duration "+o.duration.String())
	}
	if o.reason != "" {
		flags = append(flags, "--reason")
	}
	if len(flags) == 0 {
		return
	}
	how := fmt.Sprintf("to change it, run 'jit-ssh request edit %s' (a duration may only be narrowed) or cancel it with 'jit-ssh request cancel %s' and log in again", id, id)
	if state == ca.StateApproved {
		how = fmt.Sprintf("to get a different grant, end this one with 'jit-ssh request cancel %s' and log in again", id)
	}
	fmt.Fprintf(e.stderr, "Note: %s not used: they apply to a new request, and %s is reused; %s.\n", strings.Join(flags, " and "), id, how)
}

func asked(r *api.Request) string {
	teams := strings.Join(r.ApproverTeams, ", ")
	if teams == "" {
		teams = "an approver"
	}
	return fmt.Sprintf("%d approval(s) from %s", r.ApprovalsRequired, teams)
}

// waitForApproval long-polls until the request leaves pending, printing
// reviews as they arrive, for at most o.timeout.
func (o *loginOptions) waitForApproval(ctx context.Context, e *env, c loginAPI, r *api.Request) (*api.Request, error) {
	timeout := o.timeout
	fmt.Fprintf(e.stderr, "Waiting for %s on %s (Ctrl-C stops waiting; the request stays open)...\n", asked(r), r.ID)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	seen := len(r.Reviews)
	backoff := time.Duration(0)
	for r.State == ca.StatePending {
		next, err := c.GetRequest(ctx, r.ID, 30*time.Second, r.Version)
		if err != nil && ctx.Err() == nil && transientWaitError(err) {
			// A dependency blip (GitHub, the ledger) or a server restart
			// must not end a wait an approver is about to answer.
			backoff = min(max(2*backoff, time.Second), 15*time.Second)
			fmt.Fprintf(e.stderr, "  (server unavailable: %v; still waiting, retrying in %s)\n", err, backoff)
			select {
			case <-o.after(backoff):
				continue
			case <-ctx.Done():
			}
		}
		if err != nil || ctx.Err() != nil {
			if ctx.Err() != nil {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return nil, fmt.Errorf("%w after %s: request %s is still pending; run 'jit-ssh login %s' again to keep waiting", errTimedOut, timeout, r.ID, r.HostGroup)
				}
				return nil, fmt.Errorf("stopped waiting: request %s stays pending", r.ID)
			}
			return nil, err
		}
		backoff = 0
		r = next
		for _, rv := range r.Reviews[min(seen, len(r.Reviews)):] {
			line := fmt.Sprintf("  %s: %s", rv.Reviewer, strings.ToLower(strings.ReplaceAll(rv.Event, "_", " ")))
			if rv.Body != "" {
				line += ": " + rv.Body
			}
			fmt.Fprintln(e.stderr, line)
		}
		seen = len(r.Reviews)
	}
	switch r.State {
	case ca.StateApproved:
		fmt.Fprintf(e.stderr, "Approved by %s at %s.\n", strings.Join(r.Approvals, ", "), fmtTime(r.ApprovedAt))
		return r, nil
	case ca.StateDenied:
		return nil, &deniedError{fmt.Errorf("request %s was denied", r.ID)}
	default:
		return nil, fmt.Errorf("request %s is %s; run 'jit-ssh login %s' to ask again", r.ID, r.State, r.HostGroup)
	}
}

// transientWaitError reports whether a failed poll is worth repeating: the
// server answered 503 (a dependency is down) or 429, or could not be
// reached at all. Anything else (403, 404, bad input) ends the wait.
func transientWaitError(err error) bool {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusTooManyRequests
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe)
}

// ephemeralKey is the login's key pair, generated in memory on its own
// goroutine while the login checks its argument, reaches the agent and asks
// the server for the grant: the first ed25519 key of a process costs about a
// millisecond (the base-point table), which would otherwise add to the
// login's time. The key never leaves memory; if no certificate is fetched it
// is dropped with the process.
type ephemeralKey struct {
	done chan struct{}
	priv ed25519.PrivateKey
	pub  ssh.PublicKey
	err  error
}

func generateKey() *ephemeralKey {
	k := &ephemeralKey{done: make(chan struct{})}
	go func() {
		defer close(k.done)
		k.priv, k.pub, k.err = agent.NewKey()
	}()
	return k
}

// get waits for the key.
func (k *ephemeralKey) get() (ed25519.PrivateKey, ssh.PublicKey, error) {
	<-k.done
	return k.priv, k.pub, k.err
}

// issueAndLoad gets the key certified and loads both into the agent.
func (o *loginOptions) issueAndLoad(ctx context.Context, e *env, c loginAPI, keys *agent.Keyring, r *api.Request, key *ephemeralKey) error {
	priv, pub, err := key.get()
	if err != nil {
		return err
	}
	rec, err := c.IssueCertificate(ctx, r.ID, string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(pub))))
	if err != nil {
		return err
	}
	parsed, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rec.Certificate))
	if err != nil {
		return fmt.Errorf("the server returned an unreadable certificate: %w", err)
	}
	cert, ok := parsed.(*ssh.Certificate)
	if !ok || !bytes.Equal(cert.Key.Marshal(), pub.Marshal()) {
		return errors.New("the server returned a certificate for another key; nothing was loaded")
	}
	if err := keys.Load(r.HostGroup, priv, cert); err != nil {
		return err
	}
	if e.output == "json" {
		return e.printJSON(rec)
	}
	fmt.Fprintf(e.stdout, "Certificate %d for %s loaded into ssh-agent: principals %s, valid until %s (%s).\n",
		cert.Serial, r.HostGroup, strings.Join(cert.ValidPrincipals, ","), rec.ValidBefore.Format(time.RFC3339), until(rec.ValidBefore, o.now()))
	if !o.ensure { // ssh itself is what runs next
		fmt.Fprintf(e.stdout, "Now run: ssh <login>@<host in %s>\n", r.HostGroup)
	}
	return nil
}
