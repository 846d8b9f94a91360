package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// breakGlassConfig: prod-db needs an approval from sre-leads (bob, dave);
// alice (backend, oncall) may break glass, erin (backend) may not; the
// reason must name an incident. Notifications go to %WEBHOOK%.
const breakGlassConfig = `
listen: 127.0.0.1:0
data_dir: %DATA%
signer: {type: file}
identity:
  type: static
  static:
    users:
      alice: {token: dev-alice, teams: [backend, oncall]}
      erin:  {token: dev-erin,  teams: [backend]}
      bob:   {token: dev-bob,   teams: [sre-leads]}
      carol: {token: dev-carol, teams: [security]}
auditors: [security]
notify: {webhook_url: "%WEBHOOK%"}
host_groups:
  prod-db:
    principals: [prod-db]
    requesters: [backend, oncall]
    approvers: [sre-leads]
    approvals_required: 1
    max_duration: 1h
    cert_ttl: 5m
    extensions: [permit-pty]
    break_glass:
      teams: [oncall]
      max_duration: 30m
      review_within: 24h
      reason_pattern: '^INC-[0-9]+'
` + testLimits

// TestBreakGlass: with a real sshd and ssh-agent, alice breaks glass with
// no approver, ssh works at once with a by=break-glass KeyId, every
// approver is alerted (urgent); the follow-up is reviewable by bob, and
// alice cannot record it (the unit tests cover a requester who is also an
// approver); bob marks it not justified, and after host sync sshd refuses
// the certificate, which the ledger records revoked; the report, the
// events and /metrics show it.
func TestBreakGlass(t *testing.T) {
	var mu sync.Mutex
	var posts []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var msg struct{ Text string }
		_ = json.Unmarshal(b, &msg)
		mu.Lock()
		posts = append(posts, msg.Text)
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	posted := func(sub string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range posts {
			if strings.Contains(p, sub) {
				return true
			}
		}
		return false
	}

	srv := startWithConfig(t, strings.ReplaceAll(breakGlassConfig, "%WEBHOOK%", hook.URL))
	sockA, sockE := testenv.StartAgent(t), testenv.StartAgent(t)
	alice, erin, bob, carol := srv.as(t, "alice", sockA), srv.as(t, "erin", sockE), srv.as(t, "bob", ""), srv.as(t, "carol", "")
	operator := srv.as(t, "nobody", "")
	dir, host := hostDir(t, operator, "prod-db")

	// Who may not, and a reason that names no incident, change nothing.
	if r := erin.run("login", "prod-db", "--break-glass", "--reason", "INC-42: primary down"); r.Code != 3 || !strings.Contains(r.Stderr, "not a member of oncall") {
		t.Fatalf("erin breaking glass: exit %d, stderr %q; want 3 and 'not a member of oncall'", r.Code, r.Stderr)
	}
	if r := alice.run("login", "prod-db", "--break-glass", "--reason", "primary down"); r.Code == 0 || !strings.Contains(r.Stderr, "reason_pattern") {
		t.Fatalf("break glass without an incident: exit %d, stderr %q; want a refusal naming reason_pattern", r.Code, r.Stderr)
	}
	if r := alice.run("login", "prod-db", "--break-glass"); r.Code != 2 {
		t.Fatalf("break glass without --reason: exit %d, want 2 (usage)", r.Code)
	}
	if reqs := jsonLines[api.Request](t, carol.ok("request", "list", "-o", "json").Stdout); len(reqs) != 0 {
		t.Fatalf("refused break glass left requests: %+v", reqs)
	}

	r := alice.ok("login", "prod-db", "--break-glass", "--reason", "INC-42: primary down")
	if !strings.Contains(r.Stderr, "BREAK GLASS: grant ") {
		t.Errorf("login --break-glass stderr %q; want it to say BREAK GLASS", r.Stderr)
	}
	mine := jsonLines[api.Request](t, alice.ok("request", "list", "--mine", "-o", "json").Stdout)
	if len(mine) != 1 || !mine[0].BreakGlass || mine[0].State != ca.StateApproved || mine[0].FollowUp != ca.FollowUpNeedsReview {
		t.Fatalf("alice's requests after break glass: %+v; want one approved break-glass grant needing review", mine)
	}
	id := mine[0].ID
	if !sshWorks(t, sockA, host) {
		t.Fatalf("ssh with the break-glass certificate failed\nsshd log:\n%s", host.Log())
	}
	if !strings.Contains(host.Log(), "req="+id+":by=break-glass") {
		t.Errorf("sshd did not log the break-glass KeyId:\n%s", host.Log())
	}
	waitFor(t, "the urgent break-glass notification", 10*time.Second, func() bool { return posted("URGENT jit-ssh: alice BROKE GLASS on prod-db") })

	if st := alice.ok("status").Stdout; !strings.Contains(st, "BREAK GLASS") || !strings.Contains(st, id) {
		t.Errorf("alice's status does not show the follow-up of %s:\n%s", id, st)
	}
	rev := jsonLines[api.Request](t, bob.ok("request", "list", "--reviewable", "-o", "json").Stdout)
	if len(rev) != 1 || rev[0].ID != id {
		t.Fatalf("bob's reviewable list: %+v; want the follow-up of %s", rev, id)
	}
	if r := alice.run("review", id, "--approve"); r.Code != 3 || !strings.Contains(r.Stderr, "may not review") {
		t.Fatalf("alice reviewing her own follow-up: exit %d, stderr %q; want 3", r.Code, r.Stderr)
	}

	bob.ok("review", id, "--request-changes", "-m", "no incident INC-42 on record")
	waitFor(t, "the not-justified notification", 10*time.Second, func() bool { return posted("NOT JUSTIFIED") })
	// The KRL changed on the server; the host applies it on sync.
	if !sshWorks(t, sockA, host) {
		t.Fatalf("the host refused alice before it synced the KRL: the test would not show what host sync does\nsshd log:\n%s", host.Log())
	}
	operator.ok("host", "sync", "--dir", dir)
	if sshWorks(t, sockA, host) {
		t.Fatalf("sshd accepted the certificate of a break-glass grant found not justified, after host sync\nsshd log:\n%s", host.Log())
	}
	if !strings.Contains(host.Log(), "revoked by file") {
		t.Errorf("sshd did not log the refusal as a revocation:\n%s", host.Log())
	}
	certs := auditCerts(t, srv, "--user", "alice")
	if len(certs) != 1 || certs[0].RevokedAt == nil || !strings.HasSuffix(certs[0].KeyID, ":by=break-glass") {
		t.Fatalf("alice's certificates in the ledger: %+v; want one, by=break-glass, revoked", certs)
	}
	if r := alice.run("login", "prod-db"); r.Code == 0 {
		t.Errorf("login under the ended break-glass grant succeeded without a new request")
	}

	rep := jsonLines[api.Report](t, carol.ok("audit", "report", "-o", "json").Stdout)
	if len(rep) != 1 || rep[0].BreakGlass != 1 || len(rep[0].OverdueFollowUps) != 0 {
		t.Errorf("audit report: %+v; want 1 break-glass grant, none overdue", rep)
	}
	types := map[string]bool{}
	for _, ev := range jsonLines[api.Event](t, carol.ok("audit", "events", "-o", "json").Stdout) {
		if ev.RequestID == id {
			types[ev.Type] = true
		}
	}
	for _, want := range []string{ca.EventBreakGlass, ca.EventFollowUp, ca.EventRevoked, ca.EventGrantEnded} {
		if !types[want] {
			t.Errorf("no %s event for %s (events: %v)", want, id, types)
		}
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`jit_ssh_break_glass_grants_total{host_group="prod-db"} 1`, `jit_ssh_break_glass_overdue_follow_ups{host_group="prod-db"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	carol.ok("audit", "verify")
}
