package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the tests tamper with the ledger file directly

	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// auditStory is `jit-ssh audit show -o json`.
type auditStory struct {
	Certificates []api.Certificate `json:"certificates"`
	Request      *api.Request      `json:"request"`
	Events       []api.Event       `json:"events"`
}

// TestAuditShowFromSSHDLogLine ties an sshd log line back to the request
// behind it: after a real ssh login, the KeyId and serial sshd logged each
// lead `jit-ssh audit show` to the requester, the approver, the request and
// its review. It also answers "who could reach prod-db at T" with
// --valid-at before and after a revocation.
func TestAuditShowFromSSHDLogLine(t *testing.T) {
	srv := startDev(t)
	sock := testenv.StartAgent(t)
	alice, bob, carol := srv.as(t, "alice", sock), srv.as(t, "bob", ""), srv.as(t, "carol", "")
	prodDB := hostFor(t, alice, "prod-db")

	req := jsonLines[api.Request](t, alice.ok("request", "create", "prod-db", "--duration", "20m", "--reason", "INC-42 disk full", "-o", "json").Stdout)[0]
	bob.ok("review", req.ID, "--approve", "-m", "go ahead")
	alice.ok("login", "prod-db", "--timeout", "30s")
	if out, stderr, err := testenv.SSH(t, sock, prodDB.Port, testenv.Login(t), "true"); err != nil {
		t.Fatalf("ssh into prod-db: %v %s %s", err, out, stderr)
	}
	line := prodDB.WaitForLog(t, "Accepted publickey", 5*time.Second)
	m := regexp.MustCompile(`ID "?([^" ]+)"? \(serial (\d+)\)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("sshd log line has no ID and serial: %q", line)
	}
	keyID, serial := m[1], m[2]
	t.Logf("sshd logged: ID %s (serial %s)", keyID, serial)

	for _, key := range []string{keyID, serial} {
		t.Run("audit show "+key[:min(len(key), 20)], func(t *testing.T) {
			var s auditStory
			if err := json.Unmarshal([]byte(carol.ok("audit", "show", key, "-o", "json").Stdout), &s); err != nil {
				t.Fatal(err)
			}
			if len(s.Certificates) == 0 || s.Request == nil {
				t.Fatalf("audit show %s: no certificate or request: %+v", key, s)
			}
			c := s.Certificates[0]
			if c.Serial != serial || c.KeyID != keyID || c.Requester != "alice" || !slices.Equal(c.Approvers, []string{"bob"}) ||
				c.RequestID != req.ID || c.Reason != "INC-42 disk full" {
				t.Errorf("certificate = %+v, want serial %s, key id %s, requester alice, approvers [bob], request %s with its reason", c, serial, keyID, req.ID)
			}
			if s.Request.ID != req.ID || s.Request.Requester != "alice" || len(s.Request.Reviews) != 1 ||
				s.Request.Reviews[0].Reviewer != "bob" || s.Request.Reviews[0].Event != "APPROVE" || s.Request.Reviews[0].Body != "go ahead" {
				t.Errorf("request = %+v, want alice's %s with bob's approval", s.Request, req.ID)
			}
			var types []string
			for _, ev := range s.Events {
				types = append(types, ev.Type)
			}
			want := []string{"request.created", "review.submitted", "grant.started", "certificate.issued"}
			if !slices.Equal(types, want) {
				t.Errorf("events = %v, want %v", types, want)
			}
			// The table form says the same to a human.
			out := carol.ok("audit", "show", key).Stdout
			for _, s := range []string{"Requester:", "alice", "Approved by:", "bob", req.ID, "bob APPROVE: go ahead", "INC-42 disk full"} {
				if !strings.Contains(out, s) {
					t.Errorf("audit show %s does not mention %q:\n%s", key, s, out)
				}
			}
		})
	}

	// Who could reach prod-db, and when.
	all := auditCerts(t, srv)
	if len(all) != 1 {
		t.Fatalf("ledger holds %d certificates, want 1", len(all))
	}
	issued := all[0].IssuedAt.Truncate(time.Second)
	validAt := func(at time.Time) []string {
		var out []string
		for _, c := range auditCerts(t, srv, "--group", "prod-db", "--valid-at", at.UTC().Format(time.RFC3339)) {
			out = append(out, c.Serial+":"+c.Requester+":"+strings.Join(c.Approvers, ","))
		}
		return out
	}
	if got := validAt(issued); !slices.Equal(got, []string{serial + ":alice:bob"}) {
		t.Errorf("--valid-at issue time = %v, want alice's certificate approved by bob", got)
	}
	if got := validAt(all[0].ValidAfter.Add(-time.Minute)); len(got) != 0 {
		t.Errorf("--valid-at before the certificate = %v, want none", got)
	}
	bob.ok("revoke", "--serial", serial, "--reason", "INC-42 closed")
	if got := validAt(time.Now().Add(2 * time.Second)); len(got) != 0 {
		t.Errorf("--valid-at after the revocation = %v, want none", got)
	}
	if got := validAt(issued); !slices.Equal(got, []string{serial + ":alice:bob"}) {
		t.Errorf("--valid-at before the revocation = %v, want alice's certificate still", got)
	}

	// The start-up is on the record with the configuration's hash.
	evs := jsonLines[api.Event](t, carol.ok("audit", "events", "--type", "config.loaded", "-o", "json").Stdout)
	if len(evs) != 1 || len(fmt.Sprint(evs[0].Data["config_sha256"])) != 64 {
		t.Errorf("config.loaded events = %+v, want one carrying the config's sha256", evs)
	}
}

// ledgerFromRealServer runs a dev server through a small workload, stops
// it, and returns its data dir: ledger.db, its checkpoint sidecar and the
// CA key that signed the checkpoints.
func ledgerFromRealServer(t *testing.T) string {
	t.Helper()
	srv := startDev(t)
	sock := testenv.StartAgent(t)
	alice, bob := srv.as(t, "alice", sock), srv.as(t, "bob", "")
	req := jsonLines[api.Request](t, alice.ok("request", "create", "prod-db", "--duration", "10m", "--reason", "INC-7", "-o", "json").Stdout)[0] // rows 2
	bob.ok("review", req.ID, "--approve", "-m", "ok")                                                                                            // rows 3, 4
	alice.ok("login", "staging", "--reason", "deploy", "--timeout", "30s")                                                                       // rows 5, 6, 7
	srv.Stop(t)                                                                                                                                  // checkpoint of row 7
	return srv.DataDir
}

// copyLedger copies the ledger and its sidecar into a fresh directory.
func copyLedger(t *testing.T, dataDir string) string {
	t.Helper()
	dst := filepath.Join(testenv.TempDir(t), "ledger.db")
	for _, suffix := range []string{"", "-wal", "-shm", ".checkpoints"} {
		b, err := os.ReadFile(filepath.Join(dataDir, "ledger.db"+suffix))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestAuditVerifyDetectsTampering edits a real ledger file behind the
// server's back, the way someone with the file would, and checks that the
// built binary's `audit verify --ledger` exits non-zero naming the first bad
// row; an untouched copy verifies clean.
func TestAuditVerifyDetectsTampering(t *testing.T) {
	dataDir := ledgerFromRealServer(t)
	caPub := filepath.Join(testenv.TempDir(t), "ca.pub")
	if err := os.WriteFile(caPub, []byte(run(t, "", "ssh-keygen", "-y", "-f", filepath.Join(dataDir, "ca_ed25519"))), 0o600); err != nil {
		t.Fatal(err)
	}
	auditor := &user{t: t, srv: &server{URL: "http://127.0.0.1:1"}, home: testenv.TempDir(t)} // --ledger needs no server
	verify := func(t *testing.T, ledger string, extra ...string) result {
		auditor.t = t
		return auditor.run(append([]string{"audit", "verify", "--ledger", ledger, "--checkpoint-key", caPub}, extra...)...)
	}

	t.Run("untouched", func(t *testing.T) {
		ledger := copyLedger(t, dataDir)
		r := verify(t, ledger)
		if r.Code != 0 || !strings.Contains(r.Stdout, "Ledger verified: 7 events") || !strings.Contains(r.Stdout, "newest at row 7") {
			t.Fatalf("verify of an untouched ledger: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
		var res api.VerifyResult
		if err := json.Unmarshal([]byte(verify(t, ledger, "-o", "json").Stdout), &res); err != nil {
			t.Fatal(err)
		}
		if !res.OK || res.Rows != 7 || res.LastCheckpointRow != 7 || res.UnanchoredRows != 0 || res.Checkpoints < 2 || res.SidecarCheckpoints != res.Checkpoints {
			t.Errorf("verify -o json = %+v, want ok, 7 rows, the newest checkpoint at row 7 in ledger and sidecar", res)
		}
		t.Logf("untouched: %s", strings.TrimSpace(r.Stdout))
	})

	cols := `at, actor, type, request_id, serial, data, prev_hash, hash`
	tests := []struct {
		name    string
		tamper  []string
		wantRow int
		reason  string
	}{
		{"column edited", []string{`UPDATE events SET actor = 'mallory' WHERE id = 3`}, 3, "the row was edited"},
		{"row deleted", []string{`DELETE FROM events WHERE id = 4`}, 5, "expected row 4 next"},
		{"two rows swapped", []string{
			`CREATE TEMP TABLE r AS SELECT ` + cols + ` FROM events WHERE id = 3`,
			`UPDATE events SET (` + cols + `) = (SELECT ` + cols + ` FROM events WHERE id = 4) WHERE id = 3`,
			`UPDATE events SET (` + cols + `) = (SELECT ` + cols + ` FROM r) WHERE id = 4`,
		}, 3, "link to the previous row does not match"},
		{"row inserted", []string{
			`UPDATE events SET id = id + 1000 WHERE id >= 3`,
			`UPDATE events SET id = id - 999 WHERE id >= 1000`,
			`INSERT INTO events (id, at, actor, type, request_id, serial, data, prev_hash, hash)
			 SELECT 3, at, 'mallory', 'review.submitted', request_id, 0, '{"event":"APPROVE"}', hash, hash FROM events WHERE id = 2`,
		}, 3, "the row was edited"},
		{"tail truncated", []string{`DELETE FROM events WHERE id > 5`}, 6, "ledger ends at row 5 but"},
		{"tail and the ledger's checkpoints deleted", []string{`DELETE FROM events WHERE id > 5`, `DELETE FROM checkpoints`}, 6, ".checkpoints line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ledger := copyLedger(t, dataDir)
			db, err := sql.Open("sqlite", "file:"+ledger)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := db.Conn(context.Background()) // one connection, so the TEMP table is visible
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range tt.tamper {
				if _, err := conn.ExecContext(context.Background(), q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			conn.Close()
			db.Close()

			r := verify(t, ledger)
			if r.Code != 1 {
				t.Errorf("verify exit = %d, want 1\n%s%s", r.Code, r.Stdout, r.Stderr)
			}
			want := fmt.Sprintf("FAILED at event row %d: ", tt.wantRow)
			if !strings.Contains(r.Stderr, want) || !strings.Contains(r.Stderr, tt.reason) {
				t.Errorf("verify stderr = %q, want %q and %q", r.Stderr, want, tt.reason)
			}
			t.Logf("%s: %s", tt.name, strings.TrimSpace(r.Stderr))
		})
	}
}
