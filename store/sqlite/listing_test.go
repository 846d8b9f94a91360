package sqlite_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// joinedList is how ListCertificates read certificates before it looked
// reasons up instead of joining: one query with a LEFT JOIN on requests,
// principals and approvers through encoding/json.
func joinedList(raw *sql.DB, where string, args ...any) ([]*ca.Certificate, error) {
	q := `SELECT c.serial, c.key_id, c.host_group, c.principals, c.valid_after, c.valid_before, c.requester, c.request_id, c.approvers,
		c.fingerprint, c.ca_fingerprint, c.certificate, c.issued_at, c.revoked_at, coalesce(r.reason, '')
		FROM certificates c LEFT JOIN requests r ON r.id = c.request_id ` + where + ` ORDER BY c.issued_at DESC`
	rows, err := raw.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*ca.Certificate
	for rows.Next() {
		var c ca.Certificate
		var serial, va, vb, issued int64
		var revoked sql.NullInt64
		var principals, approvers string
		if err := rows.Scan(&serial, &c.KeyID, &c.HostGroup, &principals, &va, &vb, &c.Requester, &c.RequestID, &approvers,
			&c.Fingerprint, &c.CAFingerprint, &c.Certificate, &issued, &revoked, &c.Reason); err != nil {
			return nil, err
		}
		c.Serial = uint64(serial) //nolint:gosec // bit-for-bit
		if err := json.Unmarshal([]byte(principals), &c.Principals); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(approvers), &c.Approvers); err != nil {
			return nil, err
		}
		c.ValidAfter, c.ValidBefore, c.IssuedAt = time.Unix(0, va).UTC(), time.Unix(0, vb).UTC(), time.Unix(0, issued).UTC()
		if revoked.Valid {
			c.RevokedAt = time.Unix(0, revoked.Int64).UTC()
		}
		out = append(out, &c)
	}
	return out, rows.Err()
}

// TestListingMatchesJoin: the listing (reasons from a bounded cache,
// arrays split without encoding/json) returns exactly what the joined
// query returned, for tricky reasons and arrays, a request that is gone,
// reasons shared by many certificates, and a cache that overflows.
func TestListingMatchesJoin(t *testing.T) {
	ctx := t.Context()
	db, path := openDB(t)
	reasons := []string{"", "plain", "quote \" backslash \\ <>&", "line\nbreak\ttab\x00nul", "é 日本 🔑", "\u2028", "\xff bad utf-8",
		strings.Repeat("long ", 200)}
	const requests = 40
	for i := range requests {
		create(t, db, newRequest(fmt.Sprintf("r-%016d", i), "alice", "prod-db", ca.StateApproved, t0))
	}
	raw := rawDB(t, path)
	for i := range requests {
		exec(t, raw, `UPDATE requests SET reason = ? WHERE id = ?`, reasons[i%len(reasons)]+fmt.Sprint(i%3), fmt.Sprintf("r-%016d", i))
	}
	const certs = 300
	for i := range certs {
		c := certFor(uint64(i+1), "alice", "prod-db", fmt.Sprintf("r-%016d", (i*7)%requests), t0.Add(time.Duration(i%50)*time.Second), 5*time.Minute)
		switch i % 6 {
		case 1:
			c.Approvers = nil
		case 2:
			c.Principals, c.Approvers = []string{"prod-db", "deploy", ""}, []string{"bob", "dave"}
		case 3:
			c.Principals, c.Approvers = []string{"<a>", "é", "x\"y"}, []string{"\u2028", "a\\b"}
		}
		if err := db.RecordCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// Arrays the store never writes but a ledger may hold, and a
	// certificate whose request is gone (the raw connection does not
	// enforce foreign keys).
	exec(t, raw, `UPDATE certificates SET principals = '[ "spaced" , "out" ]', approvers = 'null' WHERE serial = 5`)
	exec(t, raw, `UPDATE certificates SET principals = '["\u0061"]' WHERE serial = 6`)
	exec(t, raw, `UPDATE certificates SET request_id = 'r-gone' WHERE serial IN (7, 8)`)
	exec(t, raw, `UPDATE certificates SET revoked_at = ? WHERE serial = 9`, t0.Add(time.Minute).UnixNano())
	// Values the packed row cannot carry unambiguously: the separator
	// byte, integers stored as text, a revocation time stored as text.
	exec(t, raw, `UPDATE certificates SET key_id = 'a' || x'1f' || 'b', certificate = x'1f' WHERE serial = 10`)
	exec(t, raw, `UPDATE certificates SET fingerprint = x'1f1f1f' WHERE serial = 11`)
	exec(t, raw, `UPDATE certificates SET certificate = 'c' || x'1f' || '123', revoked_at = NULL WHERE serial = 15`)
	exec(t, raw, `UPDATE certificates SET ca_fingerprint = 'ca' || x'1f' || '99' || x'1f' || '88', revoked_at = 7 WHERE serial = 16`)
	exec(t, raw, `UPDATE certificates SET certificate = 'c' || x'1f' || 'r5' WHERE serial = 17`)
	exec(t, raw, `UPDATE certificates SET valid_after = '0042', serial = '+12' WHERE serial = 12`)
	exec(t, raw, `UPDATE certificates SET revoked_at = '0013' WHERE serial = 13`)

	list := func(f ca.CertFilter) ([]*ca.Certificate, error) {
		var out []*ca.Certificate
		err := db.ListCertificates(ctx, f, func(c *ca.Certificate) error { out = append(out, c); return nil })
		return out, err
	}
	check := func(t *testing.T, f ca.CertFilter, where string, args ...any) {
		t.Helper()
		got, err := list(f)
		if err != nil {
			t.Fatal(err)
		}
		want, err := joinedList(raw, where, args...)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d certificates, the join gives %d", len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("row %d:\n got %+v\nwant %+v", i, got[i], want[i])
			}
		}
	}
	t.Run("everything", func(t *testing.T) { check(t, ca.CertFilter{}, "") })
	t.Run("since", func(t *testing.T) {
		check(t, ca.CertFilter{Since: t0.Add(20 * time.Second)}, "WHERE c.issued_at >= ?", t0.Add(20*time.Second).UnixNano())
	})
	t.Run("serial of a gone request", func(t *testing.T) {
		check(t, ca.CertFilter{Serial: 7}, "WHERE c.serial = 7")
	})
	t.Run("serial of a row with separators", func(t *testing.T) {
		check(t, ca.CertFilter{Serial: 10}, "WHERE c.serial = 10")
	})
	t.Run("cache overflowing at every row", func(t *testing.T) {
		defer sqlite.SetReasonCacheBytes(1)()
		check(t, ca.CertFilter{}, "")
	})
	t.Run("cache overflowing now and then", func(t *testing.T) {
		defer sqlite.SetReasonCacheBytes(2000)()
		check(t, ca.CertFilter{}, "")
	})
	// Rows neither reading can take fail the listing, as they did.
	for i, bad := range []string{`revoked_at = ' 7x'`, `revoked_at = 'r5'`, `revoked_at = ''`, `valid_before = 1.5`, `issued_at = 'x'`,
		`principals = '["a",]'`, `approvers = 'x' || char(31)`} {
		serial := 20 + i
		t.Run("unreadable "+bad, func(t *testing.T) {
			exec(t, raw, fmt.Sprintf(`UPDATE certificates SET %s WHERE serial = %d`, bad, serial))
			if _, err := joinedList(raw, fmt.Sprintf("WHERE c.serial = %d", serial)); err == nil {
				t.Fatalf("the joined query reads %s: the test's premise is wrong", bad)
			}
			if got, err := list(ca.CertFilter{Serial: uint64(serial)}); err == nil {
				t.Fatalf("listing a row with %s succeeded with %d certificates, want the error the join gives", bad, len(got))
			}
		})
	}
}
