package sqlite_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// TestVerifyNamesTamperedBreakGlassRows edits a real break-glass row in
// SQLite, as someone with the file but not the server would to escape the
// follow-up: marking it justified, hiding that it was break glass at all
// (every break-glass column back to its default, which the digest leaves
// out for ordinary requests), or moving its due date. Audit verify names
// the row each time and GetRequest refuses it.
func TestVerifyNamesTamperedBreakGlassRows(t *testing.T) {
	const id = "r-bbbbbbbbbbbbbbbb"
	for name, tamper := range map[string]string{
		"follow-up forged as justified":    `UPDATE requests SET follow_up = 'justified', followed_up_at = updated_at WHERE id = '` + id + `'`,
		"follow-up forged as not pending":  `UPDATE requests SET follow_up = 'not_justified' WHERE id = '` + id + `'`,
		"break glass hidden":               `UPDATE requests SET break_glass = 0, follow_up = '', review_due_at = NULL, followed_up_at = NULL WHERE id = '` + id + `'`,
		"due date moved later":             `UPDATE requests SET review_due_at = review_due_at + 86400000000000 WHERE id = '` + id + `'`,
		"due date moved by one nanosecond": `UPDATE requests SET review_due_at = review_due_at + 1 WHERE id = '` + id + `'`,
	} {
		t.Run(name, func(t *testing.T) {
			signer := newSigner(t)
			db, path := openDB(t, sqlite.WithCheckpointSigner(signer))
			r := newRequest(id, "alice", "prod-db", ca.StateApproved, t0)
			r.ApprovedAt, r.Duration = t0, 30*time.Minute
			r.BreakGlass, r.FollowUp, r.ReviewDueAt = true, ca.FollowUpNeedsReview, t0.Add(24*time.Hour)
			create(t, db, r)
			if _, err := db.Checkpoint(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := verifyFile(t, path, signer); err != nil {
				t.Fatalf("Verify before the edit: %v", err)
			}
			raw := rawDB(t, path)
			exec(t, raw, tamper)
			raw.Close()
			_, err := verifyFile(t, path, signer)
			wantRowError(t, err, "requests", id, "edited outside the server")
			db2, err := reopen(t, path, signer)
			if err != nil {
				t.Fatalf("VerifyTail = %v; the edit is under the checkpoint, want nil", err)
			}
			if got, err := db2.GetRequest(t.Context(), id); !errors.Is(err, store.ErrRowMismatch) {
				t.Errorf("GetRequest = %+v, %v; want %v", got, err, store.ErrRowMismatch)
			}
		})
	}
}
