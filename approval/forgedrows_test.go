package approval_test

import (
	"database/sql"
	"errors"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// The sweepers read requests with ListRequests and write them back: a row
// forged outside the server must not come out of that write bound (clean
// in audit verify), and one forged row must not stop a sweep. List reads
// the same rows and must leave them as they are.
func TestSweepersDoNotBindForgedRows(t *testing.T) {
	for _, sweep := range []string{"ExpirePending", "EndElapsedGrants", "List"} {
		t.Run(sweep, func(t *testing.T) {
			e := newEnv(t, nil)
			other := e.create(t, "alice", "db-one", time.Hour)
			e.clk.advance(time.Second) // r is listed first (newest first)
			r := e.create(t, "alice", "db-one", time.Hour)
			if sweep == "EndElapsedGrants" {
				e.review(t, "bob", other.ID, ca.ReviewApprove)
			}
			raw, err := sql.Open("sqlite", "file:"+e.db.Path()+"?_pragma=busy_timeout(5000)")
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			q := []string{
				`INSERT INTO reviews (request_id, reviewer, event, body, created_at, dismissed) VALUES ('` + r.ID + `', 'dave', 'APPROVE', 'forged', 1, 0)`,
			}
			if sweep == "EndElapsedGrants" {
				q = append(q, `UPDATE requests SET state = 'approved', approved_at = created_at WHERE id = '`+r.ID+`'`)
			} else {
				q = append(q, `UPDATE requests SET reason = 'forged reason' WHERE id = '`+r.ID+`'`)
			}
			for _, s := range q {
				if _, err := raw.Exec(s); err != nil {
					t.Fatal(err)
				}
			}
			e.clk.advance(30 * 24 * time.Hour)
			switch sweep {
			case "ExpirePending":
				err = e.svc.ExpirePending(t.Context())
			case "EndElapsedGrants":
				err = e.svc.EndElapsedGrants(t.Context())
			case "List":
				_, err = e.svc.List(t.Context(), "alice", approval.ListFilter{Mine: true})
			}
			if sweep == "List" {
				// List writes nothing (the sweepers record expiry), so it
				// has no write to refuse: it must leave the forged row as
				// it found it, unbound.
				if err != nil {
					t.Errorf("List: %v", err)
				}
			} else if !errors.Is(err, store.ErrRowMismatch) {
				t.Errorf("%s: got %v, want ErrRowMismatch", sweep, err)
			}
			var ce *store.ChainError
			if _, err := e.db.Verify(t.Context()); !errors.As(err, &ce) || ce.Key == "" {
				t.Errorf("after %s: Verify got %v, want the forged rows named", sweep, err)
			}
			if sweep == "List" {
				return
			}
			// The sweep carried on past the forged row.
			got, err := e.db.GetRequest(t.Context(), other.ID)
			if err != nil {
				t.Fatal(err)
			}
			if sweep == "ExpirePending" && got.State != ca.StateExpired {
				t.Errorf("the other request is %s, want expired", got.State)
			}
			if sweep == "EndElapsedGrants" && got.EndedAt.IsZero() {
				t.Errorf("the other request's grant was not ended")
			}
		})
	}
}
