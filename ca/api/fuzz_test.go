package api

// Fuzz targets for what the API reads from callers: JSON bodies (decode),
// duration strings (parseDuration, for request durations and ?wait=), and
// the whole handler stack with a real ledger. Seeds: the f.Add calls and
// testdata/fuzz/<target>/.

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// bodyTypes are the request bodies the API decodes.
func bodyTypes() []any {
	return []any{&CreateRequest{}, &EditRequest{}, &ReviewRequest{}, &IssueRequest{}, &RevokeRequest{}}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"host_group":"staging","duration":"30m","reason":"deploy"}`,
		`{"reason":null}`, `{"reason":"x"}`, `{"duration":"1h"}`,
		`{"event":"APPROVE","body":"ok"}`,
		`{"request_id":"r-abcdefghijklmnop","public_key":"ssh-ed25519 AAAA"}`,
		`{"serial":"12","reason":"lost"}`,
		`{"host_group":"staging","principals":["root"]}`,
		`{} {}`, `{}x`, ` {} `, `null`, `[]`, `"x"`, ``, `{"host_group":"\u0000"}`, "{\"reason\":\"\xff\"}",
		strings.Repeat("[", 100),
	} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(`{}`), "")
	f.Add([]byte(`{}`), "text/plain")
	f.Add([]byte(`{}`), "application/json; charset=utf-8")
	f.Add([]byte(`{}`), ";;")
	f.Fuzz(func(t *testing.T, data []byte, contentType string) {
		for _, v := range bodyTypes() {
			r := httptest.NewRequest(http.MethodPost, "/v1/x", bytes.NewReader(data))
			if contentType != "" {
				r.Header.Set("Content-Type", contentType)
			}
			err := decode(httptest.NewRecorder(), r, v)
			if err != nil {
				status, code, msg := classify(err)
				switch {
				case status == http.StatusBadRequest && code == "invalid_input",
					status == http.StatusRequestEntityTooLarge && code == "body_too_large",
					status == http.StatusUnsupportedMediaType && code == "unsupported_media_type":
				default:
					t.Fatalf("decode error %v answers %d %s", err, status, code)
				}
				if msg == "" {
					t.Fatalf("decode error %v has no message", err)
				}
				continue
			}
			if len(data) > MaxBodyBytes {
				t.Fatalf("accepted a body of %d bytes, over the cap of %d", len(data), MaxBodyBytes)
			}
			if !json.Valid(data) {
				t.Fatalf("accepted a body that is not one JSON value: %q", data)
			}
			if contentType != "" {
				if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != "application/json" {
					t.Fatalf("accepted content type %q", contentType)
				}
			}
			// What was accepted re-encodes and decodes to the same value.
			out, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			r = httptest.NewRequest(http.MethodPost, "/v1/x", bytes.NewReader(out))
			if err := decode(httptest.NewRecorder(), r, again); err != nil {
				t.Fatalf("re-decoding %s: %v", out, err)
			}
			if !reflect.DeepEqual(v, again) {
				t.Fatalf("round trip changed %#v into %#v", v, again)
			}
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"", "30m", "1h", "1h30m", "0", "0s", "-1h", "1.5h", "1e3s", "9999999999999999999h",
		"1h\n", " 1h", "30", "∞", "1µs", "1ns", ".5m", "2562047h47m16.854775807s", strings.Repeat("1", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDuration(s)
		if err != nil {
			if !errors.Is(err, errBadInput) {
				t.Fatalf("parseDuration(%q) error %v is not errBadInput (the API would answer 500)", s, err)
			}
			if d != 0 {
				t.Fatalf("parseDuration(%q) returned %s with an error", s, d)
			}
			return
		}
		if s == "" {
			if d != 0 {
				t.Fatalf("empty duration gave %s", d)
			}
			return
		}
		if d <= 0 || len(s) > 32 {
			t.Fatalf("parseDuration(%q) accepted %s", s, d)
		}
		if again, err := parseDuration(d.String()); err != nil || again != d {
			t.Fatalf("round trip of %s: %s, %v", d, again, err)
		}
		// The waits derived from it never go past MaxWait.
		if w := min(d, MaxWait); w > MaxWait || w <= 0 {
			t.Fatalf("wait %s", w)
		}
		if d.Round(time.Nanosecond) != d {
			t.Fatalf("not a whole number of nanoseconds")
		}
	})
}

// fuzzRoutes are the writing endpoints FuzzServeHTTP drives, with the
// placeholders of badInputState.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/v1/requests"},
	{"POST", "/v1/certificates"},
	{"PATCH", "/v1/requests/{pending}"},
	{"POST", "/v1/requests/{pending}/reviews"},
	{"POST", "/v1/requests/{open}/cancel"},
	{"POST", "/v1/revocations"},
	{"GET", "/v1/requests/{pending}?wait=1ms&version="},
	{"GET", "/v1/certificates?"},
	{"GET", "/v1/events?"},
}

var fuzzTokens = []string{"tok-alice", "tok-bob", "tok-carol", "tok-erin", "", "tok-nobody", "tok-evil"}

// FuzzServeHTTP sends fuzzed bodies and query strings to the real handler
// stack with a real ledger: no answer is a 5xx, every error is a JSON error
// with a code, and the ledger gains a certificate only when issuance
// answered 201.
func FuzzServeHTTP(f *testing.F) {
	fx := newHardFixture(f)
	state := setupBadInputState(fx)
	f.Add(uint8(0), uint8(0), `{"host_group":"staging","reason":"x"}`)
	f.Add(uint8(1), uint8(0), `{"request_id":"{open}","public_key":"{key}"}`)
	f.Add(uint8(1), uint8(1), `{"request_id":"{approved}","public_key":"{key}"}`)
	f.Add(uint8(2), uint8(0), `{"duration":"10m"}`)
	f.Add(uint8(3), uint8(1), `{"event":"APPROVE","body":""}`)
	f.Add(uint8(4), uint8(0), ``)
	f.Add(uint8(5), uint8(0), `{"serial":"{serial}","reason":"x"}`)
	f.Add(uint8(6), uint8(0), `3`)
	f.Add(uint8(7), uint8(2), `user=alice&valid_at=2026-03-02T10:00:00Z&limit=1`)
	f.Add(uint8(8), uint8(2), `type=certificate.issued&serial=1&since=x`)
	f.Fuzz(func(t *testing.T, route, token uint8, body string) {
		fx.t = t
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		path := state.fill(rt.path)
		body = state.fill(body)
		var req *http.Request
		if rt.method == "GET" {
			req = httptest.NewRequest(rt.method, "/", nil)
			req.URL.Path, _, _ = strings.Cut(path, "?")
			_, q, _ := strings.Cut(path, "?")
			req.URL.RawQuery = q + body
		} else {
			req = httptest.NewRequest(rt.method, path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
		}
		if tok := fuzzTokens[int(token)%len(fuzzTokens)]; tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		before := len(fx.serials())
		w := httptest.NewRecorder()
		fx.srv.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", rt.method, path, body, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var eb ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("%d without a JSON error: %q", w.Code, w.Body)
			}
		}
		after := len(fx.serials())
		issued := rt.path == "/v1/certificates" && w.Code == http.StatusCreated
		switch {
		case issued && after != before+1:
			t.Fatalf("issuance answered 201 but the ledger went from %d to %d certificates", before, after)
		case !issued && after != before:
			t.Fatalf("%s %s answered %d and the ledger went from %d to %d certificates", rt.method, path, w.Code, before, after)
		}
	})
}
