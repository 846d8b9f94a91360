package sqlite_test

import (
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

const (
	reqOpen    = "r-aaaaaaaaaaaaaaaa" // approved by bob, open, certificate 1001
	reqPending = "r-pppppppppppppppp" // pending
	reqRevoked = "r-cccccccccccccccc" // approved; certificate 2001 revoked, which ended the grant
)

// rowsLedger is a ledger written through the store as the server writes
// it (with a checkpoint signer), checkpointed and closed, so that the
// rows it holds are all covered by a signed checkpoint. It returns the
// path, the signer and request reqRevoked as it was before its grant was
// ended.
func rowsLedger(t *testing.T) (string, ssh.Signer, *ca.Request) {
	t.Helper()
	ctx := t.Context()
	signer := newSigner(t)
	db, path := openDB(t, sqlite.WithCheckpointSigner(signer))
	at := t0.Add(time.Minute)
	approve := func(id string) {
		r, err := db.GetRequest(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		next := *r
		next.State, next.ApprovedAt, next.UpdatedAt, next.Version, next.Duration = ca.StateApproved, at, at, r.Version+1, 5*365*24*time.Hour
		if err := db.ApplyRequestChange(ctx, ca.RequestChange{Request: &next, PrevVersion: r.Version,
			Review: &ca.Review{Reviewer: "bob", Event: ca.ReviewApprove, Body: "ok", CreatedAt: at},
			Events: []ca.Event{
				{Time: at, Actor: "bob", Type: ca.EventReview, RequestID: id, Data: map[string]any{"event": "APPROVE"}},
				{Time: at, Actor: "alice", Type: ca.EventGrantStarted, RequestID: id, Data: map[string]any{"approvers": []string{"bob"}}},
			}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{reqOpen, reqPending, reqRevoked} {
		create(t, db, newRequest(id, "alice", "prod-db", ca.StatePending, t0))
	}
	approve(reqOpen)
	approve(reqRevoked)
	for _, c := range []*ca.Certificate{
		certFor(1001, "alice", "prod-db", reqOpen, at.Add(time.Minute), 5*time.Minute),
		certFor(2001, "alice", "prod-db", reqRevoked, at.Add(time.Minute), 5*time.Minute),
	} {
		if err := db.RecordCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	before, err := db.GetRequest(ctx, reqRevoked)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Revoke(ctx, ca.RevokeSpec{Serial: 2001}, "carol", "laptop lost", at.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path, signer, before
}

func verifyFile(t *testing.T, path string, signer ssh.Signer) (ca.VerifyResult, error) {
	t.Helper()
	ro, err := sqlite.OpenReadOnly(t.Context(), path, sqlite.WithCheckpointKeys(signer.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	return ro.Verify(t.Context())
}

// reopen opens the ledger as the server does at start: VerifyTail first.
func reopen(t *testing.T, path string, signer ssh.Signer) (*sqlite.DB, error) {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path, sqlite.WithCheckpointSigner(signer))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, err = db.VerifyTail(t.Context())
	return db, err
}

func TestRowsLedgerVerifiesClean(t *testing.T) {
	path, signer, _ := rowsLedger(t)
	res, err := verifyFile(t, path, signer)
	if err != nil {
		t.Fatalf("Verify = %v, want nil", err)
	}
	if !res.RowsChecked || res.Requests != 3 || res.Reviews != 2 || res.Certificates != 2 || res.Unanchored != 0 {
		t.Errorf("Verify = %+v, want rows checked: 3 requests, 2 reviews, 2 certificates, nothing unanchored", res)
	}
	db, err := reopen(t, path, signer)
	if err != nil {
		t.Fatalf("VerifyTail = %v, want nil", err)
	}
	for _, id := range []string{reqOpen, reqPending, reqRevoked} {
		if _, err := db.GetRequest(t.Context(), id); err != nil {
			t.Errorf("GetRequest(%s) = %v", id, err)
		}
	}
}

// TestVerifyNamesTamperedRows edits the tables the server decides from,
// with the server stopped, the way someone with the ledger file would:
// verify names the row by table and key, and the server refuses to decide
// from a forged request (the rows were all under a signed checkpoint, so
// the start-up check of the tail has nothing to say about them).
func TestVerifyNamesTamperedRows(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short (make test runs it): a tampering matrix, one ledger per case")
	}
	tests := []struct {
		name   string
		tamper []string
		table  string
		key    string
		reason string
		refuse string // request GetRequest must refuse
	}{
		{name: "certificate un-revoked", tamper: []string{`UPDATE certificates SET revoked_at = NULL, revoke_reason = NULL WHERE serial = 2001`},
			table: "certificates", key: "serial=2001", reason: "edited outside the server"},
		{name: "pending request approved with a forged review", tamper: []string{
			`UPDATE requests SET state = 'approved', approved_at = updated_at, version = version + 1 WHERE id = '` + reqPending + `'`,
			`INSERT INTO reviews (request_id, reviewer, event, body, created_at, dismissed) SELECT id, 'bob', 'APPROVE', 'lgtm', updated_at, 0 FROM requests WHERE id = '` + reqPending + `'`,
		}, table: "requests", key: reqPending, reason: "edited outside the server", refuse: reqPending},
		{name: "only a forged approving review", tamper: []string{
			`INSERT INTO reviews (request_id, reviewer, event, body, created_at, dismissed) SELECT id, 'dave', 'APPROVE', 'lgtm', updated_at, 0 FROM requests WHERE id = '` + reqPending + `'`,
		}, table: "reviews", key: "request_id=" + reqPending, reason: "inserted or deleted outside the server", refuse: reqPending},
		{name: "grant widened", tamper: []string{`UPDATE requests SET duration_ns = duration_ns * 10 WHERE id = '` + reqOpen + `'`},
			table: "requests", key: reqOpen, reason: "edited outside the server", refuse: reqOpen},
		{name: "grant marked break glass", tamper: []string{`UPDATE requests SET break_glass = 1, follow_up = 'needs_review' WHERE id = '` + reqOpen + `'`},
			table: "requests", key: reqOpen, reason: "edited outside the server", refuse: reqOpen},
		{name: "follow-up forged as justified", tamper: []string{`UPDATE requests SET follow_up = 'justified', followed_up_at = updated_at WHERE id = '` + reqOpen + `'`},
			table: "requests", key: reqOpen, reason: "edited outside the server", refuse: reqOpen},
		{name: "follow-up due date moved", tamper: []string{`UPDATE requests SET review_due_at = 1 WHERE id = '` + reqOpen + `'`},
			table: "requests", key: reqOpen, reason: "edited outside the server", refuse: reqOpen},
		{name: "approver changed", tamper: []string{`UPDATE reviews SET reviewer = 'mallory' WHERE request_id = '` + reqOpen + `'`},
			table: "reviews", key: "request_id=" + reqOpen, reason: "edited", refuse: reqOpen},
		{name: "review deleted", tamper: []string{`DELETE FROM reviews WHERE request_id = '` + reqOpen + `'`},
			table: "reviews", key: "request_id=" + reqOpen, reason: "deleted outside the server", refuse: reqOpen},
		{name: "certificate's approvers changed", tamper: []string{`UPDATE certificates SET approvers = '["mallory"]' WHERE serial = 1001`},
			table: "certificates", key: "serial=1001", reason: "edited outside the server"},
		{name: "certificate's principals widened", tamper: []string{`UPDATE certificates SET principals = '["prod-db","root"]' WHERE serial = 1001`},
			table: "certificates", key: "serial=1001", reason: "edited outside the server"},
		{name: "certificate's requester changed", tamper: []string{`UPDATE certificates SET requester = 'mallory' WHERE serial = 1001`},
			table: "certificates", key: "serial=1001", reason: "edited outside the server"},
		{name: "certificate row deleted", tamper: []string{`DELETE FROM certificates WHERE serial = 1001`},
			table: "certificates", key: "serial=1001", reason: "is missing: it was deleted outside the server"},
		{name: "certificate row inserted", tamper: []string{`INSERT INTO certificates (serial, key_id, host_group, principals, valid_after, valid_before, requester, request_id, approvers, fingerprint, ca_fingerprint, certificate, issued_at)
			SELECT 3003, key_id, host_group, principals, valid_after, valid_before, requester, request_id, approvers, fingerprint, ca_fingerprint, certificate, issued_at FROM certificates WHERE serial = 1001`},
			table: "certificates", key: "serial=3003", reason: "not recorded in the event log"},
		{name: "request row inserted", tamper: []string{`INSERT INTO requests (id, host_group, requester, state, reason, duration_ns, created_at, updated_at, approved_at, version)
			SELECT 'r-mmmmmmmmmmmmmmmm', host_group, 'mallory', state, reason, duration_ns, created_at, updated_at, approved_at, version FROM requests WHERE id = '` + reqOpen + `'`},
			table: "requests", key: "r-mmmmmmmmmmmmmmmm", reason: "not recorded in the event log", refuse: "r-mmmmmmmmmmmmmmmm"},
		{name: "request row deleted", tamper: []string{`DELETE FROM requests WHERE id = '` + reqPending + `'`},
			table: "requests", key: reqPending, reason: "is missing: it was deleted outside the server"},
		{name: "review of a request that does not exist", tamper: []string{`PRAGMA foreign_keys = OFF`,
			`INSERT INTO reviews (request_id, reviewer, event, body, created_at, dismissed) VALUES ('r-zzzzzzzzzzzzzzzz', 'bob', 'APPROVE', '', 1, 0)`},
			table: "reviews", key: "id=3", reason: "which is not in the ledger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, signer, _ := rowsLedger(t)
			raw := rawDB(t, path)
			for _, q := range tt.tamper {
				exec(t, raw, q)
			}
			raw.Close()
			_, err := verifyFile(t, path, signer)
			wantRowError(t, err, tt.table, tt.key, tt.reason)
			if tt.refuse == "" {
				return
			}
			db, err := reopen(t, path, signer)
			if err != nil {
				t.Fatalf("VerifyTail = %v; the tamper is under the checkpoint, want nil", err)
			}
			if r, err := db.GetRequest(t.Context(), tt.refuse); !errors.Is(err, store.ErrRowMismatch) {
				t.Errorf("GetRequest(%s) = %+v, %v; want %v", tt.refuse, r, err, store.ErrRowMismatch)
			}
		})
	}
}

func wantRowError(t *testing.T, err error, table, key, reason string) {
	t.Helper()
	var ce *store.ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("Verify = %v, want a *store.ChainError naming %s row %s", err, table, key)
	}
	if ce.Table != table || ce.Key != key || !strings.Contains(ce.Reason, reason) {
		t.Errorf("ChainError = %s row %s: %q; want %s row %s: %q", ce.Table, ce.Key, ce.Reason, table, key, reason)
	}
}

// TestRequestRevertedToAnOlderState puts back, column for column, the row
// of a grant as it was before a revocation ended it: the row then matches
// an older event exactly, but not the newest one that records it.
func TestRequestRevertedToAnOlderState(t *testing.T) {
	path, signer, before := rowsLedger(t)
	raw := rawDB(t, path)
	exec(t, raw, `UPDATE requests SET ended_at = NULL, updated_at = ?, version = ? WHERE id = ?`, before.UpdatedAt.UnixNano(), before.Version, reqRevoked)
	exec(t, raw, `UPDATE certificates SET revoked_at = NULL, revoke_reason = NULL WHERE serial = 2001`)
	raw.Close()
	_, err := verifyFile(t, path, signer)
	wantRowError(t, err, "requests", reqRevoked, "edited outside the server")
	db, err := reopen(t, path, signer)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := db.GetRequest(t.Context(), reqRevoked); !errors.Is(err, store.ErrRowMismatch) {
		t.Errorf("GetRequest of the reverted grant = %+v, %v; want %v", r, err, store.ErrRowMismatch)
	}
}

// TestForgedTail appends events after the newest checkpoint with the right
// link and hash, with the server stopped: the next start must refuse to
// sign over them or serve, naming the first one.
func TestForgedTail(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short (make test runs it): a tampering matrix, one ledger per case")
	}
	forged := func(t *testing.T, raw *sql.DB, ev ca.Event, bind bool) int64 {
		t.Helper()
		id, err := sqlite.ForgeEvent(t.Context(), raw, ev, bind)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	t.Run("an event appended", func(t *testing.T) {
		path, signer, _ := rowsLedger(t)
		raw := rawDB(t, path)
		row := forged(t, raw, ca.Event{Time: t0, Actor: "jit-ssh", Type: ca.EventConfigLoaded}, false)
		raw.Close()
		if _, err := verifyFile(t, path, signer); err != nil {
			t.Logf("offline verify: %v", err) // the chain is right: only the server's MAC tells
		}
		db, err := reopen(t, path, signer)
		wantChainError(t, err, row, "carries no MAC of this server: it was not written by this server")
		if cp, err := db.Checkpoint(t.Context()); err == nil {
			t.Errorf("Checkpoint over the forged tail = %+v, want a refusal", cp)
		}
	})
	t.Run("a pending request approved, its events forged to match", func(t *testing.T) {
		path, signer, _ := rowsLedger(t)
		raw := rawDB(t, path)
		exec(t, raw, `UPDATE requests SET state = 'approved', approved_at = updated_at, version = version + 1 WHERE id = ?`, reqPending)
		exec(t, raw, `INSERT INTO reviews (request_id, reviewer, event, body, created_at, dismissed) SELECT id, 'bob', 'APPROVE', 'lgtm', updated_at, 0 FROM requests WHERE id = ?`, reqPending)
		row := forged(t, raw, ca.Event{Time: t0, Actor: "bob", Type: ca.EventGrantStarted, RequestID: reqPending}, true)
		raw.Close()
		res, err := verifyFile(t, path, signer)
		if err != nil || res.Unanchored != 1 {
			t.Errorf("offline verify = %+v, %v; want clean with 1 unanchored row (the limit of what an auditor without the key can see)", res, err)
		}
		_, err = reopen(t, path, signer)
		wantChainError(t, err, row, "carries no MAC of this server")
	})
	t.Run("a MAC copied from another row", func(t *testing.T) {
		path, signer, _ := rowsLedger(t)
		raw := rawDB(t, path)
		row := forged(t, raw, ca.Event{Time: t0, Actor: "jit-ssh", Type: ca.EventConfigLoaded}, false)
		exec(t, raw, `UPDATE events SET mac = (SELECT mac FROM events WHERE id = ?) WHERE id = ?`, row-1, row)
		raw.Close()
		_, err := reopen(t, path, signer)
		wantChainError(t, err, row, "carries a MAC this server did not make")
	})
	t.Run("a tail row's data edited and rehashed", func(t *testing.T) {
		path, signer, _ := rowsLedger(t)
		db, err := reopen(t, path, signer)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.RecordEvent(t.Context(), ca.Event{Actor: "jit-ssh", Type: ca.EventConfigLoaded}); err != nil {
			t.Fatal(err)
		}
		db.Close() // a crash: the last row is past the newest checkpoint
		raw := rawDB(t, path)
		var row int64
		if err := raw.QueryRow(`SELECT max(id) FROM events`).Scan(&row); err != nil {
			t.Fatal(err)
		}
		exec(t, raw, `UPDATE events SET actor = 'mallory' WHERE id = ?`, row)
		if err := sqlite.RehashChain(t.Context(), raw); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		_, err = reopen(t, path, signer)
		// The hash is right again, but the MAC was made over the old one.
		wantChainError(t, err, row, "carries a MAC this server did not make")
	})
	t.Run("the server's own tail after a crash is accepted", func(t *testing.T) {
		path, signer, _ := rowsLedger(t)
		db, err := reopen(t, path, signer)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.RecordCertificate(t.Context(), certFor(1002, "alice", "prod-db", reqOpen, t0.Add(3*time.Minute), 5*time.Minute)); err != nil {
			t.Fatal(err)
		}
		db.Close() // no checkpoint: as after kill -9
		db, err = reopen(t, path, signer)
		if err != nil {
			t.Fatalf("VerifyTail after a crash = %v, want nil", err)
		}
		if cp, err := db.Checkpoint(t.Context()); err != nil || cp == nil {
			t.Errorf("Checkpoint = %+v, %v; want one", cp, err)
		}
	})
	t.Run("a certificate row changed that a tail event records", func(t *testing.T) {
		path, signer, _ := rowsLedger(t)
		db, err := reopen(t, path, signer)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.RecordCertificate(t.Context(), certFor(1002, "alice", "prod-db", reqOpen, t0.Add(3*time.Minute), 5*time.Minute)); err != nil {
			t.Fatal(err)
		}
		db.Close()
		raw := rawDB(t, path)
		exec(t, raw, `UPDATE certificates SET principals = '["root"]' WHERE serial = 1002`)
		raw.Close()
		_, err = reopen(t, path, signer)
		var ce *store.ChainError
		if !errors.As(err, &ce) || ce.Table != "certificates" || ce.Key != "serial=1002" {
			t.Errorf("VerifyTail = %v, want a ChainError naming certificates row serial=1002", err)
		}
	})
}

// TestMigrationBindsExistingRows upgrades a ledger written before row
// bindings (schema 0004, events without digests or MACs): migration 0005
// binds its rows as they are, the server starts on it, and an edit after
// the upgrade is named.
func TestMigrationBindsExistingRows(t *testing.T) {
	ctx := t.Context()
	db, path := openDB(t)
	db.Close()
	raw := rawDB(t, path)
	for _, q := range []string{ // back to schema 0004
		`DROP INDEX events_binding_request`, `DROP INDEX events_by_serial`, `DROP INDEX events_revoked`, `ALTER TABLE events DROP COLUMN mac`, `DROP TABLE certificate_baseline`,
		`DELETE FROM schema_migrations WHERE version = 5`,
		`INSERT INTO requests (id, host_group, requester, state, reason, duration_ns, created_at, updated_at, approved_at, version)
		 VALUES ('` + reqOpen + `', 'prod-db', 'alice', 'approved', 'INC-1', 157680000000000000, 1, 2, 2, 2)`,
		`INSERT INTO reviews (request_id, reviewer, event, body, created_at, dismissed) VALUES ('` + reqOpen + `', 'bob', 'APPROVE', 'ok', 2, 0)`,
		`INSERT INTO certificates (serial, key_id, host_group, principals, valid_after, valid_before, requester, request_id, approvers, fingerprint, ca_fingerprint, certificate, issued_at)
		 VALUES (1001, 'k', 'prod-db', '["prod-db"]', 1, 9000000000000000000, 'alice', '` + reqOpen + `', '["bob"]', 'SHA256:s', 'SHA256:ca', 'cert', 3)`,
	} {
		exec(t, raw, q)
	}
	for _, ev := range []ca.Event{
		{Time: t0, Actor: "alice", Type: ca.EventRequestCreated, RequestID: reqOpen},
		{Time: t0, Actor: "bob", Type: ca.EventGrantStarted, RequestID: reqOpen},
		{Time: t0, Actor: "alice", Type: ca.EventCertIssued, RequestID: reqOpen, Serial: 1001},
	} {
		if _, err := sqlite.ForgeEvent(ctx, raw, ev, false); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()

	signer := newSigner(t)
	db, err := reopen(t, path, signer) // migrates, then VerifyTail
	if err != nil {
		t.Fatalf("VerifyTail after the upgrade = %v, want nil (the upgrade vouches for the rows it found)", err)
	}
	if _, err := db.GetRequest(ctx, reqOpen); err != nil {
		t.Errorf("GetRequest of a request from before the upgrade = %v", err)
	}
	db.Close()
	res, err := verifyFile(t, path, signer)
	if err != nil || !res.RowsChecked || res.Requests != 1 || res.Certificates != 1 {
		t.Fatalf("Verify after the upgrade = %+v, %v; want clean, 1 request and 1 certificate checked", res, err)
	}

	for _, tt := range []struct {
		tamper, table, key string
	}{
		{`UPDATE certificates SET principals = '["root"]'`, "certificates", "serial=1001"},
		{`UPDATE certificate_baseline SET sha256 = (SELECT sha256 FROM certificate_baseline)`, "", ""}, // no change: clean
		{`DELETE FROM certificate_baseline`, "certificate_baseline", "*"},
		{`UPDATE requests SET duration_ns = duration_ns + 1`, "requests", reqOpen},
	} {
		t.Run(tt.tamper, func(t *testing.T) {
			cp := filepath.Join(t.TempDir(), "ledger.db")
			copyFile(t, path, cp)
			raw := rawDB(t, cp)
			exec(t, raw, tt.tamper)
			raw.Close()
			_, err := verifyFile(t, cp, signer)
			if tt.table == "" {
				if err != nil {
					t.Errorf("Verify = %v, want nil", err)
				}
				return
			}
			wantRowError(t, err, tt.table, tt.key, "")
		})
	}
}

// TestKRLRefusesDroppedRevocations un-revokes, expires or deletes a revoked
// certificate in the stopped server's ledger: the KRL is not built without
// it (the revocation is under the checkpoint, so only this check sees it
// while serving).
func TestKRLRefusesDroppedRevocations(t *testing.T) {
	path, signer, _ := rowsLedger(t)
	db, err := reopen(t, path, signer)
	if err != nil {
		t.Fatal(err)
	}
	got, version, err := db.RevokedSerials(t.Context(), t0)
	if err != nil || len(got["SHA256:ca"]) != 1 || got["SHA256:ca"][0] != 2001 || version == 0 {
		t.Fatalf("RevokedSerials of the untouched ledger = %v, %d, %v; want serial 2001", got, version, err)
	}
	db.Close()
	for _, tamper := range []string{
		`UPDATE certificates SET revoked_at = NULL, revoke_reason = NULL WHERE serial = 2001`,
		`UPDATE certificates SET valid_before = 1 WHERE serial = 2001`,
		`DELETE FROM certificates WHERE serial = 2001`,
	} {
		t.Run(tamper, func(t *testing.T) {
			cp := filepath.Join(t.TempDir(), "ledger.db")
			copyFile(t, path, cp)
			copyFile(t, path+sqlite.SidecarSuffix, cp+sqlite.SidecarSuffix)
			raw := rawDB(t, cp)
			exec(t, raw, tamper)
			raw.Close()
			db, err := reopen(t, cp, signer)
			if err != nil {
				t.Fatalf("VerifyTail = %v; the tamper is under the checkpoint", err)
			}
			if got, _, err := db.RevokedSerials(t.Context(), t0); !errors.Is(err, store.ErrRowMismatch) || !strings.Contains(err.Error(), "serial=2001") {
				t.Errorf("RevokedSerials = %v, %v; want %v naming serial=2001", got, err, store.ErrRowMismatch)
			}
		})
	}
}

// TestStartRefusesAnEditUnderACheckpoint: the reads the server decides from
// find a request's newest binding event, and the revocations the KRL must
// hold, by the events' columns. Someone who reverts an ended grant and
// un-revokes its certificate, then hides the newer events by editing their
// type or data (rows a signed checkpoint already covers, so the tail check
// alone would not read them), must not get the grant reopened or the serial
// dropped from the KRL: the server refuses to start, naming the edited row.
func TestStartRefusesAnEditUnderACheckpoint(t *testing.T) {
	path, signer, before := rowsLedger(t)
	raw := rawDB(t, path)
	exec(t, raw, `UPDATE requests SET ended_at = NULL, updated_at = ?, version = ? WHERE id = ?`, before.UpdatedAt.UnixNano(), before.Version, reqRevoked)
	exec(t, raw, `UPDATE certificates SET revoked_at = NULL, revoke_reason = NULL WHERE serial = 2001`)
	var edited int64
	if err := raw.QueryRow(`SELECT id FROM events WHERE request_id = ? AND type = 'grant.ended'`, reqRevoked).Scan(&edited); err != nil {
		t.Fatal(err)
	}
	var revoked int64
	if err := raw.QueryRow(`SELECT id FROM events WHERE serial = 2001 AND type = 'certificate.revoked'`).Scan(&revoked); err != nil {
		t.Fatal(err)
	}
	exec(t, raw, `UPDATE events SET data = replace(data, '"request_sha256":', '"request_sha256x":') WHERE id = ?`, edited)
	exec(t, raw, `UPDATE events SET type = 'certificate.revokedx' WHERE id = ?`, revoked)
	raw.Close()
	if _, err := reopen(t, path, signer); err == nil {
		t.Fatal("the server starts on a ledger whose events under the checkpoint were edited to hide a grant's end and a revocation")
	} else if ce := (*store.ChainError)(nil); !errors.As(err, &ce) || ce.Row != min(edited, revoked) {
		t.Errorf("start-up refusal = %v, want a ChainError naming event row %d, the first edited", err, min(edited, revoked))
	}
}

// TestCheckpointKeyRotation: after a clean stop, a server with a new
// checkpoint key (the old one still trusted for the old checkpoints) starts
// and decides from the requests whose newest events carry the old key's
// MAC; the rows it writes from then on carry, and must carry, the new one.
func TestCheckpointKeyRotation(t *testing.T) {
	path, oldSigner, _ := rowsLedger(t)
	db, err := sqlite.Open(t.Context(), path, sqlite.WithCheckpointSigner(newSigner(t)), sqlite.WithCheckpointKeys(oldSigner.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.VerifyTail(t.Context()); err != nil {
		t.Fatalf("start-up check after a clean key rotation: %v", err)
	}
	for _, id := range []string{reqOpen, reqPending, reqRevoked} {
		if _, err := db.GetRequest(t.Context(), id); err != nil {
			t.Errorf("GetRequest(%s) after a clean checkpoint-key rotation: %v", id, err)
		}
	}
	if _, err := db.Verify(t.Context()); err != nil {
		t.Errorf("Verify after the rotation: %v", err)
	}
	// A revocation checks the certificate row against its binding event,
	// which carries the old key's MAC: it must count as a match (a
	// mismatch would revoke with row_mismatch and fail Verify).
	if _, err := db.Revoke(t.Context(), ca.RevokeSpec{Serial: 1001}, "carol", "rotation check", t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Verify(t.Context()); err != nil {
		t.Errorf("Verify after a revocation under the new key: %v", err)
	}
}

// TestRevokeRequestCancelsAPendingOne: revoking a request that is still
// pending cancels it (bound to the chain like any change), so it cannot be
// approved after its access was revoked.
func TestRevokeRequestCancelsAPendingOne(t *testing.T) {
	path, signer, _ := rowsLedger(t)
	db, err := reopen(t, path, signer)
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Revoke(t.Context(), ca.RevokeSpec{RequestID: reqPending}, "carol", "incident", t0.Add(4*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Cancelled, []string{reqPending}) {
		t.Errorf("Revoke cancelled %v, want [%s]", res.Cancelled, reqPending)
	}
	r, err := db.GetRequest(t.Context(), reqPending)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != ca.StateCancelled {
		t.Errorf("revoked pending request is %s, want cancelled", r.State)
	}
	if _, err := db.Verify(t.Context()); err != nil {
		t.Errorf("Verify after the cancellation: %v", err)
	}
	// Revoking an approved request cancels nothing.
	if res, err := db.Revoke(t.Context(), ca.RevokeSpec{RequestID: reqOpen}, "carol", "incident", t0.Add(4*time.Minute)); err != nil || len(res.Cancelled) != 0 {
		t.Errorf("revoking an open grant: %+v, %v; want nothing cancelled", res, err)
	}
}
