package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"

	"github.com/jit-ssh/jit-ssh/agent"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

// poll is one answer of fakeAPI.GetRequest: a request or an error.
type poll struct {
	req *api.Request
	err error
}

// fakeAPI is the server as login sees it (loginAPI). It signs what it is
// asked to with its own CA key; every call is recorded.
type fakeAPI struct {
	t      *testing.T
	ca     ssh.Signer
	now    time.Time
	mine   []api.Request
	create func(api.CreateRequest) (*api.Request, error)
	polls  []poll // GetRequest answers in order; then it blocks until ctx ends
	// issueErr, by request ID, refuses the certificate.
	issueErr map[string]error
	// otherKey certifies another key than the one asked for.
	otherKey bool

	mu      sync.Mutex
	calls   []string
	created []api.CreateRequest
}

var _ loginAPI = (*fakeAPI)(nil)

func (f *fakeAPI) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeAPI) ListRequests(_ context.Context, o api.ListRequestsOptions) ([]api.Request, error) {
	f.record("list")
	if !o.Mine {
		f.t.Errorf("ListRequests(%+v), want only the caller's", o)
	}
	return f.mine, nil
}

func (f *fakeAPI) CreateRequest(_ context.Context, in api.CreateRequest) (*api.Request, error) {
	f.record("create")
	f.created = append(f.created, in)
	if f.create == nil {
		f.t.Fatal("unexpected CreateRequest")
	}
	return f.create(in)
}

func (f *fakeAPI) GetRequest(ctx context.Context, id string, wait time.Duration, _ int64) (*api.Request, error) {
	f.record("get " + id)
	if wait != 30*time.Second {
		f.t.Errorf("GetRequest wait %s, want a 30s long poll", wait)
	}
	if len(f.polls) == 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	p := f.polls[0]
	f.polls = f.polls[1:]
	return p.req, p.err
}

func (f *fakeAPI) IssueCertificate(_ context.Context, id, publicKey string) (*api.Certificate, error) {
	f.record("issue " + id)
	if err := f.issueErr[id]; err != nil {
		return nil, err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(publicKey))
	if err != nil {
		f.t.Fatalf("login sent an unreadable public key %q: %v", publicKey, err)
	}
	if f.otherKey {
		_, other, _ := agent.NewKey()
		pub = other
	}
	validBefore := f.now.Add(10 * time.Minute)
	cert := &ssh.Certificate{
		Key: pub, Serial: 42, CertType: ssh.UserCert, KeyId: "jit-ssh:" + id, ValidPrincipals: []string{"deploy", "ops"},
		ValidAfter: uint64(f.now.Add(-time.Minute).Unix()), ValidBefore: uint64(validBefore.Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
	if err := cert.SignCert(rand.Reader, f.ca); err != nil {
		f.t.Fatal(err)
	}
	return &api.Certificate{
		Serial: "42", KeyID: cert.KeyId, HostGroup: "staging", Principals: cert.ValidPrincipals,
		ValidBefore: validBefore, RequestID: id,
		Certificate: string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(cert))),
	}, nil
}

func newFakeAPI(t *testing.T, now time.Time) *fakeAPI {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeAPI{t: t, ca: s, now: now}
}

// loginEnv is an env with its own cache directory and a token; no gh, no
// real server.
func loginEnv(t *testing.T) (*env, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	vars := map[string]string{"HOME": dir, "XDG_CACHE_HOME": dir, "JIT_SSH_TOKEN": "dev-alice", "JIT_SSH_SERVER": "http://127.0.0.1:1"}
	var stdout, stderr bytes.Buffer
	return &env{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return vars[k] }}, &stdout, &stderr
}

func ptr[T any](v T) *T { return &v }

func TestLoginFlow(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	pending := func(id string) api.Request {
		return api.Request{ID: id, HostGroup: "staging", State: "pending", Version: 1, ApprovalsRequired: 1, ApproverTeams: []string{"sre"}}
	}
	approved := func(id string, ends time.Duration) *api.Request {
		return &api.Request{ID: id, HostGroup: "staging", State: "approved", Version: 2, Approvals: []string{"bob"},
			ApprovedAt: ptr(now.Add(-time.Second)), GrantEndsAt: ptr(now.Add(ends)),
			Reviews: []ca.Review{{Reviewer: "bob", Event: "APPROVED", Body: "go ahead"}}}
	}
	unavailable := &api.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the ledger is unavailable"}

	tests := []struct {
		name    string
		opts    loginOptions
		setup   func(f *fakeAPI, e *env)
		wantErr string // substring; "" for success
		errIs   error
		// wantCalls is the sequence of API calls.
		wantCalls []string
		// wantStderr lines, in order (each a substring of a line).
		wantStderr []string
		// wantSleeps are the pauses asked of the clock between polls.
		wantSleeps []time.Duration
		// loaded: a certificate for staging ends up in the agent.
		loaded bool
	}{
		{
			name: "reuses an open grant",
			setup: func(f *fakeAPI, _ *env) {
				f.mine = []api.Request{
					{ID: "r-aaaaaaaaaaaother", HostGroup: "prod-db", State: "approved", GrantEndsAt: ptr(now.Add(time.Hour))},
					*approved("r-aaaaaaaaaaaaaaab", time.Hour),
				}
			},
			wantCalls:  []string{"list", "issue r-aaaaaaaaaaaaaaab"},
			wantStderr: []string{"Using your open grant r-aaaaaaaaaaaaaaab for staging (ends in 1h0m0s)."},
			loaded:     true,
		},
		{
			name: "a grant about to end is not reused; a pending request is",
			setup: func(f *fakeAPI, _ *env) {
				f.mine = []api.Request{*approved("r-aaaaaaaaaaaaaold", 20*time.Second), pending("r-aaaaaaaaaaaaaaac")}
				f.polls = []poll{{req: approved("r-aaaaaaaaaaaaaaac", time.Hour)}}
			},
			wantCalls: []string{"list", "get r-aaaaaaaaaaaaaaac", "issue r-aaaaaaaaaaaaaaac"},
			wantStderr: []string{
				"Your request r-aaaaaaaaaaaaaaac for staging is already waiting for review.",
				"Waiting for 1 approval(s) from sre on r-aaaaaaaaaaaaaaac (Ctrl-C stops waiting; the request stays open)...",
				"  bob: approved: go ahead",
				"Approved by bob at " + now.Add(-time.Second).Format(time.RFC3339) + ".",
			},
			loaded: true,
		},
		{
			name: "files a request when there is none and waits for it",
			opts: loginOptions{reason: "INC-1", duration: 30 * time.Minute},
			setup: func(f *fakeAPI, _ *env) {
				f.mine = []api.Request{{ID: "r-aaaaaaaaaaaaaaax", HostGroup: "staging", State: "denied"}}
				f.create = func(in api.CreateRequest) (*api.Request, error) {
					if in != (api.CreateRequest{HostGroup: "staging", Reason: "INC-1", Duration: "30m0s"}) {
						t.Errorf("CreateRequest(%+v)", in)
					}
					r := pending("r-aaaaaaaaaaaaaaad")
					return &r, nil
				}
				f.polls = []poll{{req: &api.Request{ID: "r-aaaaaaaaaaaaaaad", HostGroup: "staging", State: "pending", Version: 2,
					Reviews: []ca.Review{{Reviewer: "carol", Event: "CHANGES_REQUESTED", Body: "which host?"}}}},
					{req: func() *api.Request {
						r := approved("r-aaaaaaaaaaaaaaad", time.Hour)
						r.Reviews = append([]ca.Review{{Reviewer: "carol", Event: "CHANGES_REQUESTED", Body: "which host?"}}, r.Reviews...)
						return r
					}()}}
			},
			wantCalls: []string{"list", "create", "get r-aaaaaaaaaaaaaaad", "get r-aaaaaaaaaaaaaaad", "issue r-aaaaaaaaaaaaaaad"},
			wantStderr: []string{
				"Requested staging as r-aaaaaaaaaaaaaaad.",
				"Waiting for 1 approval(s) from sre on r-aaaaaaaaaaaaaaad",
				"  carol: changes requested: which host?",
				"  bob: approved: go ahead",
				"Approved by bob",
			},
			loaded: true,
		},
		{
			name: "approved by policy",
			setup: func(f *fakeAPI, _ *env) {
				f.create = func(api.CreateRequest) (*api.Request, error) { return approved("r-aaaaaaaaaaaaaaae", 2*time.Hour), nil }
			},
			wantCalls:  []string{"list", "create", "issue r-aaaaaaaaaaaaaaae"},
			wantStderr: []string{"Request r-aaaaaaaaaaaaaaae for staging was approved by policy (grant ends in 2h0m0s)."},
			loaded:     true,
		},
		{
			name: "--no-wait files the request and returns",
			opts: loginOptions{noWait: true},
			setup: func(f *fakeAPI, _ *env) {
				f.create = func(api.CreateRequest) (*api.Request, error) { r := pending("r-aaaaaaaaaaaaaaaf"); return &r, nil }
			},
			wantCalls: []string{"list", "create"},
			wantStderr: []string{
				"Requested staging as r-aaaaaaaaaaaaaaaf.",
				"Request r-aaaaaaaaaaaaaaaf for staging is waiting for 1 approval(s) from sre. Run 'jit-ssh login staging' again once it is approved.",
			},
		},
		{
			name: "reusing a pending request notes the unused flags",
			opts: loginOptions{noWait: true, reason: "why"},
			setup: func(f *fakeAPI, _ *env) {
				f.mine = []api.Request{pending("r-aaaaaaaaaaaaaaag")}
			},
			wantCalls: []string{"list"},
			wantStderr: []string{
				"Your request r-aaaaaaaaaaaaaaag for staging is already waiting for review.",
				"Note: --reason not used: they apply to a new request, and r-aaaaaaaaaaaaaaag is reused; to change it, run 'jit-ssh request edit r-aaaaaaaaaaaaaaag'",
			},
		},
		{
			name: "denied",
			setup: func(f *fakeAPI, _ *env) {
				f.mine = []api.Request{pending("r-aaaaaaaaaaaaaaah")}
				f.polls = []poll{{req: &api.Request{ID: "r-aaaaaaaaaaaaaaah", HostGroup: "staging", State: "denied", Version: 2}}}
			},
			wantCalls: []string{"list", "get r-aaaaaaaaaaaaaaah"},
			wantErr:   "request r-aaaaaaaaaaaaaaah was denied",
			errIs:     &deniedError{},
		},
		{
			name: "expired while waiting",
			setup: func(f *fakeAPI, _ *env) {
				f.mine = []api.Request{pending("r-aaaaaaaaaaaaaaai")}
				f.polls = []poll{{req: &api.Request{ID: "r-aaaaaaaaaaaaaaai", HostGroup: "staging", State: "expired", Version: 2}}}
			},
			wantCalls: []string{"list", "get r-aaaaaaaaaaaaaaai"},
			wantErr:   "request r-aaaaaaaaaaaaaaai is expired; run 'jit-ssh login staging' to ask again",
		},
		{
			name: "retries transient errors with a growing pause",
			setup: func(f *fakeAPI, _ *env) {
				f.mine = []api.Request{pending("r-aaaaaaaaaaaaaaaj")}
				f.polls = []poll{
					{err: unavailable},
					{err: &api.Error{Status: http.StatusTooManyRequests, Message: "slow down"}},
					{err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}},
					{err: unavailable}, {err: unavailable}, {err: unavailable},
					{req: approved("r-aaaaaaaaaaaaaaaj", time.Hour)},
				}
			},
			wantCalls: []string{"list", "get r-aaaaaaaaaaaaaaaj", "get r-aaaaaaaaaaaaaaaj", "get r-aaaaaaaaaaaaaaaj", "get r-aaaaaaaaaaaaaaaj", "get r-aaaaaaaaaaaaaaaj", "get r-aaaaaaaaaaaaaaaj", "get r-aaaaaaaaaaaaaaaj", "issue r-aaaaaaaaaaaaaaaj"},
			wantStderr: []string{
				"Waiting for 1 approval(s) from sre on r-aaaaaaaaaaaaaaaj",
				"  (server unavailable: the ledger is unavailable; still waiting, retrying in 1s)",
				"  (server unavailable: slow down; still waiting, retrying in 2s)",
				"  (server unavailable: dial tcp: connection refused; still waiting, retrying in 4s)",
				"retrying in 8s)",
				"retrying in 15s)",
				"retrying in 15s)",
				"Approved by bob",
			},
			wantSleeps: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second},
			loaded:     true,
		},
		{
			name: "the pause starts again after an answer",
			setup: func(f *fakeAPI, _ *env) {
				f.mine = []api.Request{pending("r-aaaaaaaaaaaaaaba")}
				f.polls = []poll{
					{err: unavailable}, {err: unavailable},
					{req: &api.Request{ID: "r-aaaaaaaaaaaaaaba", HostGroup: "staging", State: "pending", Version: 2}},
					{err: unavailable},
					{req: approved("r-aaaaaaaaaaaaaaba", time.Hour)},
				}
			},
			wantCalls:  []string{"list", "get r-aaaaaaaaaaaaaaba", "get r-aaaaaaaaaaaaaaba", "get r-aaaaaaaaaaaaaaba", "get r-aaaaaaaaaaaaaaba", "get r-aaaaaaaaaaaaaaba", "issue r-aaaaaaaaaaaaaaba"},
			wantSleeps: []time.Duration{time.Second, 2 * time.Second, time.Second},
			loaded:     true,
		},
		{
			name: "a refusal ends the wait",
			setup: func(f *fakeAPI, _ *env) {
				f.mine = []api.Request{pending("r-aaaaaaaaaaaaaabb")}
				f.polls = []poll{{err: &api.Error{Status: http.StatusForbidden, Code: "forbidden", Message: "not yours"}}}
			},
			wantCalls: []string{"list", "get r-aaaaaaaaaaaaaabb"},
			wantErr:   "not yours",
		},
		{
			name: "gives up after the timeout",
			opts: loginOptions{timeout: 20 * time.Millisecond},
			setup: func(f *fakeAPI, _ *env) {
				f.mine = []api.Request{pending("r-aaaaaaaaaaaaaabc")}
			},
			wantCalls: []string{"list", "get r-aaaaaaaaaaaaaabc"},
			wantErr:   "timed out waiting for approval after 20ms: request r-aaaaaaaaaaaaaabc is still pending; run 'jit-ssh login staging' again to keep waiting",
			errIs:     errTimedOut,
		},
		{
			name: "a certificate for another key is not loaded",
			setup: func(f *fakeAPI, _ *env) {
				f.mine = []api.Request{*approved("r-aaaaaaaaaaaaaabd", time.Hour)}
				f.otherKey = true
			},
			wantCalls: []string{"list", "issue r-aaaaaaaaaaaaaabd"},
			wantErr:   "the server returned a certificate for another key; nothing was loaded",
		},
		{
			name: "a refused issuance is the answer",
			setup: func(f *fakeAPI, _ *env) {
				f.mine = []api.Request{*approved("r-aaaaaaaaaaaaaabe", time.Hour)}
				f.issueErr = map[string]error{"r-aaaaaaaaaaaaaabe": &api.Error{Status: http.StatusForbidden, Code: "outside_hours", Message: "outside the group's hours"}}
			},
			wantCalls: []string{"list", "issue r-aaaaaaaaaaaaaabe"},
			wantErr:   "outside the group's hours",
		},
		{
			name: "a remembered grant is used without listing",
			setup: func(f *fakeAPI, e *env) {
				e.rememberGrant(e.serverURL(), "staging", "r-aaaaaaaaaaaaaabf", now.Add(time.Hour))
			},
			wantCalls:  []string{"issue r-aaaaaaaaaaaaaabf"},
			wantStderr: []string{"Using your open grant r-aaaaaaaaaaaaaabf for staging (remembered; ends in 1h0m0s)."},
			loaded:     true,
		},
		{
			name: "a remembered grant that ended is forgotten",
			setup: func(f *fakeAPI, e *env) {
				e.rememberGrant(e.serverURL(), "staging", "r-aaaaaaaaaaaaaabg", now.Add(time.Hour))
				f.issueErr = map[string]error{"r-aaaaaaaaaaaaaabg": &api.Error{Status: http.StatusForbidden, Code: "grant_ended", Message: "the grant has ended"}}
				f.mine = []api.Request{*approved("r-aaaaaaaaaaaaaabh", time.Hour)}
			},
			wantCalls: []string{"issue r-aaaaaaaaaaaaaabg", "list", "issue r-aaaaaaaaaaaaaabh"},
			wantStderr: []string{
				"Using your open grant r-aaaaaaaaaaaaaabg for staging (remembered; ends in 1h0m0s).",
				"Grant r-aaaaaaaaaaaaaabg cannot be used any more (the grant has ended); looking for another.",
				"Using your open grant r-aaaaaaaaaaaaaabh for staging (ends in 1h0m0s).",
			},
			loaded: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t, now)
			e, stdout, stderr := loginEnv(t)
			if tt.setup != nil {
				tt.setup(f, e)
			}
			var sleeps []time.Duration
			o := tt.opts
			o.group = "staging"
			if o.timeout == 0 {
				o.timeout = time.Hour
			}
			o.now = func() time.Time { return now }
			o.after = func(d time.Duration) <-chan time.Time {
				sleeps = append(sleeps, d)
				c := make(chan time.Time, 1)
				c <- now
				return c
			}
			kr := sshagent.NewKeyring()
			keys := agent.New(kr, o.now)

			err := o.login(t.Context(), e, f, keys, generateKey())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("login: %v\nstderr:\n%s", err, stderr)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("login error = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.errIs != nil {
				var want *deniedError
				if errors.As(tt.errIs, &want) {
					if de := want; !errors.As(err, &de) {
						t.Errorf("login error %v is no deniedError (exit code)", err)
					}
				} else if !errors.Is(err, tt.errIs) {
					t.Errorf("login error %v, want it to wrap %v", err, tt.errIs)
				}
			}
			if got := strings.Join(f.calls, ", "); got != strings.Join(tt.wantCalls, ", ") {
				t.Errorf("API calls: %s\nwant:      %s", got, strings.Join(tt.wantCalls, ", "))
			}
			lines := strings.Split(stderr.String(), "\n")
			i := 0
			for _, want := range tt.wantStderr {
				for i < len(lines) && !strings.Contains(lines[i], want) {
					i++
				}
				if i == len(lines) {
					t.Errorf("stderr lacks %q (in order); got:\n%s", want, stderr)
					break
				}
				i++
			}
			if fmt.Sprint(sleeps) != fmt.Sprint(tt.wantSleeps) {
				t.Errorf("pauses %v, want %v", sleeps, tt.wantSleeps)
			}

			entries, lerr := keys.List()
			if lerr != nil {
				t.Fatal(lerr)
			}
			if !tt.loaded {
				if len(entries) != 0 {
					t.Errorf("agent holds %v, want nothing loaded", entries)
				}
				if stdout.Len() != 0 {
					t.Errorf("stdout %q, want nothing", stdout)
				}
				return
			}
			if len(entries) != 1 || entries[0].Group != "staging" || entries[0].Serial != 42 || !entries[0].ValidBefore.Equal(now.Add(10*time.Minute)) {
				t.Fatalf("agent holds %+v, want staging's certificate 42 until %s", entries, now.Add(10*time.Minute))
			}
			wantOut := fmt.Sprintf("Certificate 42 for staging loaded into ssh-agent: principals deploy,ops, valid until %s (10m0s).\nNow run: ssh <login>@<host in staging>\n",
				now.Add(10*time.Minute).Format(time.RFC3339))
			if stdout.String() != wantOut {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, wantOut)
			}
			// The loaded key signs for the certificate.
			signers, err := kr.Signers()
			if err != nil || len(signers) != 1 {
				t.Fatalf("agent signers %d, %v; want 1", len(signers), err)
			}
			sig, err := signers[0].Sign(rand.Reader, []byte("x"))
			if err != nil || signers[0].PublicKey().(*ssh.Certificate).Key.Verify([]byte("x"), sig) != nil {
				t.Errorf("the loaded key does not sign for its certificate: %v", err)
			}
		})
	}
}

// A second login replaces the first certificate for the group, and the
// approved grant is remembered for the next login; --output json prints
// the certificate record.
func TestLoginReplacesAndRemembers(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	f := newFakeAPI(t, now)
	e, stdout, _ := loginEnv(t)
	e.output = "json"
	f.create = func(api.CreateRequest) (*api.Request, error) {
		return &api.Request{ID: "r-aaaaaaaaaaaaaaab", HostGroup: "staging", State: "approved", GrantEndsAt: ptr(now.Add(time.Hour))}, nil
	}
	keys := agent.New(sshagent.NewKeyring(), nil)
	o := &loginOptions{group: "staging", timeout: time.Hour, now: func() time.Time { return now }}
	if err := o.login(t.Context(), e, f, keys, generateKey()); err != nil {
		t.Fatal(err)
	}
	var rec api.Certificate
	if err := json.Unmarshal(stdout.Bytes(), &rec); err != nil || rec.RequestID != "r-aaaaaaaaaaaaaaab" || rec.Serial != "42" {
		t.Fatalf("--output json printed %q (%v), want the certificate record", stdout, err)
	}
	if g, ok := e.cachedGrantFor(e.serverURL(), "staging", now); !ok || g.RequestID != "r-aaaaaaaaaaaaaaab" {
		t.Fatalf("grant cache = %+v, %v; want r-aaaaaaaaaaaaaaab remembered", g, ok)
	}

	// The next login takes the remembered grant and replaces the key.
	f.calls = nil
	if err := o.login(t.Context(), e, f, keys, generateKey()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, ", "); got != "issue r-aaaaaaaaaaaaaaab" {
		t.Errorf("second login calls: %s, want only the issuance", got)
	}
	entries, err := keys.List()
	if err != nil || len(entries) != 1 {
		t.Fatalf("agent holds %d entries (%v), want the one replacing the other", len(entries), err)
	}
}
