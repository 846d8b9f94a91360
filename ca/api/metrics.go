package api

import (
	"bufio"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// metrics counts what GET /metrics exposes, in Prometheus' text format
// (version 0.0.4). It is written by hand rather than with a client
// library: the single jit-ssh binary runs every CLI command too, and both
// libraries tried (prometheus/client_golang, VictoriaMetrics/metrics)
// build their runtime collectors at package initialisation, 1.6 ms and
// more of every `jit-ssh login` for a handful of counters only the server
// uses. Labels carry only bounded, checked values: host groups (from the
// configuration) and error codes (constants), never user names.
type metrics struct {
	mu      sync.Mutex
	issued  map[string]uint64 // by host group
	refused map[string]uint64 // by error code
	// issueSeconds is the latency of successful issuances: cumulative
	// counts per bucket bound (issueBuckets), the sum and the count.
	issueBuckets []uint64
	issueSum     float64
	issueCount   uint64
	started      time.Time
}

// issueBounds are the histogram's upper bounds, in seconds.
var issueBounds = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func newMetrics(now time.Time) *metrics {
	return &metrics{issued: map[string]uint64{}, refused: map[string]uint64{}, issueBuckets: make([]uint64, len(issueBounds)), started: now}
}

func (m *metrics) certificateIssued(group string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.issued[group]++
	s := d.Seconds()
	for i, b := range issueBounds {
		if s <= b {
			m.issueBuckets[i]++
		}
	}
	m.issueSum += s
	m.issueCount++
}

func (m *metrics) certificateRefused(code string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refused[code]++
}

// labelEscaper escapes a label value as the text format requires.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// write renders every metric.
func (m *metrics) write(w *bufio.Writer, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	counter := func(name, help, label string, byLabel map[string]uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		for _, k := range slices.Sorted(maps.Keys(byLabel)) {
			fmt.Fprintf(w, "%s{%s=\"%s\"} %d\n", name, label, labelEscaper.Replace(k), byLabel[k])
		}
	}
	counter("jit_ssh_certificates_issued_total", "Certificates issued (recorded in the ledger and returned), by host group.", "host_group", m.issued)
	counter("jit_ssh_certificate_refusals_total", "Certificate requests refused, by error code (the code of the API error).", "code", m.refused)
	const h = "jit_ssh_certificate_issue_seconds"
	fmt.Fprintf(w, "# HELP %s Time to issue a certificate, from the request to the response (successful issuances).\n# TYPE %s histogram\n", h, h)
	for i, b := range issueBounds {
		fmt.Fprintf(w, "%s_bucket{le=\"%s\"} %d\n", h, formatFloat(b), m.issueBuckets[i])
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %s\n%s_count %d\n", h, m.issueCount, h, formatFloat(m.issueSum), h, m.issueCount)
	const up = "jit_ssh_uptime_seconds"
	fmt.Fprintf(w, "# HELP %s Seconds since the server started.\n# TYPE %s gauge\n%s %s\n", up, up, up, formatFloat(now.Sub(m.started).Seconds()))
}

// serveMetrics answers GET /metrics. Like /healthz it needs no token: it
// holds counts by host group and error code, nothing about people.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	bw := bufio.NewWriter(w)
	s.metrics.write(bw, time.Now())
	// Break glass, from the ledger (so the counts survive restarts and
	// agree across servers); left out of a scrape the ledger cannot answer.
	if counts, err := s.authority.BreakGlassCounts(r.Context()); err == nil {
		grants, overdue := map[string]uint64{}, map[string]uint64{}
		for g, c := range counts {
			grants[g], overdue[g] = uint64(c.Grants), uint64(c.Overdue) //nolint:gosec // counts of rows
		}
		writeByGroup(bw, "jit_ssh_break_glass_grants_total", "counter", "Break-glass grants taken (without an approver), by host group.", grants)
		writeByGroup(bw, "jit_ssh_break_glass_overdue_follow_ups", "gauge", "Break-glass grants whose follow-up review is past due now, by host group (alert when above 0).", overdue)
	}
	// The ledger's counters; a ledger that cannot tell them now is left
	// out of this scrape (it is not an error of the scrape).
	if st, err := s.ledger.Stats(r.Context()); err == nil {
		const name = "jit_ssh_ledger_wal_checkpoint_failures_total"
		fmt.Fprintf(bw, "# HELP %s Background checkpoints of the ledger's write-ahead log that failed (its -wal file grows while they do).\n# TYPE %s counter\n%s %d\n",
			name, name, name, st.WALCheckpointFailures)
	}
	_ = bw.Flush() // a scraper that went away is not an error
}

// writeByGroup writes one metric of the given type with a value per host
// group.
func writeByGroup(w *bufio.Writer, name, typ, help string, byGroup map[string]uint64) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	for _, g := range slices.Sorted(maps.Keys(byGroup)) {
		fmt.Fprintf(w, "%s{host_group=\"%s\"} %d\n", name, labelEscaper.Replace(g), byGroup[g])
	}
}
