package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jit-ssh/jit-ssh/store"
)

// Checks the server's own writes make before changing a bound row: a write
// binds the row as it is after the change, so a row edited or inserted
// outside the server would otherwise come out of the server's next routine
// write bound, and clean in audit verify.

// DataRowMismatch is store.DataRowMismatch: set to true in the data of a
// revocation (or a grant ended by one) whose row did not match the event
// log when the server changed it.
const DataRowMismatch = store.DataRowMismatch

// sqlLatestCertBinding is the newest event that binds certificate serial
// (or that recorded it mismatching), answered from the partial index
// events_by_serial (migration 0005).
const sqlLatestCertBinding = `SELECT ` + storedEventColumns + ` FROM events WHERE serial = ? AND serial <> 0 AND (instr(data, '"certificate_sha256":') > 0 OR instr(data, '"row_mismatch":true') > 0) ORDER BY id DESC LIMIT 1`

// checkRequestTx checks request id, as it is in tx, against the newest
// event that binds it (checkRequestBinding), before a write changes it. A
// request that is not there is left to the write to report.
func (d *DB) checkRequestTx(ctx context.Context, tx *sql.Tx, id string) error {
	r, err := readRequestTx(ctx, tx, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	latest, err := tx.PrepareContext(ctx, sqlLatestBinding)
	if err != nil {
		return err
	}
	defer latest.Close()
	link, err := tx.PrepareContext(ctx, sqlEventLink)
	if err != nil {
		return err
	}
	defer link.Close()
	return d.checkRequestBinding(ctx, latest, link, r)
}

// checkCertTx returns why certificate serial, as it is in tx, does not
// match the newest event that binds it, or the migration baseline when no
// event does ("" when it matches).
func checkCertTx(ctx context.Context, tx *sql.Tx, c *chain, serial int64) (string, error) {
	row, _, err := scanCertRow(tx.QueryRowContext(ctx, `SELECT `+certRowColumns+` FROM certificates WHERE serial = ?`, serial))
	if err != nil {
		return "", err
	}
	var ev storedEvent
	err = tx.QueryRowContext(ctx, sqlLatestCertBinding, serial).Scan(ev.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		var sum string
		err := tx.QueryRowContext(ctx, `SELECT sha256 FROM certificate_baseline WHERE serial = ?`, serial).Scan(&sum)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return "is not recorded in the event log (inserted outside the server)", nil
		case err != nil:
			return "", err
		case sum != row.Digest():
			return "differs from what the ledger's upgrade recorded of it (edited outside the server)", nil
		}
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if reason := ev.check(macKeyFor(c.macKey, c.checkedThrough, ev.ce.ID)); reason != "" {
		return fmt.Sprintf("is recorded by event row %d, which %s", ev.ce.ID, reason), nil
	}
	var next string
	switch err := tx.QueryRowContext(ctx, sqlEventLink, ev.ce.ID+1).Scan(&next); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return "", err
	case next != ev.hash:
		return fmt.Sprintf("is recorded by event row %d, which was edited (row %d no longer links to it)", ev.ce.ID, ev.ce.ID+1), nil
	}
	var data struct {
		Sum      string `json:"certificate_sha256"`
		Mismatch bool   `json:"row_mismatch"`
	}
	if err := json.Unmarshal(ev.ce.Data, &data); err != nil {
		return fmt.Sprintf("is recorded by event row %d, whose data is unreadable", ev.ce.ID), nil
	}
	if data.Mismatch || data.Sum != row.Digest() {
		return fmt.Sprintf("differs from what event row %d recorded of it (edited outside the server)", ev.ce.ID), nil
	}
	return "", nil
}
