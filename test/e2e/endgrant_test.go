package e2e

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// endGrantConfig is revokeConfig, whose limits (testLimits) are off, so no
// rate limit of the defaults can decide the outcome.
var endGrantConfig = revokeConfig

// validSoon lists the serials `audit certs --valid-at` shows just after
// now (the API takes whole seconds, so the next second: after anything
// that happened until now, before any of these certificates expires).
func validSoon(t *testing.T, srv *server) []string {
	t.Helper()
	var out []string
	for _, c := range auditCerts(t, srv, "--valid-at", time.Now().Add(time.Second).UTC().Format(time.RFC3339)) {
		out = append(out, c.Serial)
	}
	slices.Sort(out)
	return out
}

// TestEndedGrantRevokesCertificates: ending a grant early by any path
// (`request cancel` by the requester, `request cancel` by an approver,
// `logout --end` from another machine) revokes its certificates at once: a
// real sshd refuses them after `host sync`, the host's KRL agrees with the
// ledger, and `audit certs --valid-at` no longer lists them. Another
// user's certificate keeps working throughout.
func TestEndedGrantRevokesCertificates(t *testing.T) {
	srv := startWithConfig(t, endGrantConfig)
	sockA, sockE, sockF := testenv.StartAgent(t), testenv.StartAgent(t), testenv.StartAgent(t)
	alice, erin, frank := srv.as(t, "alice", sockA), srv.as(t, "erin", sockE), srv.as(t, "frank", sockF)
	bob := srv.as(t, "bob", "")
	// frank on another machine: his own agent there is empty, and
	// `logout --end` there still ends the grant his laptop's agent uses.
	frankElsewhere := srv.as(t, "frank", testenv.StartAgent(t))
	operator := srv.as(t, "nobody", "")
	dir, host := hostDir(t, operator, "prod-db")
	krlPath := filepath.Join(dir, "revoked.krl")

	aliceReq, aliceSerial := grantAndLogin(t, alice, bob, "prod-db")
	erinReq, erinSerial := grantAndLogin(t, erin, bob, "prod-db")
	_, frankSerial := grantAndLogin(t, frank, bob, "prod-db")
	operator.ok("host", "sync", "--dir", dir)
	for _, s := range []struct {
		who  string
		sock string
	}{{"alice", sockA}, {"erin", sockE}, {"frank", sockF}} {
		if !sshWorks(t, s.sock, host) {
			t.Fatalf("%s cannot log in before any grant ended\nsshd log:\n%s", s.who, host.Log())
		}
	}
	all := []string{aliceSerial, erinSerial, frankSerial}
	slices.Sort(all)
	if got := validSoon(t, srv); !slices.Equal(got, all) {
		t.Fatalf("audit certs --valid-at lists %v before any grant ended, want %v", got, all)
	}

	steps := []struct {
		name   string
		end    func()
		serial string
		sock   string
	}{
		{"the requester cancels", func() { alice.ok("request", "cancel", aliceReq) }, aliceSerial, sockA},
		{"an approver cancels", func() { bob.ok("request", "cancel", erinReq) }, erinSerial, sockE},
		{"logout --end", func() {
			if r := frankElsewhere.ok("logout", "--end"); !strings.Contains(r.Stdout, "Ended grant") {
				t.Errorf("logout --end printed %q, want it to say it ended the grant", r.Stdout)
			}
		}, frankSerial, sockF},
	}
	live := slices.Clone(all)
	for _, step := range steps {
		t.Logf("%s: grant of certificate %s ends", step.name, step.serial)
		step.end()
		live = slices.DeleteFunc(live, func(s string) bool { return s == step.serial })
		if got := validSoon(t, srv); !slices.Equal(got, live) {
			t.Errorf("%s: audit certs --valid-at lists %v, want %v", step.name, got, live)
		}
		for _, c := range auditCerts(t, srv) {
			if c.Serial == step.serial && c.RevokedAt == nil {
				t.Errorf("%s: certificate %s is not revoked in the ledger", step.name, c.Serial)
			}
		}
		operator.ok("host", "sync", "--dir", dir)
		if sshWorks(t, step.sock, host) {
			t.Errorf("%s: sshd accepted certificate %s after host sync, though its grant ended\nsshd log:\n%s", step.name, step.serial, host.Log())
		}
		if list := agentList(t, step.sock); !strings.Contains(list, "serial="+step.serial) {
			t.Errorf("%s: certificate %s is no longer in the agent (%q): the test would not show that sshd refuses it", step.name, step.serial, list)
		}
		if rev, ok := checkKRLAgreesWithLedger(t, srv, krlPath); ok != len(live) || rev != len(all)-len(live) {
			t.Errorf("%s: ssh-keygen -Q: %d revoked, %d live; want %d and %d", step.name, rev, ok, len(all)-len(live), len(live))
		}
		for _, s := range []struct {
			serial string
			sock   string
		}{{erinSerial, sockE}, {frankSerial, sockF}} {
			if slices.Contains(live, s.serial) && !sshWorks(t, s.sock, host) {
				t.Errorf("%s: certificate %s of another grant stopped working\nsshd log:\n%s", step.name, s.serial, host.Log())
			}
		}
	}
	if !strings.Contains(host.Log(), "revoked by file "+krlPath) {
		t.Errorf("sshd did not log the refusals as revocations:\n%s", host.Log())
	}
}
