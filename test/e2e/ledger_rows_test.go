package e2e

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/test/testenv"
)

// sqlEdit runs statements on the ledger file at path, as someone with the
// file (and sqlite3) would, with the server stopped.
func sqlEdit(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func sqlString(t *testing.T, path, q string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRowContext(context.Background(), q).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// TestAuditVerifyNamesEditedRows edits, in a copy of a real server's
// ledger, the rows the server decides from (not the events): `audit verify
// --ledger` exits 1 naming the table and key of the row.
func TestAuditVerifyNamesEditedRows(t *testing.T) {
	dataDir := ledgerFromRealServer(t)
	caPub := filepath.Join(testenv.TempDir(t), "ca.pub")
	if err := os.WriteFile(caPub, []byte(run(t, "", "ssh-keygen", "-y", "-f", filepath.Join(dataDir, "ca_ed25519"))), 0o600); err != nil {
		t.Fatal(err)
	}
	auditor := &user{t: t, srv: &server{URL: "http://127.0.0.1:1"}, home: testenv.TempDir(t)}
	ledger := filepath.Join(dataDir, "ledger.db")
	prod := sqlString(t, ledger, `SELECT id FROM requests WHERE host_group = 'prod-db'`)
	serialSigned, err := strconv.ParseInt(sqlString(t, ledger, `SELECT CAST(serial AS TEXT) FROM certificates`), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	serial := strconv.FormatUint(uint64(serialSigned), 10) //nolint:gosec // stored bit-for-bit

	t.Run("untouched", func(t *testing.T) {
		auditor.t = t
		r := auditor.run("audit", "verify", "--ledger", copyLedger(t, dataDir), "--checkpoint-key", caPub)
		if r.Code != 0 || !strings.Contains(r.Stdout, "Rows: 2 requests, 1 reviews and 1 certificates, each matching") {
			t.Fatalf("verify of an untouched ledger: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
	})
	tests := []struct {
		name, tamper, want string
	}{
		{"grant widened", `UPDATE requests SET duration_ns = duration_ns * 100 WHERE id = '` + prod + `'`, "FAILED at requests row " + prod + ": differs from what event row"},
		{"approver changed", `UPDATE reviews SET reviewer = 'mallory'`, "FAILED at reviews row request_id=" + prod + ": "},
		{"certificate's principals widened", `UPDATE certificates SET principals = '["staging","root"]'`, "FAILED at certificates row serial=" + serial + ": differs"},
		{"certificate's requester changed", `UPDATE certificates SET requester = 'mallory'`, "FAILED at certificates row serial=" + serial + ": differs"},
		{"certificate deleted", `DELETE FROM certificates`, "FAILED at certificates row serial=" + serial + ": recorded by event row"},
		{"certificate marked revoked", `UPDATE certificates SET revoked_at = 1, revoke_reason = 'x'`, "FAILED at certificates row serial=" + serial},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auditor.t = t
			copied := copyLedger(t, dataDir)
			sqlEdit(t, copied, tt.tamper)
			r := auditor.run("audit", "verify", "--ledger", copied, "--checkpoint-key", caPub)
			if r.Code != 1 || !strings.Contains(r.Stderr, tt.want) {
				t.Errorf("verify after %q: exit %d, stderr %q; want exit 1 and %q", tt.tamper, r.Code, r.Stderr, tt.want)
			}
			t.Logf("%s: %s", tt.name, strings.TrimSpace(r.Stderr))
		})
	}
}

// TestNoLoginUnderForgedApproval approves a pending request by editing the
// stopped server's ledger (its state and an approving review by bob): after
// a restart, `jit-ssh login` gets no certificate under it.
func TestNoLoginUnderForgedApproval(t *testing.T) {
	port := testenv.FreePort(t)
	srv := startServerOn(t, port, "", "--dev")
	sock := testenv.StartAgent(t)
	alice := srv.as(t, "alice", sock)
	req := jsonLines[api.Request](t, alice.ok("request", "create", "prod-db", "--duration", "10m", "--reason", "INC-7", "-o", "json").Stdout)[0]
	srv.Stop(t)
	sqlEdit(t, filepath.Join(srv.DataDir, "ledger.db"),
		`UPDATE requests SET state = 'approved', approved_at = updated_at, version = version + 1 WHERE id = '`+req.ID+`'`,
		`INSERT INTO reviews (request_id, reviewer, event, body, created_at, dismissed) SELECT id, 'bob', 'APPROVE', 'lgtm', updated_at, 0 FROM requests WHERE id = '`+req.ID+`'`)

	srv2 := startServerOn(t, testenv.FreePort(t), srv.DataDir, "--dev")
	alice = srv2.as(t, "alice", sock)
	r := alice.run("login", "prod-db", "--reason", "INC-7", "--timeout", "5s")
	if r.Code == 0 {
		t.Fatalf("login under the forged approval succeeded:\n%s%s", r.Stdout, r.Stderr)
	}
	if certs := auditCerts(t, srv2); len(certs) != 0 {
		t.Errorf("certificates issued under the forged approval: %+v", certs)
	}
	list := exec.Command(testenv.RequireBinary(t, "ssh-add"), "-L")
	list.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, _ := list.Output(); strings.Contains(string(out), "cert") { // exit 1: no identities
		t.Errorf("the agent holds a certificate:\n%s", out)
	}
	if !strings.Contains(srv2.Log(), "does not match the event log") {
		t.Errorf("server log does not say why:\n%s", srv2.Log())
	}
	t.Logf("login: exit %d: %s", r.Code, strings.TrimSpace(r.Stderr))
}

// forgedEvent is the canonical encoding the chain's hashes cover (the
// README's For auditors: public, so anyone can compute a row's hash).
type forgedEvent struct {
	ID        int64           `json:"id"`
	At        int64           `json:"at"`
	Actor     string          `json:"actor"`
	Type      string          `json:"type"`
	RequestID string          `json:"request_id"`
	Serial    string          `json:"serial"`
	Data      json.RawMessage `json:"data"`
	PrevHash  string          `json:"prev_hash"`
}

// TestServeRefusesForgedTail appends an event with the right link and hash
// to a stopped server's ledger, after its newest checkpoint: the server
// refuses to start, naming the row, and signs nothing over it.
func TestServeRefusesForgedTail(t *testing.T) {
	srv := startDev(t)
	srv.Stop(t) // the shutdown checkpoint covers every row
	ledger := filepath.Join(srv.DataDir, "ledger.db")
	var ev forgedEvent
	head := sqlString(t, ledger, `SELECT id || ' ' || hash FROM events ORDER BY id DESC LIMIT 1`)
	if _, err := fmt.Sscanf(head, "%d %s", &ev.ID, &ev.PrevHash); err != nil {
		t.Fatal(err)
	}
	ev.ID++
	ev.At, ev.Actor, ev.Type, ev.Serial, ev.Data = time.Now().UnixNano(), "bob", "review.submitted", "0", json.RawMessage(`{"event":"APPROVE"}`)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	sqlEdit(t, ledger, fmt.Sprintf(`INSERT INTO events (id, at, actor, type, request_id, serial, data, prev_hash, hash) VALUES (%d, %d, 'bob', 'review.submitted', '', 0, '{"event":"APPROVE"}', '%s', '%s')`,
		ev.ID, ev.At, ev.PrevHash, hex.EncodeToString(sum[:])))
	checkpoints := sqlString(t, ledger, `SELECT count(*) FROM checkpoints`)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, jitBinary(t), "serve", "--dev", "--listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--data-dir", srv.DataDir)
	cmd.Env = append(os.Environ(), "HOME="+testenv.TempDir(t))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("serve started on a ledger with a forged tail:\n%s", out)
	}
	want := fmt.Sprintf("fails verification at event row %d: follows the newest signed checkpoint", ev.ID)
	if !strings.Contains(string(out), "refusing to start") || !strings.Contains(string(out), want) {
		t.Errorf("serve output = %s, want %q", out, want)
	}
	if got := sqlString(t, ledger, `SELECT count(*) FROM checkpoints`); got != checkpoints {
		t.Errorf("checkpoints: %s after the refused start, want %s (nothing signed)", got, checkpoints)
	}
	t.Logf("serve: %s", strings.TrimSpace(string(out)))
}
