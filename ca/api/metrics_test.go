package api_test

import (
	"bufio"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca/api"
)

// sampleLine is a sample of the Prometheus text format: a metric name,
// optional labels with quoted (escaped) values, and a number.
var sampleLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$`)

func scrape(t *testing.T, url string) map[string]string {
	t.Helper()
	resp, err := http.Get(url + "/metrics") // no token: like /healthz
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	samples := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		if !sampleLine.MatchString(line) {
			t.Errorf("not a Prometheus sample line: %q", line)
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		samples[line[:i]] = line[i+1:]
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return samples
}

// TestMetrics: GET /metrics counts issued certificates by host group and
// refusals by error code, and times issuance in a histogram whose +Inf
// bucket equals its count.
func TestMetrics(t *testing.T) {
	s := newTestServer(t)
	alice := s.as(t, "alice")
	ctx := t.Context()
	req, err := alice.CreateRequest(ctx, api.CreateRequest{HostGroup: "staging", Reason: "metrics", Duration: "30m"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := alice.IssueCertificate(ctx, req.ID, subjectKey(t)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.IssueCertificate(ctx, "r-aaaaaaaaaaaaaaaa", subjectKey(t)); err == nil {
		t.Fatal("issuing under an unknown request succeeded")
	}
	s.clock.advance(time.Hour)
	if _, err := alice.IssueCertificate(ctx, req.ID, subjectKey(t)); !api.IsStatus(err, http.StatusConflict) {
		t.Fatalf("issuing under an ended grant = %v, want 409", err)
	}

	m := scrape(t, s.url)
	for name, want := range map[string]string{
		`jit_ssh_certificates_issued_total{host_group="staging"}`:      "3",
		`jit_ssh_certificate_refusals_total{code="request_not_found"}`: "1",
		`jit_ssh_certificate_refusals_total{code="grant_ended"}`:       "1",
		`jit_ssh_certificate_issue_seconds_count`:                      "3",
		`jit_ssh_certificate_issue_seconds_bucket{le="+Inf"}`:          "3",
		`jit_ssh_ledger_wal_checkpoint_failures_total`:                 "0",
	} {
		if got := m[name]; got != want {
			t.Errorf("%s = %q, want %s", name, got, want)
		}
	}
	if _, ok := m[`jit_ssh_certificates_issued_total{host_group="prod-db"}`]; ok {
		t.Errorf("a host group with no certificates has a sample")
	}
	prev := -1.0
	for _, le := range []string{"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"} {
		v, err := strconv.ParseFloat(m[`jit_ssh_certificate_issue_seconds_bucket{le="`+le+`"}`], 64)
		if err != nil || v < prev {
			t.Errorf("bucket le=%s = %v (%v): buckets must be present and cumulative", le, v, err)
		}
		prev = v
	}
	if sum, err := strconv.ParseFloat(m["jit_ssh_certificate_issue_seconds_sum"], 64); err != nil || sum <= 0 {
		t.Errorf("issue seconds sum = %v (%v), want > 0", sum, err)
	}
}
