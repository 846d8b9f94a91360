package sqlite_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// The server's own writes must not bind a row edited or inserted outside
// it: a request change is refused, a revocation still revokes but leaves
// the row named by audit verify.

func TestApplyRequestChangeRefusesForgedRow(t *testing.T) {
	for name, q := range map[string]string{
		"request edited": `UPDATE requests SET reason = 'forged reason' WHERE id = '` + reqPending + `'`,
		"review forged": `INSERT INTO reviews (request_id, reviewer, event, body, created_at, dismissed)
			VALUES ('` + reqPending + `', 'dave', 'APPROVE', 'forged', 1, 0)`,
	} {
		t.Run(name, func(t *testing.T) {
			path, signer, _ := rowsLedger(t)
			raw := rawDB(t, path)
			exec(t, raw, q)
			raw.Close()
			db, err := reopen(t, path, signer)
			if err != nil {
				t.Fatalf("VerifyTail: %v", err)
			}
			rs, err := db.ListRequests(t.Context(), ca.RequestFilter{States: []string{ca.StatePending}})
			if err != nil || len(rs) != 1 {
				t.Fatalf("ListRequests: %v, %d", err, len(rs))
			}
			r := rs[0]
			next := *r
			next.State, next.UpdatedAt, next.Version = ca.StateExpired, t0.Add(time.Hour), r.Version+1
			err = db.ApplyRequestChange(t.Context(), ca.RequestChange{Request: &next, PrevVersion: r.Version, Events: []ca.Event{{
				Time: next.UpdatedAt, Actor: ca.SystemActor, Type: ca.EventRequestExpired, RequestID: r.ID}}})
			if !errors.Is(err, store.ErrRowMismatch) {
				t.Fatalf("ApplyRequestChange on a forged row: got %v, want ErrRowMismatch", err)
			}
			if _, err := db.Verify(t.Context()); err == nil {
				t.Error("after the refused change the forged row verifies clean")
			}
		})
	}
}

func TestRevokeDoesNotBindForgedCertificate(t *testing.T) {
	path, signer, _ := rowsLedger(t)
	raw := rawDB(t, path)
	exec(t, raw, `INSERT INTO certificates (serial, key_id, host_group, principals, valid_after, valid_before, requester, request_id, approvers, fingerprint, ca_fingerprint, certificate, issued_at)
		SELECT 7777, key_id, host_group, '["prod-db","root"]', valid_after, valid_before, requester, request_id, '["mallory"]', fingerprint, ca_fingerprint, certificate, issued_at FROM certificates WHERE serial = 1001`)
	raw.Close()
	db, err := reopen(t, path, signer)
	if err != nil {
		t.Fatalf("VerifyTail: %v", err)
	}
	out, err := db.Revoke(t.Context(), ca.RevokeSpec{User: "alice"}, "carol", "incident", t0.Add(4*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(out.Serials); got != 2 { // 1001 and the forged 7777: never skip a revocation
		t.Errorf("revoked %v, want 1001 and 7777", out.Serials)
	}
	_, err = db.Verify(t.Context())
	var ce *store.ChainError
	if !errors.As(err, &ce) || ce.Table != "certificates" || ce.Key != "serial=7777" {
		t.Fatalf("Verify after revoking the forged row: got %v, want certificates serial=7777 named", err)
	}
	got, _, err := db.RevokedSerials(t.Context(), t0)
	if err != nil {
		t.Fatalf("RevokedSerials: %v", err)
	}
	if !containsSerial(got, 7777) || !containsSerial(got, 1001) {
		t.Errorf("KRL sets %v, want 1001 and 7777 listed", got)
	}
	// The server restarts: the revocation it recorded as mismatching does
	// not stop it, and verify still names the row.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := reopen(t, path, signer); err != nil {
		t.Fatalf("VerifyTail after the fail-safe revocation: %v", err)
	}
	if _, err := verifyFile(t, path, signer); err == nil || !strings.Contains(err.Error(), "7777") {
		t.Errorf("Verify after restart: got %v, want serial 7777 named", err)
	}
}

func TestRevokeDoesNotBindEditedCAFingerprint(t *testing.T) {
	path, signer, _ := rowsLedger(t)
	raw := rawDB(t, path)
	exec(t, raw, `UPDATE certificates SET ca_fingerprint = 'SHA256:elsewhere' WHERE serial = 1001`)
	raw.Close()
	db, err := reopen(t, path, signer)
	if err != nil {
		t.Fatalf("VerifyTail: %v", err)
	}
	if _, err := db.Revoke(t.Context(), ca.RevokeSpec{Serial: 1001}, "carol", "incident", t0.Add(4*time.Minute)); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if got, _, err := db.RevokedSerials(t.Context(), t0); err != nil || !containsSerial(got, 1001) {
		t.Errorf("RevokedSerials: %v, %v; want 1001 listed", got, err)
	}
	_, err = db.Verify(t.Context())
	var ce *store.ChainError
	if !errors.As(err, &ce) || ce.Key != "serial=1001" {
		t.Errorf("Verify after revoking the edited row: got %v, want certificates serial=1001 named", err)
	}
}

func TestRevokeEndsForgedGrantWithoutBindingIt(t *testing.T) {
	path, signer, _ := rowsLedger(t)
	raw := rawDB(t, path)
	exec(t, raw, `UPDATE requests SET reason = 'forged reason' WHERE id = '`+reqOpen+`'`)
	raw.Close()
	db, err := reopen(t, path, signer)
	if err != nil {
		t.Fatalf("VerifyTail: %v", err)
	}
	out, err := db.Revoke(t.Context(), ca.RevokeSpec{RequestID: reqOpen}, "carol", "incident", t0.Add(4*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.EndedGrants) != 1 || len(out.Serials) != 1 {
		t.Errorf("Revoke: %+v, want the grant ended and 1001 revoked", out)
	}
	_, err = db.Verify(t.Context())
	var ce *store.ChainError
	if !errors.As(err, &ce) || ce.Table != "requests" || ce.Key != reqOpen {
		t.Errorf("Verify: got %v, want requests %s named", err, reqOpen)
	}
	if _, err := db.GetRequest(t.Context(), reqOpen); !errors.Is(err, store.ErrRowMismatch) {
		t.Errorf("GetRequest: got %v, want ErrRowMismatch", err)
	}
}

func containsSerial(sets map[string][]uint64, s uint64) bool {
	for _, ss := range sets {
		for _, x := range ss {
			if x == s {
				return true
			}
		}
	}
	return false
}

// TestRevokedSerialsSeesUnrevokeWhileRunning: the writer checks the
// revocations once per chain head, but a row un-revoked (or deleted) behind
// its back after that, with no new event, still fails the next KRL.
func TestRevokedSerialsSeesUnrevokeWhileRunning(t *testing.T) {
	for name, q := range map[string]string{
		"un-revoked": `UPDATE certificates SET revoked_at = NULL, revoke_reason = NULL WHERE serial = 2001`,
		"deleted":    `DELETE FROM certificates WHERE serial = 2001`,
		"expired":    `UPDATE certificates SET valid_before = 1 WHERE serial = 2001`,
	} {
		t.Run(name, func(t *testing.T) {
			path, signer, _ := rowsLedger(t)
			db, err := reopen(t, path, signer)
			if err != nil {
				t.Fatalf("VerifyTail: %v", err)
			}
			if got, _, err := db.RevokedSerials(t.Context(), t0); err != nil || !containsSerial(got, 2001) {
				t.Fatalf("RevokedSerials: %v, %v; want 2001", got, err)
			}
			raw := rawDB(t, path)
			exec(t, raw, q)
			raw.Close()
			if got, _, err := db.RevokedSerials(t.Context(), t0); !errors.Is(err, store.ErrRowMismatch) {
				t.Errorf("RevokedSerials after the row was %s: %v, %v; want ErrRowMismatch", name, got, err)
			}
		})
	}
}
