package api

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"io"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/static"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// The hardening tests of this package (bad input, the authorisation matrix,
// limits) run the real service: NewServer on httptest with a real SQLite
// ledger in a temp dir, the file signer, and a static directory.

// hardClock is a clock the test moves by hand.
type hardClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *hardClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *hardClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// hardUsers are the directory of the hardening tests: login -> teams.
var hardUsers = map[string][]string{
	"alice": {"backend"},   // requester
	"erin":  {"backend"},   // another requester
	"bob":   {"sre-leads"}, // approver of prod-db
	"dave":  {"sre-leads"}, // approver of prod-db
	"wendy": {"web-leads"}, // approver of prod-web only
	"carol": {"security"},  // auditor
	"root":  {"admins"},    // may revoke anything
	// A provider that hands back a login which is not one: refused.
	"evil\nuser": {"backend"},
}

// tokenOf is the bearer token of a hardUsers login.
func tokenOf(login string) string {
	if login == "evil\nuser" {
		return "tok-evil"
	}
	return "tok-" + login
}

const hardPendingTTL = 10 * time.Minute

func hardPolicies() []*approval.Policy {
	pol := func(group string, approvers []string, n int) *approval.Policy {
		return &approval.Policy{Group: group, Principals: []string{group}, Requesters: []string{"backend"}, Approvers: approvers,
			ApprovalsRequired: n, MaxDuration: time.Hour, CertTTL: 5 * time.Minute, Extensions: []string{"permit-pty"}}
	}
	return []*approval.Policy{
		pol("staging", nil, 0),
		pol("prod-db", []string{"sre-leads"}, 1),
		pol("prod-web", []string{"web-leads"}, 1),
	}
}

// hardFixture is a running service and its ledger.
type hardFixture struct {
	t     testing.TB
	clock *hardClock
	db    *sqlite.DB
	srv   *Server
	ts    *httptest.Server
	svc   *approval.Service
	iss   *ca.Issuer
	sign  ca.Signer
	key   string // an acceptable subject key, authorized_keys form
}

func newHardFixture(t testing.TB, opts ...ServerOption) *hardFixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	clock := &hardClock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	db, err := sqlite.Open(ctx, filepath.Join(dir, "ledger.db"), sqlite.WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	signer, err := ca.LoadOrCreateFileSigner(filepath.Join(dir, "ca_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]static.User{}
	for login, teams := range hardUsers {
		users[login] = static.User{Token: tokenOf(login), Teams: teams}
	}
	svc := approval.NewService(db, static.New(users), hardPolicies(), []string{"security"},
		approval.WithClock(clock.now), approval.WithPendingTTL(hardPendingTTL), approval.WithAdmins([]string{"admins"}))
	issuer := ca.NewIssuer(signer, db, ca.WithClock(clock.now))
	srv := NewServer(svc, issuer, signer, db, append([]ServerOption{WithClock(clock.now)}, opts...)...)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &hardFixture{t: t, clock: clock, db: db, srv: srv, ts: ts, svc: svc, iss: issuer, sign: signer, key: authorizedKey(t, newEd25519(t))}
}

func newEd25519(t testing.TB) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func authorizedKey(t testing.TB, k ssh.PublicKey) string {
	t.Helper()
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// wireKey builds a public key from its SSH wire encoding: keys this process
// cannot or should not generate (DSA; RSA of a given size without the wait).
func wireKey(t testing.TB, fields any) ssh.PublicKey {
	t.Helper()
	k, err := ssh.ParsePublicKey(ssh.Marshal(fields))
	if err != nil {
		t.Fatalf("parsing wire key: %v", err)
	}
	return k
}

// rsaWireKey is a syntactically valid RSA key of the given size (the
// parser checks sizes, not primality).
func rsaWireKey(t testing.TB, bits int) ssh.PublicKey {
	t.Helper()
	n := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), uint(bits-1)), big.NewInt(1)) //nolint:gosec // small constant
	return wireKey(t, struct {
		Name string
		E, N *big.Int
	}{ssh.KeyAlgoRSA, big.NewInt(65537), n})
}

func dsaWireKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	one := big.NewInt(1)
	p := new(big.Int).Add(new(big.Int).Lsh(one, 1023), one)
	q := new(big.Int).Add(new(big.Int).Lsh(one, 159), one)
	return wireKey(t, struct {
		Name       string
		P, Q, G, Y *big.Int
	}{ssh.InsecureKeyAlgoDSA, p, q, big.NewInt(2), big.NewInt(3)}) //nolint:staticcheck // a DSA key is what must be refused
}

// certLine is a user certificate (signed by a throwaway CA) in
// authorized_keys form: a certificate where a plain key belongs.
func certLine(t testing.TB) string {
	t.Helper()
	_, caPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caSigner, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		t.Fatal(err)
	}
	c := &ssh.Certificate{Key: newEd25519(t), Serial: 1, CertType: ssh.UserCert, KeyId: "x", ValidPrincipals: []string{"root"},
		ValidBefore: ssh.CertTimeInfinity}
	if err := c.SignCert(rand.Reader, caSigner); err != nil {
		t.Fatal(err)
	}
	return authorizedKey(t, c)
}

// call is one HTTP call with full control of the request.
type call struct {
	token       string // bearer token; "" sends no Authorization header
	auth        string // a raw Authorization header, overriding token
	method      string
	path        string
	contentType string // "" = application/json when there is a body
	noCT        bool   // send no Content-Type at all
	body        string
}

// reply is a response: status, error code (if any), Retry-After and body.
type reply struct {
	status     int
	code       string
	retryAfter string
	body       []byte
}

func (f *hardFixture) do(c call) reply {
	f.t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, f.ts.URL+c.path, body)
	if err != nil {
		f.t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	switch {
	case c.noCT:
	case c.contentType != "":
		req.Header.Set("Content-Type", c.contentType)
	case c.body != "":
		req.Header.Set("Content-Type", "application/json")
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	} else if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatalf("%s %s: reading the body: %v", c.method, c.path, err)
	}
	r := reply{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: raw}
	if resp.StatusCode >= 400 {
		var eb ErrorBody
		if err := json.Unmarshal(raw, &eb); err != nil || eb.Error.Code == "" {
			f.t.Fatalf("%s %s: status %d with a body that is not a JSON error: %q", c.method, c.path, resp.StatusCode, raw)
		}
		r.code = eb.Error.Code
	}
	return r
}

// must makes a call that has to succeed with want and decodes the body.
func (f *hardFixture) must(c call, want int, out any) {
	f.t.Helper()
	r := f.do(c)
	if r.status != want {
		f.t.Fatalf("%s %s: status %d (%s), want %d: %s", c.method, c.path, r.status, r.code, want, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			f.t.Fatalf("%s %s: decoding %q: %v", c.method, c.path, r.body, err)
		}
	}
}

func jsonBody(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// create files a request and returns its ID.
func (f *hardFixture) create(login, group, duration string) string {
	f.t.Helper()
	var r Request
	f.must(call{token: tokenOf(login), method: "POST", path: "/v1/requests",
		body: jsonBody(CreateRequest{HostGroup: group, Duration: duration, Reason: "hardening test"})}, http.StatusCreated, &r)
	return r.ID
}

func (f *hardFixture) review(login, id, event string) {
	f.t.Helper()
	f.must(call{token: tokenOf(login), method: "POST", path: "/v1/requests/" + id + "/reviews",
		body: jsonBody(ReviewRequest{Event: event, Body: "looked at it"})}, http.StatusCreated, nil)
}

// issue gets a certificate for login under request id and returns its serial.
func (f *hardFixture) issue(login, id string) string {
	f.t.Helper()
	var c Certificate
	f.must(call{token: tokenOf(login), method: "POST", path: "/v1/certificates",
		body: jsonBody(IssueRequest{RequestID: id, PublicKey: f.key})}, http.StatusCreated, &c)
	return c.Serial
}

// serials returns the serials of every certificate in the ledger.
func (f *hardFixture) serials() []uint64 {
	f.t.Helper()
	var out []uint64
	err := f.db.ListCertificates(context.Background(), ca.CertFilter{}, func(c *ca.Certificate) error {
		out = append(out, c.Serial)
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// badInputState is the ledger the bad-input cases run against: requests of
// every state, named by the placeholders the cases use in paths and bodies.
type badInputState map[string]string

func (s badInputState) fill(text string) string {
	for _, k := range slices.Sorted(maps.Keys(s)) {
		text = strings.ReplaceAll(text, "{"+k+"}", s[k])
	}
	return text
}

func setupBadInputState(f *hardFixture) badInputState {
	s := badInputState{}
	// Requests whose time runs out first: a pending one left to expire and
	// a one-minute grant left to end.
	s["expired"] = f.create("alice", "prod-db", "")
	s["ended"] = f.create("alice", "staging", "1m")
	f.issue("alice", s["ended"])
	f.clock.advance(hardPendingTTL + time.Minute)

	s["open"] = f.create("alice", "staging", "")
	s["serial"] = f.issue("alice", s["open"])
	s["pending"] = f.create("alice", "prod-db", "")
	s["cancelled"] = f.create("alice", "prod-db", "")
	f.must(call{token: tokenOf("alice"), method: "POST", path: "/v1/requests/" + s["cancelled"] + "/cancel"}, http.StatusOK, nil)
	s["denied"] = f.create("alice", "prod-db", "")
	f.must(call{token: tokenOf("bob"), method: "POST", path: "/v1/requests/" + s["denied"] + "/reviews",
		body: `{"event":"DENY","body":"no"}`}, http.StatusCreated, nil)
	s["approved"] = f.create("alice", "prod-db", "")
	f.review("bob", s["approved"], "APPROVE")
	s["revoked"] = f.create("alice", "staging", "")
	f.issue("alice", s["revoked"])
	f.must(call{token: tokenOf("alice"), method: "POST", path: "/v1/revocations",
		body: jsonBody(RevokeRequest{RequestID: s["revoked"], Reason: "lost laptop"})}, http.StatusOK, nil)
	s["endedEarly"] = f.create("alice", "staging", "")
	f.must(call{token: tokenOf("alice"), method: "POST", path: "/v1/requests/" + s["endedEarly"] + "/cancel"}, http.StatusOK, nil)
	s["erinOpen"] = f.create("erin", "staging", "")
	s["key"] = f.key
	return s
}

// badCase is one bad request and the exact answer it must get.
type badCase struct {
	name string
	call
	status int
	code   string
}

// issueBody is a POST /v1/certificates body for request id with key.
func issueBody(id, key string) string { return jsonBody(IssueRequest{RequestID: id, PublicKey: key}) }

func badInputCases(t testing.TB) []badCase {
	const alice = "tok-alice"
	big := strings.Repeat("x", MaxBodyBytes)
	create := func(name, body string, status int, code string) badCase {
		return badCase{name, call{token: alice, method: "POST", path: "/v1/requests", body: body}, status, code}
	}
	group := func(name, g string, status int, code string) badCase {
		return create("host group "+name, jsonBody(CreateRequest{HostGroup: g, Reason: "x"}), status, code)
	}
	dur := func(name, d string, status int, code string) badCase {
		return create("duration "+name, jsonBody(CreateRequest{HostGroup: "staging", Duration: d, Reason: "x"}), status, code)
	}
	issue := func(name, token, body string, status int, code string) badCase {
		return badCase{name, call{token: token, method: "POST", path: "/v1/certificates", body: body}, status, code}
	}
	key := func(name, k string) badCase {
		return issue("subject "+name, alice, issueBody("{open}", k), http.StatusBadRequest, "invalid_public_key")
	}
	reuse := func(name, token, id string, status int, code string) badCase {
		return issue(name, token, issueBody(id, "{key}"), status, code)
	}
	get := func(name, token, path string, status int, code string) badCase {
		return badCase{name, call{token: token, method: "GET", path: path}, status, code}
	}
	revoke := func(name, body string, status int, code string) badCase {
		return badCase{name, call{token: alice, method: "POST", path: "/v1/revocations", body: body}, status, code}
	}
	edKey := authorizedKey(t, newEd25519(t))
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privPEM, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	const bad, notFound, conflict, forbidden = http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusForbidden

	return []badCase{
		// Malformed, oversized and mistyped bodies.
		create("malformed JSON", `{"host_group":`, bad, "invalid_input"),
		create("JSON array", `[]`, bad, "invalid_input"),
		create("JSON string", `"staging"`, bad, "invalid_input"),
		create("JSON null", `null`, bad, "invalid_host_group"),
		create("two objects", `{"host_group":"staging","reason":"x"}{"host_group":"staging","reason":"x"}`, bad, "invalid_input"),
		create("trailing garbage", `{"host_group":"staging","reason":"x"} x`, bad, "invalid_input"),
		create("deep nesting", strings.Repeat("[", 20000), bad, "invalid_input"),
		create("number for a name", `{"host_group":5,"reason":"x"}`, bad, "invalid_input"),
		create("number for a duration", `{"host_group":"staging","duration":30,"reason":"x"}`, bad, "invalid_input"),
		create("unknown field principals", `{"host_group":"staging","reason":"x","principals":["root"]}`, bad, "invalid_input"),
		create("unknown field requester", `{"host_group":"staging","reason":"x","requester":"bob"}`, bad, "invalid_input"),
		create("oversized body", jsonBody(CreateRequest{HostGroup: "staging", Reason: big}), http.StatusRequestEntityTooLarge, "body_too_large"),
		{"empty body", call{token: alice, method: "POST", path: "/v1/requests", noCT: true}, bad, "invalid_input"},
		{"content type text/plain", call{token: alice, method: "POST", path: "/v1/requests", contentType: "text/plain",
			body: `{"host_group":"staging","reason":"x"}`}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"content type form", call{token: alice, method: "POST", path: "/v1/requests", contentType: "application/x-www-form-urlencoded",
			body: "host_group=staging&reason=x"}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"content type multipart", call{token: alice, method: "POST", path: "/v1/requests", contentType: "multipart/form-data; boundary=x",
			body: "--x--"}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"content type unparsable", call{token: alice, method: "POST", path: "/v1/requests", contentType: ";;;",
			body: `{"host_group":"staging","reason":"x"}`}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		issue("issue: unknown field principals", alice, `{"request_id":"{open}","public_key":"{key}","principals":["root"]}`, bad, "invalid_input"),
		issue("issue: unknown field valid_before", alice, `{"request_id":"{open}","public_key":"{key}","valid_before":"2100-01-01T00:00:00Z"}`, bad, "invalid_input"),
		issue("issue: unknown field key_id", alice, `{"request_id":"{open}","public_key":"{key}","key_id":"jit-ssh:user=root"}`, bad, "invalid_input"),
		issue("issue: oversized body", alice, issueBody("{open}", big), http.StatusRequestEntityTooLarge, "body_too_large"),
		{"issue: content type text/plain", call{token: alice, method: "POST", path: "/v1/certificates", contentType: "text/plain",
			body: issueBody("{open}", "{key}")}, http.StatusUnsupportedMediaType, "unsupported_media_type"},

		// Names that would inject a principal, a KeyId field or a path.
		group("with a newline", "staging\nprod-db", bad, "invalid_host_group"),
		group("with a comma", "staging,prod-db", bad, "invalid_host_group"),
		group("with a space", "staging prod-db", bad, "invalid_host_group"),
		group("with a NUL", "staging\x00", bad, "invalid_host_group"),
		group("with a colon", "staging:req=x", bad, "invalid_host_group"),
		group("non-ASCII", "stäging", bad, "invalid_host_group"),
		group("path", "../etc", bad, "invalid_host_group"),
		group("upper case", "Staging", bad, "invalid_host_group"),
		group("too long", strings.Repeat("s", 64), bad, "invalid_host_group"),
		group("empty", "", bad, "invalid_host_group"),
		group("unknown", "nope", notFound, "unknown_host_group"),
		create("reason with a NUL", jsonBody(CreateRequest{HostGroup: "staging", Reason: "x\x00y"}), bad, "invalid_reason"),
		create("reason with an escape", jsonBody(CreateRequest{HostGroup: "staging", Reason: "x\x1b[2Jy"}), bad, "invalid_reason"),
		create("reason too long", jsonBody(CreateRequest{HostGroup: "staging", Reason: strings.Repeat("r", 1001)}), bad, "invalid_reason"),

		// Durations.
		dur("negative", "-1h", bad, "invalid_input"),
		dur("zero", "0s", bad, "invalid_input"),
		dur("bare zero", "0", bad, "invalid_input"),
		dur("without unit", "30", bad, "invalid_input"),
		dur("below the minimum", "30s", bad, "invalid_duration"),
		dur("above max_duration", "2h", bad, "invalid_duration"),
		dur("huge", "1000000h", bad, "invalid_duration"),
		dur("overflowing", "9999999999999999999h", bad, "invalid_input"),
		dur("too long a string", "1h"+strings.Repeat("0s", 20), bad, "invalid_input"),
		dur("with a newline", "1h\n", bad, "invalid_input"),
		{"edit: widening duration", call{token: alice, method: "PATCH", path: "/v1/requests/{pending}", body: `{"duration":"2h"}`}, bad, "invalid_duration"},
		{"edit: negative duration", call{token: alice, method: "PATCH", path: "/v1/requests/{pending}", body: `{"duration":"-5m"}`}, bad, "invalid_input"},
		get("long-poll: negative wait", alice, "/v1/requests/{pending}?wait=-1s", bad, "invalid_input"),
		get("long-poll: wait not a duration", alice, "/v1/requests/{pending}?wait=soon", bad, "invalid_input"),

		// Subject keys.
		key("DSA", authorizedKey(t, dsaWireKey(t))),
		key("RSA 1024", authorizedKey(t, rsaWireKey(t, 1024))),
		key("RSA 2048", authorizedKey(t, rsaWireKey(t, 2048))),
		key("certificate instead of key", certLine(t)),
		key("with options", `command="/bin/sh" `+edKey),
		key("two keys", edKey+"\n"+edKey),
		key("with a NUL", edKey+"\x00"),
		key("bad base64", "ssh-ed25519 AAAA!!!!"),
		key("empty", ""),
		key("private key", string(pem.EncodeToMemory(privPEM))),
		key("oversized line", "ssh-ed25519 "+strings.Repeat("A", 17<<10)),
		issue("issue: missing request id", alice, issueBody("", "{key}"), bad, "invalid_request_id"),
		issue("issue: request id with a newline", alice, issueBody("{open}\n", "{key}"), bad, "invalid_request_id"),
		issue("issue: request id SQL", alice, issueBody("' OR 1=1 --", "{key}"), bad, "invalid_request_id"),
		issue("issue: unknown request id", alice, issueBody("r-aaaaaaaaaaaaaaaa", "{key}"), notFound, "request_not_found"),

		// Reuse of requests that give no certificate, and other users' grants.
		reuse("reuse: pending", alice, "{pending}", conflict, "request_not_approved"),
		reuse("reuse: cancelled", alice, "{cancelled}", conflict, "request_not_approved"),
		reuse("reuse: denied", alice, "{denied}", conflict, "request_not_approved"),
		reuse("reuse: expired", alice, "{expired}", conflict, "request_not_approved"),
		reuse("reuse: revoked", alice, "{revoked}", conflict, "grant_ended"),
		reuse("reuse: grant over", alice, "{ended}", conflict, "grant_ended"),
		reuse("reuse: grant ended early", alice, "{endedEarly}", conflict, "grant_ended"),
		reuse("another user's grant", alice, "{erinOpen}", notFound, "request_not_found"),
		reuse("approver takes the requester's grant", "tok-bob", "{approved}", forbidden, "not_requester"),
		reuse("auditor takes the requester's grant", "tok-carol", "{open}", forbidden, "not_requester"),
		reuse("other approver takes the requester's grant", "tok-wendy", "{approved}", notFound, "request_not_found"),
		{"cancel: already cancelled", call{token: alice, method: "POST", path: "/v1/requests/{cancelled}/cancel"}, conflict, "request_closed"},
		{"review: denied request", call{token: "tok-bob", method: "POST", path: "/v1/requests/{denied}/reviews", body: `{"event":"APPROVE","body":""}`}, conflict, "request_not_pending"},
		{"edit: expired request", call{token: alice, method: "PATCH", path: "/v1/requests/{expired}", body: `{"reason":"again"}`}, conflict, "request_not_pending"},
		{"review: unknown event", call{token: "tok-bob", method: "POST", path: "/v1/requests/{pending}/reviews", body: `{"event":"LGTM","body":""}`}, bad, "invalid_review_event"},
		{"review: change request without a body", call{token: "tok-bob", method: "POST", path: "/v1/requests/{pending}/reviews", body: `{"event":"REQUEST_CHANGES","body":" "}`}, bad, "body_required"},
		{"review: body with a NUL", call{token: "tok-bob", method: "POST", path: "/v1/requests/{pending}/reviews", body: `{"event":"COMMENT","body":"a\u0000b"}`}, bad, "invalid_body"},

		// Revocations.
		revoke("revoke: serial not a number", `{"serial":"abc","reason":"x"}`, bad, "invalid_input"),
		revoke("revoke: two selectors", `{"serial":"{serial}","user":"alice","reason":"x"}`, bad, "invalid_input"),
		revoke("revoke: user with a newline", `{"user":"alice\nroot","reason":"x"}`, bad, "invalid_input"),
		revoke("revoke: no reason", `{"serial":"{serial}"}`, bad, "invalid_input"),
		revoke("revoke: unknown field", `{"serial":"{serial}","reason":"x","all":true}`, bad, "invalid_input"),
		// One free-text rule for every field (finding 8 of issue 13).
		revoke("revoke: reason with an escape", `{"serial":"{serial}","reason":"x\u001b[31my"}`, bad, "invalid_reason"),
		revoke("revoke: reason with a BEL", `{"serial":"{serial}","reason":"x\u0007"}`, bad, "invalid_reason"),
		revoke("revoke: reason with a C1 control", `{"serial":"{serial}","reason":"x\u009by"}`, bad, "invalid_reason"),
		revoke("revoke: reason with a bidi override", `{"serial":"{serial}","reason":"x\u202ey"}`, bad, "invalid_reason"),
		revoke("revoke: reason with a bidi isolate", `{"user":"alice","reason":"x\u2066y\u2069"}`, bad, "invalid_reason"),
		revoke("revoke: request with a bidi embedding", `{"request_id":"{open}","reason":"\u202ax"}`, bad, "invalid_reason"),
		create("reason with a bidi override", jsonBody(CreateRequest{HostGroup: "staging", Reason: "x\u202ey"}), bad, "invalid_reason"),
		create("reason with a right-to-left mark", jsonBody(CreateRequest{HostGroup: "staging", Reason: "x\u200fy"}), bad, "invalid_reason"),
		{"review: body with a bidi isolate", call{token: "tok-bob", method: "POST", path: "/v1/requests/{pending}/reviews", body: `{"event":"COMMENT","body":"a\u2067b"}`}, bad, "invalid_body"},
		{"edit: reason with a bidi override", call{token: alice, method: "PATCH", path: "/v1/requests/{pending}", body: `{"reason":"a\u202db"}`}, bad, "invalid_reason"},

		// Query parameters and path values.
		get("certs: user with a newline", alice, "/v1/certificates?user=al%0Aice", bad, "invalid_input"),
		get("certs: since not a time", alice, "/v1/certificates?since=yesterday", bad, "invalid_input"),
		get("certs: negative limit", alice, "/v1/certificates?limit=-1", bad, "invalid_input"),
		get("certs: serial not a number", alice, "/v1/certificates/abc", bad, "invalid_input"),
		get("requests: unknown state", alice, "/v1/requests?state=bogus", bad, "invalid_state"),
		get("requests: mine not a bool", alice, "/v1/requests?mine=maybe", bad, "invalid_input"),
		get("requests: id with a newline", alice, "/v1/requests/r-abc%0A", bad, "invalid_request_id"),
		get("host group with a newline", "", "/v1/host-groups/staging%0A", notFound, "unknown_host_group"),

		// Identities.
		issue("identity provider returns an invalid login", tokenOf("evil\nuser"), issueBody("{open}", "{key}"), http.StatusUnauthorized, "unauthenticated"),
		{"basic auth instead of bearer", call{auth: "Basic YWxpY2U6eA==", method: "POST", path: "/v1/certificates",
			body: issueBody("{open}", "{key}")}, http.StatusUnauthorized, "unauthenticated"},
	}
}

// TestBadInput sends each bad request through the real HTTP API and checks
// the exact status and error code, and that the ledger's certificates are
// the same afterwards.
func TestBadInput(t *testing.T) {
	f := newHardFixture(t)
	state := setupBadInputState(f)
	cases := badInputCases(t)
	if len(cases) < 50 {
		t.Fatalf("only %d bad-input cases; the suite promises at least 50", len(cases))
	}
	t.Logf("%d bad-input cases", len(cases))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.t = t
			before := f.serials()
			c := tc.call
			c.path, c.body = state.fill(c.path), state.fill(c.body)
			got := f.do(c)
			if got.status != tc.status || got.code != tc.code {
				t.Errorf("status %d code %q, want %d %q; body %s", got.status, got.code, tc.status, tc.code, got.body)
			}
			if after := f.serials(); !slices.Equal(after, before) {
				t.Errorf("certificates changed: %v -> %v", before, after)
			}
		})
	}
	// The one good call after all that still works: the suite did not just
	// break the server.
	f.t = t
	if s := f.issue("alice", state["open"]); s == "" || s == state["serial"] {
		t.Fatalf("issuance after the bad input gave serial %q", s)
	}
	if n := len(f.serials()); n != 4 {
		t.Fatalf("%d certificates in the ledger, want 4 (3 from the setup, 1 after)", n)
	}
}
