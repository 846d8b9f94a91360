package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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
