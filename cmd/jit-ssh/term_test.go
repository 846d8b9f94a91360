package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
)

// hostile is ledger text that would act on a terminal: colour and screen
// escapes, a bell, a C1 control sequence introducer, a carriage return and
// bidirectional overrides and isolates, and a newline and tab that would
// forge a row of a table.
const hostile = "red\x1b[31m\x07bell\u009b2J\rcr\u202eevil\u2066iso\u2069\nFORGED\trow"

// TestTableOutputEscapesLedgerControls: whatever the server's ledger holds
// (stored before the free-text rule, or edited in), table output shows it
// as visible escapes and never passes a control or bidi character to the
// terminal, nor lets a stored value start a row (finding 8 of issue 13).
// JSON output stays the data as it is.
func TestTableOutputEscapesLedgerControls(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cert := api.Certificate{Serial: "7", KeyID: "jit-ssh:" + hostile, HostGroup: "prod-db", Principals: []string{hostile},
		ValidAfter: now, ValidBefore: now.Add(time.Minute), Requester: hostile, RequestID: "r-aaaaaaaaaaaaaaaa",
		Approvers: []string{hostile}, Fingerprint: hostile, IssuedAt: now, RevokedAt: &now, Reason: hostile}
	req := api.Request{ID: "r-aaaaaaaaaaaaaaaa", HostGroup: "prod-db", Requester: hostile, State: "approved", Reason: hostile,
		Duration: "1h", CreatedAt: now, Approvals: []string{hostile},
		Reviews: []ca.Review{{Reviewer: hostile, Event: "APPROVE", Body: hostile, CreatedAt: now}}}
	ev := api.Event{ID: 1, Time: now, Actor: hostile, Type: hostile, RequestID: "r-aaaaaaaaaaaaaaaa", Serial: "7",
		Data: map[string]any{"reason": hostile}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		enc := json.NewEncoder(w)
		switch {
		case r.URL.Path == "/v1/certificates":
			_ = enc.Encode(cert)
		case r.URL.Path == "/v1/events":
			_ = enc.Encode(ev)
		case r.URL.Path == "/v1/requests":
			_ = enc.Encode(map[string]any{"requests": []api.Request{req}})
		case strings.HasPrefix(r.URL.Path, "/v1/requests/"):
			_ = enc.Encode(req)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	t.Setenv("JIT_SSH_SERVER", srv.URL)
	t.Setenv("JIT_SSH_TOKEN", "tok")
	t.Setenv("HOME", t.TempDir())

	tests := []struct {
		args []string
		rows int // lines of output the table has, forged rows excluded
	}{
		{[]string{"audit", "events"}, 2},
		{[]string{"audit", "certs"}, 2},
		{[]string{"audit", "show", "7"}, 0},
		{[]string{"request", "show", "r-aaaaaaaaaaaaaaaa"}, 0},
		{[]string{"request", "list"}, 2},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(t.Context(), tt.args, strings.NewReader(""), &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			got := out.String()
			for _, r := range got {
				if (unicode.IsControl(r) && r != '\n') || unicode.Is(unicode.Bidi_Control, r) {
					t.Fatalf("output passes %U to the terminal:\n%q", r, got)
				}
			}
			if !strings.Contains(got, `\u001b[31m`) || !strings.Contains(got, `\u202eevil`) {
				t.Errorf("output does not show the escapes visibly:\n%s", got)
			}
			for _, line := range strings.Split(got, "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "FORGED") {
					t.Errorf("a stored newline started a line of its own:\n%s", got)
				}
			}
			if tt.rows > 0 {
				if n := strings.Count(strings.TrimSuffix(got, "\n"), "\n") + 1; n != tt.rows {
					t.Errorf("%d lines, want %d (header and one row):\n%s", n, tt.rows, got)
				}
			}
		})
	}

	// JSON is data: the same characters, as the encoder writes them.
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"audit", "events", "-o", "json"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("audit events -o json: exit %d: %s", code, errb.String())
	}
	var back api.Event
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.Actor != hostile || back.Data["reason"] != hostile {
		t.Errorf("JSON output changed the data: %v, actor %q", err, back.Actor)
	}
}

// TestTermWriter: the escapes, and text without anything to escape written
// as it is.
func TestTermWriter(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain ascii\twith tab\n", "plain ascii\twith tab\n"},
		{"héllo wörld ✓\n", "héllo wörld ✓\n"},
		{"\x1b[2J\x07\r\x00\x7f", `\u001b[2J\u0007\u000d\u0000\u007f`},
		{"\u0085\u009b", `\u0085\u009b`},
		{"a\u202eb\u2066c\u2069\u200e\u200f\u061c", `a\u202eb\u2066c\u2069\u200e\u200f\u061c`},
		{"bad \xff\xc3 utf-8", `bad \xff\xc3 utf-8`},
		{"zero\u200dwidth joiner stays", "zero\u200dwidth joiner stays"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		n, err := termWriter{&b}.Write([]byte(tt.in))
		if err != nil || n != len(tt.in) || b.String() != tt.want {
			t.Errorf("Write(%q) = %d, %v, %q; want %d, %q", tt.in, n, err, b.String(), len(tt.in), tt.want)
		}
	}
}
