package api

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// authzRoles are the columns of the authorisation matrix, in order.
var authzRoles = []struct{ name, token string }{
	{"anonymous", ""},
	{"bad token", "tok-nobody"},
	{"requester", "tok-alice"},                 // owns the request or certificate the cell is about
	{"other user", "tok-erin"},                 // same team as the requester, not the owner
	{"approver of another group", "tok-wendy"}, // approves prod-web, not prod-db
	{"approver", "tok-bob"},                    // approves prod-db
	{"auditor", "tok-carol"},                   // member of an auditor team
}

// authzRow is one endpoint (or one variant of it) and the status each role
// gets, in the compact notation "anon bad requester other other-approver
// approver auditor". Every cell runs on fresh objects made by setup, so
// what one cell does cannot change the next one's answer.
type authzRow struct {
	pattern string // the mux pattern, "METHOD /path/{param}"
	query   string // a variant: query string appended to the path
	body    string // with the placeholders of setup
	setup   func(f *hardFixture) badInputState
	want    string
	public  bool // needs no authentication at all
}

// Fresh objects for one cell, all of alice and prod-db.
func noSetup(*hardFixture) badInputState { return badInputState{} }

func pendingSetup(f *hardFixture) badInputState {
	return badInputState{"id": f.create("alice", "prod-db", "")}
}

func approvedSetup(f *hardFixture) badInputState {
	id := f.create("alice", "prod-db", "")
	f.review("bob", id, "APPROVE")
	return badInputState{"id": id, "key": f.key}
}

func certSetup(f *hardFixture) badInputState {
	s := approvedSetup(f)
	s["serial"] = f.issue("alice", s["id"])
	return s
}

// authed prefixes the answers of the two unauthenticated roles.
func authed(rest string) string { return "401 401 " + rest }

const everyone200 = "200 200 200 200 200 200 200"

var authzMatrix = []authzRow{
	// Public: hosts and load balancers call these without a token.
	{pattern: "GET /healthz", setup: noSetup, want: everyone200, public: true},
	{pattern: "GET /metrics", setup: noSetup, want: everyone200, public: true},
	{pattern: "GET /v1/ca", setup: noSetup, want: everyone200, public: true},
	{pattern: "GET /v1/host-groups/{name}", setup: func(*hardFixture) badInputState { return badInputState{"name": "prod-db"} }, want: everyone200, public: true},
	{pattern: "GET /v1/krl", setup: noSetup, want: everyone200, public: true},

	// Requests.
	{pattern: "POST /v1/requests", body: `{"host_group":"prod-db","reason":"x"}`, setup: noSetup, want: authed("201 201 403 403 403")},
	{pattern: "GET /v1/requests", setup: pendingSetup, want: authed("200 200 200 200 200")},
	{pattern: "GET /v1/requests", query: "?reviewable=true", setup: pendingSetup, want: authed("200 200 200 200 200")},
	{pattern: "GET /v1/requests/{id}", setup: pendingSetup, want: authed("200 404 404 200 200")},
	{pattern: "GET /v1/requests/{id}", query: "?wait=1ms", setup: pendingSetup, want: authed("200 404 404 200 200")},
	{pattern: "PATCH /v1/requests/{id}", body: `{"reason":"narrower"}`, setup: pendingSetup, want: authed("200 404 404 403 403")},
	{pattern: "POST /v1/requests/{id}/cancel", setup: pendingSetup, want: authed("200 404 404 403 403")},
	{pattern: "POST /v1/requests/{id}/cancel", query: "?grant", setup: approvedSetup, want: authed("200 404 404 200 403")},
	{pattern: "POST /v1/requests/{id}/reviews", body: `{"event":"APPROVE","body":"ok"}`, setup: pendingSetup, want: authed("403 403 403 201 403")},
	{pattern: "POST /v1/requests/{id}/reviews", query: "?comment", body: `{"event":"COMMENT","body":"why?"}`, setup: pendingSetup, want: authed("201 403 403 201 403")},

	// Certificates.
	{pattern: "POST /v1/certificates", body: `{"request_id":"{id}","public_key":"{key}"}`, setup: approvedSetup, want: authed("201 404 404 403 403")},
	{pattern: "GET /v1/certificates", setup: certSetup, want: authed("200 200 200 200 200")},
	{pattern: "GET /v1/certificates", query: "?user=alice", setup: certSetup, want: authed("200 403 403 403 200")},
	{pattern: "GET /v1/certificates/{serial}", setup: certSetup, want: authed("200 404 404 404 200")},

	// Audit.
	{pattern: "GET /v1/events", setup: certSetup, want: authed("200 200 200 200 200")},
	{pattern: "GET /v1/events", query: "?user=alice", setup: certSetup, want: authed("200 403 403 403 200")},
	{pattern: "GET /v1/audit/verify", setup: noSetup, want: authed("403 403 403 403 200")},
	{pattern: "GET /v1/audit/report", setup: noSetup, want: authed("403 403 403 403 200")},

	// Revocations: the owner, an approver of the group, or an admin.
	{pattern: "POST /v1/revocations", query: "?serial", body: `{"serial":"{serial}","reason":"x"}`, setup: certSetup, want: authed("200 403 403 200 403")},
	{pattern: "POST /v1/revocations", query: "?request", body: `{"request_id":"{id}","reason":"x"}`, setup: certSetup, want: authed("200 404 404 200 403")},
	{pattern: "POST /v1/revocations", query: "?user", body: `{"user":"alice","reason":"x"}`, setup: certSetup, want: authed("200 403 403 403 403")},
}

// muxPatterns reads the routes registered in server.go and audit.go, so a
// new endpoint without a row in the matrix fails the test.
func muxPatterns(t *testing.T) []string {
	t.Helper()
	re := regexp.MustCompile(`HandleFunc\("([A-Z]+ /[^"]*)"`)
	var out []string
	for _, file := range []string{"server.go", "audit.go"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			out = append(out, m[1])
		}
	}
	if len(out) < 10 {
		t.Fatalf("found only %d routes in server.go and audit.go; has the mux moved?", len(out))
	}
	return out
}

func TestAuthzMatrixCoversEveryEndpoint(t *testing.T) {
	rows := map[string]bool{}
	for _, r := range authzMatrix {
		rows[r.pattern] = true
	}
	for _, p := range muxPatterns(t) {
		if !rows[p] {
			t.Errorf("endpoint %q has no row in the authorisation matrix", p)
		}
	}
}

// TestAuthzMatrix runs every endpoint as every role and checks the status.
func TestAuthzMatrix(t *testing.T) {
	f := newHardFixture(t)
	cells := 0
	for _, row := range authzMatrix {
		want := strings.Fields(row.want)
		if len(want) != len(authzRoles) {
			t.Fatalf("%s%s: %d answers for %d roles", row.pattern, row.query, len(want), len(authzRoles))
		}
		method, path, _ := strings.Cut(row.pattern, " ")
		for i, role := range authzRoles {
			status, err := strconv.Atoi(want[i])
			if err != nil {
				t.Fatalf("%s%s: %q is not a status", row.pattern, row.query, want[i])
			}
			if i < 2 && row.public != (status != http.StatusUnauthorized) {
				t.Fatalf("%s%s: the public flag and the unauthenticated answers disagree", row.pattern, row.query)
			}
			cells++
			t.Run(row.pattern+row.query+"/"+role.name, func(t *testing.T) {
				f.t = t
				state := row.setup(f)
				before := f.serials()
				p := path
				for k, v := range state {
					p = strings.ReplaceAll(p, "{"+k+"}", v)
				}
				q := row.query
				if q != "" && !strings.Contains(q, "=") {
					q = "" // a label for the variant only
				}
				got := f.do(call{token: role.token, method: method, path: p + q, body: state.fill(row.body)})
				if got.status != status {
					t.Fatalf("status %d (%s), want %d: %s", got.status, got.code, status, got.body)
				}
				if got.status == http.StatusUnauthorized && got.code != "unauthenticated" {
					t.Fatalf("401 with code %q, want unauthenticated", got.code)
				}
				if after := f.serials(); got.status >= 400 && !slices.Equal(after, before) {
					t.Fatalf("a refused call changed the certificates: %v -> %v", before, after)
				}
			})
		}
	}
	t.Logf("%d endpoints/variants x %d roles = %d cells", len(authzMatrix), len(authzRoles), cells)
}
