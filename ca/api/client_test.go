package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/jit-ssh/jit-ssh/ca/api"
)

// TestListCertificatesJSON: the export path copies the server's lines
// through, and still refuses a listing that is not NDJSON objects or that
// the server cut off.
func TestListCertificatesJSON(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		abort   bool
		want    []string
		wantErr string
	}{
		{name: "lines", body: "{\"serial\":\"1\"}\n{\"serial\":\"2\"}\n", want: []string{`{"serial":"1"}`, `{"serial":"2"}`}},
		{name: "empty", body: ""},
		{name: "garbled", body: "{\"serial\":\"1\"}\nnot json\n", want: []string{`{"serial":"1"}`}, wantErr: "cut off or garbled"},
		{name: "aborted", body: "{\"serial\":\"1\"}\n{\"ser", abort: true, want: []string{`{"serial":"1"}`}, wantErr: "cut off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The misbehaving peer is the point here, so a stand-in server.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/x-ndjson")
				_, _ = io.WriteString(w, tt.body)
				if tt.abort {
					w.(http.Flusher).Flush()
					panic(http.ErrAbortHandler)
				}
			}))
			defer srv.Close()
			c, err := api.NewClient(srv.URL, "dev-carol")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			err = c.ListCertificatesJSON(context.Background(), api.CertificateFilter{}, func(line []byte) error {
				got = append(got, string(line))
				return nil
			})
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("lines = %q, want %q", got, tt.want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestServerURLRefusesPlainHTTPOffLoopback: https anywhere, plain http only
// to loopback; anything else is refused before a request exists.
func TestServerURLRefusesPlainHTTPOffLoopback(t *testing.T) {
	tests := []struct {
		url      string
		ok       bool
		insecure bool
	}{
		{url: "https://jit-ssh.example.com", ok: true},
		{url: "https://10.1.2.3:7443/", ok: true},
		{url: "http://127.0.0.1:7443", ok: true},
		{url: "http://127.9.8.7:7443", ok: true},
		{url: "http://[::1]:7443", ok: true},
		{url: "http://localhost:7443", ok: true},
		{url: "http://LocalHost", ok: true},
		{url: "http://jit-ssh.example.com", insecure: true},
		{url: "http://jit-ssh.example.com:80/", insecure: true},
		{url: "http://10.1.2.3:7443", insecure: true},
		{url: "http://[2001:db8::1]:7443", insecure: true},
		{url: "http://[::ffff:10.0.0.1]", insecure: true},
		{url: "http://localhost.example.com", insecure: true},
		{url: "http://127.0.0.1.example.com", insecure: true},
		{url: "http://[::1%25lo]:7443", ok: true},
		{url: "ftp://jit-ssh.example.com"},
		{url: "jit-ssh.example.com"},
		{url: "https://"},
		// A user name or password in the URL (printed by every error
		// naming the server) is refused, on loopback too.
		{url: "https://alice:s3cret@jit-ssh.example.com"},
		{url: "http://127.0.0.1@evil.example.com"},
		{url: "http://tok@127.0.0.1:7443"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := api.ServerURL(tt.url)
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("ServerURL(%q) prints the password: %v", tt.url, err)
			}
			if (err == nil) != tt.ok {
				t.Fatalf("ServerURL(%q) = %v, want ok=%v", tt.url, err, tt.ok)
			}
			if got := errors.Is(err, api.ErrInsecureServer); got != tt.insecure {
				t.Errorf("ServerURL(%q) = %v; ErrInsecureServer %v, want %v", tt.url, err, got, tt.insecure)
			}
			if tt.insecure && !strings.Contains(err.Error(), "use https://") {
				t.Errorf("ServerURL(%q) = %q, want it to say to use https://", tt.url, err)
			}
			_, cerr := api.NewClient(tt.url, "tok")
			if (cerr == nil) != tt.ok || errors.Is(cerr, api.ErrInsecureServer) != tt.insecure {
				t.Errorf("NewClient(%q) = %v, want ServerURL's answer %v", tt.url, cerr, err)
			}
		})
	}
}

// countingTransport answers every request itself, counting them: a
// redirect to from's path goes to location, anything else is 200 {}.
type countingTransport struct {
	mu       sync.Mutex
	requests []string
	location string
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.requests = append(c.requests, r.URL.String()+" auth="+r.Header.Get("Authorization"))
	n := len(c.requests)
	c.mu.Unlock()
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(`{"status":"ok"}`)), Request: r}
	if n == 1 {
		resp.StatusCode = http.StatusFound
		resp.Header.Set("Location", c.location)
	}
	return resp, nil
}

// TestClientRefusesRedirectToPlainHTTP: an https server that redirects to
// plain http off loopback does not get its redirect followed (the token
// would go in clear, as net/http keeps it for the same host); a redirect to
// https or to loopback http is followed. The check holds for a caller's own
// http.Client too, which is not changed.
func TestClientRefusesRedirectToPlainHTTP(t *testing.T) {
	tests := []struct {
		location string
		followed bool
	}{
		{"http://jit-ssh.example.com/healthz", false},
		{"http://10.0.0.1/healthz", false},
		{"https://jit-ssh.example.com/other", true},
		{"http://127.0.0.1:7443/healthz", true},
	}
	for _, tt := range tests {
		t.Run(tt.location, func(t *testing.T) {
			rt := &countingTransport{location: tt.location}
			mine := &http.Client{Transport: rt}
			c, err := api.NewClient("https://jit-ssh.example.com", "secret-token", api.WithHTTPClient(mine))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Health(context.Background())
			if mine.CheckRedirect != nil {
				t.Errorf("the caller's http.Client was changed")
			}
			if tt.followed {
				if err != nil || len(rt.requests) != 2 {
					t.Fatalf("Health: %v after %q; want the redirect followed", err, rt.requests)
				}
				return
			}
			if !errors.Is(err, api.ErrInsecureServer) {
				t.Errorf("Health: err = %v, want %v", err, api.ErrInsecureServer)
			}
			if len(rt.requests) != 1 {
				t.Errorf("requests = %q, want only the first (the redirect not followed)", rt.requests)
			}
		})
	}
}

// TestClientBoundsPublicAnswers: the answers the host commands read (GET
// /v1/ca, GET /v1/host-groups/{name}) are read up to MaxPublicAnswerBytes;
// a longer one is an error, even when it is well-formed JSON (finding 10
// of issue 13: a 300 MB answer took 1.4 GB before failing).
func TestClientBoundsPublicAnswers(t *testing.T) {
	var size int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := size
		mu.Unlock()
		switch r.URL.Path {
		case "/v1/ca":
			_, _ = io.WriteString(w, `{"keys":[{"public_key":"`+strings.Repeat("A", n)+`"}]}`)
		default:
			_, _ = io.WriteString(w, `{"name":"g","principals":["`+strings.Repeat("p", n)+`"]}`)
		}
	}))
	defer srv.Close()
	c, err := api.NewClient(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := map[string]func() error{
		"CA":        func() error { _, err := c.CA(ctx); return err },
		"HostGroup": func() error { _, err := c.HostGroup(ctx, "g"); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			mu.Lock()
			size = api.MaxPublicAnswerBytes / 2
			mu.Unlock()
			if err := call(); err != nil {
				t.Fatalf("an answer of half the bound: %v", err)
			}
			mu.Lock()
			size = api.MaxPublicAnswerBytes
			mu.Unlock()
			err := call()
			if err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
				t.Fatalf("an answer over the bound: err = %v, want one saying it is larger than 1048576 bytes", err)
			}
		})
	}
}
