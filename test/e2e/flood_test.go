package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// floodConfig gives every login a write budget of 10 at once and one more
// a minute; the other limits are off so only the budget decides.
const floodConfig = `
listen: 127.0.0.1:0
data_dir: %DATA%
signer: {type: file}
identity:
  type: static
  static:
    users:
      alice: {token: dev-alice, teams: [backend]}
      erin:  {token: dev-erin,  teams: [backend]}
      bob:   {token: dev-bob,   teams: [sre-leads]}
      carol: {token: dev-carol, teams: [security]}
auditors: [security]
limits:
  requests: {per_minute: 0}
  certificates: {per_minute: 0}
  writes: {per_minute: 1, burst: 10}
host_groups:
  prod-db: {principals: [prod-db], requesters: [backend], approvers: [sre-leads], approvals_required: 1, max_duration: 1h, cert_ttl: 5m}
  staging: {principals: [staging], requesters: [backend], approvals_required: 0, max_duration: 1h, cert_ttl: 5m}
`

// TestFloodOfRefusals: 8 clients of one identity hammer a refused review
// (alice approving her own request). The server cuts them off with 429 and
// Retry-After once the identity's write budget (limits.writes) is spent,
// another identity is issued a certificate meanwhile, the identical
// refusals take one event and not one each, and their count is in the
// ledger after the server stops: every refusal accounted for, the chain
// intact.
func TestFloodOfRefusals(t *testing.T) {
	dir := testenv.TempDir(t)
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(floodConfig, "%DATA%", filepath.Join(dir, "data"))), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "--config", cfg)
	ctx := context.Background()
	alice, err := api.NewClient(srv.URL, "dev-alice")
	if err != nil {
		t.Fatal(err)
	}
	req, err := alice.CreateRequest(ctx, api.CreateRequest{HostGroup: "prod-db", Reason: "flood"})
	if err != nil {
		t.Fatal(err)
	}

	const clients, each = 8, 10
	var mu sync.Mutex
	statuses := map[int]int{}
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range each {
				hr, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/requests/"+req.ID+"/reviews", strings.NewReader(`{"event":"APPROVE","body":"me"}`))
				if err != nil {
					t.Error(err)
					return
				}
				hr.Header.Set("Authorization", "Bearer dev-alice")
				hr.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(hr)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
					t.Errorf("429 without Retry-After")
				}
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// 9 tokens left after the create, one more per minute that passed.
	refused, limited := statuses[http.StatusForbidden], statuses[http.StatusTooManyRequests]
	if maxServed := 9 + int(elapsed/time.Minute) + 1; refused < 9 || refused > maxServed || refused+limited != clients*each {
		t.Fatalf("flood answers %v in %s: want 9 to %d refusals (403) and the rest 429", statuses, elapsed, maxServed)
	}

	// Another identity is unaffected.
	erin, err := api.NewClient(srv.URL, "dev-erin")
	if err != nil {
		t.Fatal(err)
	}
	grant, err := erin.CreateRequest(ctx, api.CreateRequest{HostGroup: "staging", Reason: "work"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := erin.IssueCertificate(ctx, grant.ID, newPublicKey(t)); err != nil {
		t.Fatalf("erin's certificate during alice's flood: %v", err)
	}

	aliceRefusals := func(s *server) []api.Event {
		var out []api.Event
		carol := s.as(t, "carol", "")
		for _, ev := range jsonLines[api.Event](t, carol.ok("audit", "events", "-o", "json", "--type", "review.refused").Stdout) {
			if ev.Actor == "alice" && ev.RequestID == req.ID {
				out = append(out, ev)
			}
		}
		return out
	}
	// Counting windows close every minute (and are written then); events
	// are bounded by that, not by the number of refusals.
	maxEvents := 2 + 2*int(time.Since(start)/time.Minute)
	if got := aliceRefusals(srv); len(got) == 0 || len(got) > maxEvents {
		t.Fatalf("%d review.refused events for %d identical refusals, want 1 to %d", len(got), refused, maxEvents)
	}

	// Stopping the server records the counts still open.
	srv.Stop(t)
	srv = startServer(t, "--config", cfg)
	got := aliceRefusals(srv)
	total := 0
	for _, ev := range got {
		n := 1
		if c, ok := ev.Data["count"].(float64); ok {
			n = int(c)
		}
		total += n
	}
	if total != refused || len(got) > maxEvents+1 {
		t.Errorf("after the restart %d review.refused events account for %d refusals, want %d in at most %d events: %+v", len(got), total, refused, maxEvents+1, got)
	}
	carol := srv.as(t, "carol", "")
	carol.ok("audit", "verify")
}
