package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// Crash consistency: a certificate is in the ledger before it leaves the
// server, so killing the server (SIGKILL, no shutdown) while many clients
// are being issued certificates must never leave a client holding a
// certificate the ledger does not know.
const (
	crashClients = 50
	crashRounds  = 5
)

// crashReceived is a certificate a client got, kept client side.
type crashReceived struct {
	user   string
	pub    string // the client's public key, authorized_keys form
	cert   api.Certificate
	parsed *ssh.Certificate
}

// TestCrashConsistency runs crashRounds rounds of: start the server on the
// same data dir, verify everything received so far against the ledger,
// then load it with crashClients concurrent clients and kill -9 it mid-load.
func TestCrashConsistency(t *testing.T) {
	dir := testenv.TempDir(t)
	data := filepath.Join(dir, "data")
	var users strings.Builder
	for i := range crashClients {
		fmt.Fprintf(&users, "      u%02d: {token: crash-u%02d, teams: [backend]}\n", i, i)
	}
	cfg := filepath.Join(dir, "config.yaml")
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
signer:
  type: file
  file: {key_file: %s/ca_ed25519}
identity:
  type: static
  static:
    users:
      carol: {token: dev-carol, teams: [security]}
%s%s`, data, data, users.String(), faultGroups)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	var received []crashReceived
	grants := map[string]string{} // user -> request ID
	totalKilled := 0
	for round := 1; round <= crashRounds+1; round++ {
		srv := startServer(t, "--config", cfg)
		srv.DataDir = data
		crashCheck(t, srv, round, received)
		if round > crashRounds {
			break
		}
		if len(grants) == 0 {
			for i := range crashClients {
				u := fmt.Sprintf("u%02d", i)
				grants[u] = faultGrant(t, faultClient(t, srv, "crash-"+u))
			}
		}
		got, inFlight := crashLoad(t, srv, round, grants)
		received = append(received, got...)
		totalKilled += inFlight
	}
	t.Logf("crash rounds: %d, clients per round: %d, certificates received: %d, all in the ledger; clients cut off mid-request by the kills: %d",
		crashRounds, crashClients, len(received), totalKilled)
}

// crashLoad runs the clients against srv and kills it with SIGKILL once
// the round has issued a random number of certificates. It returns what
// the clients received and how many requests the kill cut off.
func crashLoad(t *testing.T, srv *server, round int, grants map[string]string) ([]crashReceived, int) {
	t.Helper()
	killAt := int64(60 + mrand.IntN(90))
	var issued, cutOff, refused atomic.Int64
	var killOnce sync.Once
	kill := func() {
		killOnce.Do(func() {
			if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Errorf("round %d: kill -9: %v", round, err)
			}
		})
	}
	var mu sync.Mutex
	var got []crashReceived
	var apiErrs []string
	var wg sync.WaitGroup
	for user, reqID := range grants {
		c := faultClient(t, srv, "crash-"+user)
		wg.Go(func() {
			for {
				pub, err := crashKey()
				if err != nil {
					t.Errorf("round %d: %v", round, err)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				cert, err := c.IssueCertificate(ctx, reqID, pub)
				cancel()
				var ae *api.Error
				switch {
				case err == nil:
					parsed, perr := crashParse(cert, pub)
					if perr != nil {
						t.Errorf("round %d: %s: %v", round, user, perr)
						return
					}
					mu.Lock()
					got = append(got, crashReceived{user: user, pub: pub, cert: *cert, parsed: parsed})
					mu.Unlock()
					if issued.Add(1) == killAt {
						kill()
					}
				case errors.As(err, &ae) && ae.Status == 429:
					refused.Add(1) // rate limited: no certificate, try again shortly
					time.Sleep(50 * time.Millisecond)
				case errors.As(err, &ae):
					mu.Lock()
					apiErrs = append(apiErrs, fmt.Sprintf("%s: %d %s: %s", user, ae.Status, ae.Code, ae.Message))
					mu.Unlock()
					return
				default:
					// The server is gone: a connection refused, reset or
					// cut short. Whatever was in flight may or may not be
					// in the ledger; the client has no certificate.
					cutOff.Add(1)
					return
				}
			}
		})
	}
	wg.Wait()
	kill() // in case every client stopped before the threshold
	pid := srv.cmd.Process.Pid
	waitFor(t, fmt.Sprintf("round %d: the killed server to be reaped", round), 10*time.Second, func() bool {
		return syscall.Kill(pid, 0) != nil
	})
	if len(apiErrs) > 0 {
		t.Errorf("round %d: %d clients got error answers under load, e.g. %s", round, len(apiErrs), apiErrs[0])
	}
	if issued.Load() < killAt {
		t.Errorf("round %d: the server was killed after %d certificates, before the load reached %d", round, issued.Load(), killAt)
	}
	t.Logf("round %d: killed after %d certificates (threshold %d); %d clients cut off mid-request, %d rate limited", round, issued.Load(), killAt, cutOff.Load(), refused.Load())
	return got, int(cutOff.Load())
}

// crashKey returns a fresh ed25519 public key in authorized_keys form.
func crashKey() (string, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))), nil
}

// crashParse checks that what the client received is a certificate for its
// own key, with the serial the JSON says.
func crashParse(c *api.Certificate, pub string) (*ssh.Certificate, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(c.Certificate))
	if err != nil {
		return nil, fmt.Errorf("certificate %s does not parse: %w", c.Serial, err)
	}
	cert, ok := k.(*ssh.Certificate)
	if !ok {
		return nil, fmt.Errorf("certificate %s is a %s", c.Serial, k.Type())
	}
	mine, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pub))
	if err != nil {
		return nil, err
	}
	if string(cert.Key.Marshal()) != string(mine.Marshal()) {
		return nil, fmt.Errorf("certificate %s is for another key", c.Serial)
	}
	if strconv.FormatUint(cert.Serial, 10) != c.Serial {
		return nil, fmt.Errorf("certificate serial %d, JSON says %s", cert.Serial, c.Serial)
	}
	return cert, nil
}

// crashCheck verifies, on a freshly restarted server, that every
// certificate received so far is in the ledger with the same serial, key
// and bytes, that no serial repeats, and that the ledger's chain verifies.
func crashCheck(t *testing.T, srv *server, round int, received []crashReceived) {
	t.Helper()
	ledger := map[string]api.Certificate{}
	for _, c := range auditCerts(t, srv) {
		if _, dup := ledger[c.Serial]; dup {
			t.Errorf("round %d: serial %s appears twice in the ledger", round, c.Serial)
		}
		ledger[c.Serial] = c
	}
	seen := map[string]bool{}
	missing := 0
	for _, r := range received {
		if seen[r.cert.Serial] {
			t.Errorf("round %d: serial %s was received twice", round, r.cert.Serial)
		}
		seen[r.cert.Serial] = true
		l, ok := ledger[r.cert.Serial]
		switch {
		case !ok:
			missing++
			t.Errorf("round %d: %s received certificate %s, which is not in the ledger", round, r.user, r.cert.Serial)
		case l.Certificate != r.cert.Certificate:
			t.Errorf("round %d: certificate %s in the ledger differs from what %s received", round, r.cert.Serial, r.user)
		case l.Fingerprint != ca.Fingerprint(r.parsed.Key) || l.Requester != r.user:
			t.Errorf("round %d: certificate %s in the ledger is for %s/%s, %s received it for %s", round, r.cert.Serial,
				l.Requester, l.Fingerprint, r.user, ca.Fingerprint(r.parsed.Key))
		}
	}
	carol := srv.as(t, "carol", "")
	v := carol.run("audit", "verify")
	if v.Code != 0 {
		t.Errorf("round %d: audit verify after the crash: exit %d\n%s%s", round, v.Code, v.Stdout, v.Stderr)
	}
	if round > 1 {
		t.Logf("after crash %d: %d certificates received by clients, %d in the ledger (%d issued but cut off before reaching a client), %d missing; audit verify: %s",
			round-1, len(received), len(ledger), len(ledger)-len(received), missing, strings.TrimSpace(v.Stdout+v.Stderr))
	}
}
