package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The statements of the certificate write path, prepared once on the
// writer's single connection so that a burst of issuances does not parse
// the same SQL again for every certificate.
const (
	sqlInsertCert = `INSERT INTO certificates (serial, key_id, host_group, principals, valid_after, valid_before, requester, request_id, approvers, fingerprint, ca_fingerprint, certificate, issued_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlGrantOpenAt = `SELECT count(*) FROM requests WHERE id = ? AND state = 'approved' AND ended_at IS NULL AND approved_at + duration_ns > ?`
	sqlInsertEvent = `INSERT INTO events (id, at, actor, type, request_id, serial, data, prev_hash, hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlSavepoint   = `SAVEPOINT grouped`
	sqlRollbackTo  = `ROLLBACK TO grouped`
	sqlRelease     = `RELEASE grouped`
)

// writeStmts holds the prepared statements; a nil *writeStmts (a read-only
// ledger, or a test's bare chain) runs the SQL unprepared.
type writeStmts struct {
	byQuery map[string]*sql.Stmt
}

// prepareWrites prepares the write path on w. It must run while no
// transaction holds w's only connection.
func prepareWrites(ctx context.Context, w *sql.DB) (*writeStmts, error) {
	s := &writeStmts{byQuery: map[string]*sql.Stmt{}}
	for _, q := range []string{sqlInsertCert, sqlGrantOpenAt, sqlInsertEvent, sqlSavepoint, sqlRollbackTo, sqlRelease} {
		st, err := w.PrepareContext(ctx, q)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("store: preparing the write path: %w", err), s.close())
		}
		s.byQuery[q] = st
	}
	return s, nil
}

func (s *writeStmts) close() error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, st := range s.byQuery {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// stmt returns query's statement bound to tx (reusing its preparation on
// the writer's connection), or nil when query is not prepared.
func (s *writeStmts) stmt(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	if s == nil {
		return nil
	}
	st, ok := s.byQuery[query]
	if !ok {
		return nil
	}
	return tx.StmtContext(ctx, st)
}

// exec runs query in tx, prepared when it can be.
func (s *writeStmts) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st := s.stmt(ctx, tx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// The reads of every issuance (the grant and its reviews), prepared once
// on the reader pool: database/sql prepares them again on each pooled
// connection as it first uses them.
const (
	sqlGetRequest = `SELECT ` + requestColumns + ` FROM requests WHERE id = ?`
	sqlGetReviews = `SELECT ` + reviewColumns + ` FROM reviews WHERE request_id = ? ORDER BY id`
	// sqlLatestBinding is the newest event that binds a request. Its
	// condition is the one of the partial index events_binding_request
	// (migration 0005), word for word, so SQLite answers it from there.
	sqlLatestBinding = `SELECT ` + storedEventColumns + ` FROM events WHERE request_id = ? AND type <> 'certificate.issued' AND instr(data, '"request_sha256":') > 0 ORDER BY id DESC LIMIT 1`
	sqlEventLink     = `SELECT prev_hash FROM events WHERE id = ?`
)

// readStmts holds the prepared reads; a nil *readStmts (a read-only
// ledger opened for verification) runs them unprepared.
type readStmts struct {
	getRequest, getReviews, latestBinding, eventLink *sql.Stmt
}

func prepareReads(ctx context.Context, r *sql.DB) (*readStmts, error) {
	s := &readStmts{}
	var err error
	if s.getRequest, err = r.PrepareContext(ctx, sqlGetRequest); err != nil {
		return nil, fmt.Errorf("store: preparing reads: %w", err)
	}
	for _, p := range []struct {
		st **sql.Stmt
		q  string
	}{{&s.getReviews, sqlGetReviews}, {&s.latestBinding, sqlLatestBinding}, {&s.eventLink, sqlEventLink}} {
		if *p.st, err = r.PrepareContext(ctx, p.q); err != nil {
			return nil, errors.Join(fmt.Errorf("store: preparing reads: %w", err), s.close())
		}
	}
	return s, nil
}

func (s *readStmts) close() error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, st := range []*sql.Stmt{s.getRequest, s.getReviews, s.latestBinding, s.eventLink} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// queryRow runs query in tx, prepared when it can be.
func (s *writeStmts) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if st := s.stmt(ctx, tx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}
