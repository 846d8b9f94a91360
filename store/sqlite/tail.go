package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// deriveMACKey returns the key that marks this server's event rows
// (store.DeriveMACKey).
func deriveMACKey(s ssh.Signer) []byte { return store.DeriveMACKey(s) }

// macTail gives the event rows after the newest checkpoint in the ledger
// this server's MAC (migration 0005, on upgrade: trust on upgrade).
func macTail(ctx context.Context, tx *sql.Tx, key []byte) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, hash FROM events WHERE id > (SELECT coalesce(max(event_id), 0) FROM checkpoints) ORDER BY id`)
	if err != nil {
		return err
	}
	type row struct {
		id   int64
		hash string
	}
	var todo []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.hash); err != nil {
			rows.Close()
			return err
		}
		todo = append(todo, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range todo {
		if _, err := tx.ExecContext(ctx, `UPDATE events SET mac = ? WHERE id = ?`, store.EventMAC(key, r.id, r.hash), r.id); err != nil {
			return err
		}
	}
	return nil
}

// VerifyTail checks the ledger before the server signs a checkpoint over
// it or serves. The newest checkpoint (in the ledger and in the sidecar)
// must verify and match its row; every event row, from the first, must
// link and match its hash, so no row under a checkpoint was edited (an
// edited event could otherwise hide the newest binding of a request or a
// revocation from the reads the server decides from, which find events by
// their columns); and every row after the checkpoint must, with a
// checkpoint signer, carry this server's MAC (so a row appended by someone
// who can compute hashes but does not hold the checkpoint key is refused),
// and each request and certificate those rows bind must match them. It
// returns a *ChainError naming the first bad row. Checkpoint runs it once
// if the server did not. It reads every event once: 1.4 s for 104,000
// rows on a 2-core machine (README, Security model).
func (d *DB) VerifyTail(ctx context.Context) (store.TailResult, error) {
	var res store.TailResult
	q, err := d.r.BeginTx(ctx, nil) // one snapshot
	if err != nil {
		return res, classify("verifying the ledger's tail", err)
	}
	defer func() { _ = q.Rollback() }()
	anchor, anchorHash, err := d.newestCheckpoint(ctx, q)
	if err != nil {
		return res, err
	}
	res.Anchor = anchor
	rows, err := q.QueryContext(ctx, `SELECT `+storedEventColumns+` FROM events ORDER BY id`)
	if err != nil {
		return res, classify("verifying the ledger's tail", err)
	}
	defer rows.Close()
	b := store.NewBindings()
	prev, lastID := "", int64(0)
	for rows.Next() {
		var ev storedEvent
		if err := rows.Scan(ev.dest()...); err != nil {
			return res, classify("verifying the ledger's tail", err)
		}
		switch {
		case ev.ce.ID != lastID+1:
			return res, &store.ChainError{Row: lastID + 1, Reason: fmt.Sprintf("expected row %d next: a row was deleted or inserted", lastID+1)}
		case ev.ce.PrevHash != prev:
			return res, &store.ChainError{Row: ev.ce.ID, Reason: "link to the previous row does not match: a row before it was changed, removed or reordered"}
		}
		if ev.ce.ID <= anchor {
			// Under the checkpoint: the row must be intact; its MAC may be
			// an earlier checkpoint key's, and its bindings are checked
			// when the server reads the rows they bind.
			if reason := ev.check(nil); reason != "" {
				return res, &store.ChainError{Row: ev.ce.ID, Reason: reason}
			}
			if ev.ce.ID == anchor && ev.hash != anchorHash {
				return res, &store.ChainError{Row: anchor, Reason: "does not have the hash the newest signed checkpoint recorded"}
			}
			prev, lastID = ev.hash, ev.ce.ID
			continue
		}
		if reason := ev.check(d.macKey); reason != "" {
			return res, &store.ChainError{Row: ev.ce.ID, Reason: reason}
		}
		if d.macKey != nil && !ev.mac.Valid {
			return res, &store.ChainError{Row: ev.ce.ID, Reason: fmt.Sprintf("follows the newest signed checkpoint (row %d) but carries no MAC of this server: it was not written by this server", anchor)}
		}
		if err := b.Add(&ev.ce, uint64(ev.serial)); err != nil {
			return res, err
		}
		prev, lastID = ev.hash, ev.ce.ID
		res.Rows++
	}
	if err := rows.Err(); err != nil {
		return res, classify("verifying the ledger's tail", err)
	}
	rows.Close()
	if err := d.checkTailRows(ctx, q, b); err != nil {
		return res, err
	}
	d.verifiedThrough.Store(lastID)
	d.tailVerified.Store(true)
	return res, nil
}

// newestCheckpoint returns the row and hash of the newest signed
// checkpoint in the ledger and the sidecar, checked: its signature (by a
// trusted key) and that the row still has that hash. No checkpoint: 0, "".
func (d *DB) newestCheckpoint(ctx context.Context, q queryer) (int64, string, error) {
	var cands []store.Checkpoint
	var srcs []string
	var id, at int64
	var cp store.Checkpoint
	err := q.QueryRowContext(ctx, `SELECT id, at, event_id, event_hash, signature FROM checkpoints ORDER BY id DESC LIMIT 1`).Scan(&id, &at, &cp.Row, &cp.Hash, &cp.Signature)
	switch {
	case err == nil:
		cp.At = time.Unix(0, at).UTC()
		cands, srcs = append(cands, cp), append(srcs, fmt.Sprintf("the ledger (checkpoint %d)", id))
	case !errors.Is(err, sql.ErrNoRows):
		return 0, "", classify("reading checkpoints", err)
	}
	if d.sidecar != "" && d.sidecar != "-" {
		last, ok, err := lastSidecarCheckpoint(d.sidecar)
		switch {
		case err == nil && ok:
			cands, srcs = append(cands, last), append(srcs, "the last line of "+d.sidecar)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return 0, "", err
		}
	}
	var headID int64
	if err := q.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM events`).Scan(&headID); err != nil {
		return 0, "", classify("reading chain head", err)
	}
	var anchor int64
	var anchorHash string
	for i, cp := range cands {
		pub, err := cp.Verify()
		if err != nil {
			return 0, "", &store.ChainError{Row: cp.Row, Reason: fmt.Sprintf("the newest checkpoint, from %s, does not verify (%v): it was forged or edited", srcs[i], err)}
		}
		if len(d.ckKeys) > 0 && !containsKey(d.ckKeys, pub) {
			return 0, "", &store.ChainError{Row: cp.Row, Reason: fmt.Sprintf("the newest checkpoint, from %s, is signed by %s, which is not a trusted checkpoint key", srcs[i], ca.Fingerprint(pub))}
		}
		if cp.Row > headID {
			return 0, "", &store.ChainError{Row: headID + 1, Reason: fmt.Sprintf("the ledger ends at row %d but the checkpoint from %s says the chain reached row %d: rows were deleted from the end", headID, srcs[i], cp.Row)}
		}
		var h string
		if err := q.QueryRowContext(ctx, `SELECT hash FROM events WHERE id = ?`, cp.Row).Scan(&h); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return 0, "", &store.ChainError{Row: cp.Row, Reason: fmt.Sprintf("the checkpoint from %s names row %d, which is missing: it was deleted", srcs[i], cp.Row)}
			}
			return 0, "", classify("reading checkpoints", err)
		}
		if h != cp.Hash {
			return 0, "", &store.ChainError{Row: cp.Row, Reason: fmt.Sprintf("the checkpoint from %s says row %d has hash %s but the ledger's row has hash %s: the chain was rewritten up to this row", srcs[i], cp.Row, short(cp.Hash), short(h))}
		}
		if cp.Row > anchor {
			anchor, anchorHash = cp.Row, h
		}
	}
	return anchor, anchorHash, nil
}

// lastSidecarCheckpoint returns the last checkpoint of a sidecar file
// (false: the file holds none), reading only the file's end.
func lastSidecarCheckpoint(path string) (store.Checkpoint, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return store.Checkpoint{}, false, fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return store.Checkpoint{}, false, fmt.Errorf("store: %w", err)
	}
	// A line is under 2 KiB: the file's last 64 KiB hold the last one whole.
	const tail = 64 << 10
	off := max(st.Size()-tail, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return store.Checkpoint{}, false, fmt.Errorf("store: reading %s: %w", path, err)
	}
	buf = bytes.TrimSpace(buf)
	last := buf[bytes.LastIndexByte(buf, '\n')+1:]
	if len(bytes.TrimSpace(last)) == 0 {
		return store.Checkpoint{}, false, nil
	}
	var cp store.Checkpoint
	if err := json.Unmarshal(last, &cp); err != nil {
		return store.Checkpoint{}, false, fmt.Errorf("store: the last line of %s is not a checkpoint: %w", path, err)
	}
	return cp, true, nil
}
