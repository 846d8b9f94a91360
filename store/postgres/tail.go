package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// VerifyTail checks the ledger before the server signs a checkpoint over
// it or serves, as the SQLite ledger does: the newest checkpoint must
// verify and match its row; every event row, from the first, must link and
// match its hash; every row after the checkpoint must, with a checkpoint
// signer, carry this server's MAC, and each request and certificate those
// rows bind must match them. It returns a *store.ChainError naming the
// first bad row.
func (d *DB) VerifyTail(ctx context.Context) (store.TailResult, error) {
	var res store.TailResult
	var lastID int64
	err := d.readTx(ctx, func(q pgx.Tx) error {
		anchor, anchorHash, err := d.newestCheckpoint(ctx, q)
		if err != nil {
			return err
		}
		res.Anchor = anchor
		rows, err := q.Query(ctx, `SELECT `+storedEventColumns+` FROM events ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		b := store.NewBindings()
		prev := ""
		for rows.Next() {
			var ev storedEvent
			if err := rows.Scan(ev.dest()...); err != nil {
				return err
			}
			switch {
			case ev.ce.ID != lastID+1:
				return &store.ChainError{Row: lastID + 1, Reason: fmt.Sprintf("expected row %d next: a row was deleted or inserted", lastID+1)}
			case ev.ce.PrevHash != prev:
				return &store.ChainError{Row: ev.ce.ID, Reason: "link to the previous row does not match: a row before it was changed, removed or reordered"}
			}
			if ev.ce.ID <= anchor {
				if reason := ev.check(nil); reason != "" {
					return &store.ChainError{Row: ev.ce.ID, Reason: reason}
				}
				if ev.ce.ID == anchor && ev.hash != anchorHash {
					return &store.ChainError{Row: anchor, Reason: "does not have the hash the newest signed checkpoint recorded"}
				}
				prev, lastID = ev.hash, ev.ce.ID
				continue
			}
			if reason := ev.check(d.macKey); reason != "" {
				return &store.ChainError{Row: ev.ce.ID, Reason: reason}
			}
			if d.macKey != nil && ev.mac == nil {
				return &store.ChainError{Row: ev.ce.ID, Reason: fmt.Sprintf("follows the newest signed checkpoint (row %d) but carries no MAC of this server: it was not written by this server", anchor)}
			}
			if err := b.Add(&ev.ce, uint64(ev.serial)); err != nil { //nolint:gosec // bit-for-bit
				return err
			}
			prev, lastID = ev.hash, ev.ce.ID
			res.Rows++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		return checkTailRows(ctx, q, b)
	})
	if err != nil {
		return res, classify("verifying the ledger's tail", err)
	}
	d.verifiedThrough.Store(lastID)
	d.tailVerified.Store(true)
	return res, nil
}

// newestCheckpoint returns the row and hash of the newest signed checkpoint,
// checked: its signature (by a trusted key) and that the row still has that
// hash. No checkpoint: 0, "".
func (d *DB) newestCheckpoint(ctx context.Context, q queryer) (int64, string, error) {
	var id, at int64
	var cp store.Checkpoint
	err := q.QueryRow(ctx, `SELECT id, at, event_id, event_hash, signature FROM checkpoints ORDER BY id DESC LIMIT 1`).Scan(&id, &at, &cp.Row, &cp.Hash, &cp.Signature)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", err
	}
	cp.At = time.Unix(0, at).UTC()
	src := fmt.Sprintf("the ledger (checkpoint %d)", id)
	pub, err := cp.Verify()
	if err != nil {
		return 0, "", &store.ChainError{Row: cp.Row, Reason: fmt.Sprintf("the newest checkpoint, from %s, does not verify (%v): it was forged or edited", src, err)}
	}
	if len(d.ckKeys) > 0 && !containsKey(d.ckKeys, pub) {
		return 0, "", &store.ChainError{Row: cp.Row, Reason: fmt.Sprintf("the newest checkpoint, from %s, is signed by %s, which is not a trusted checkpoint key", src, ca.Fingerprint(pub))}
	}
	var headID int64
	if err := q.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM events`).Scan(&headID); err != nil {
		return 0, "", err
	}
	if cp.Row > headID {
		return 0, "", &store.ChainError{Row: headID + 1, Reason: fmt.Sprintf("the ledger ends at row %d but the checkpoint from %s says the chain reached row %d: rows were deleted from the end", headID, src, cp.Row)}
	}
	var h string
	if err := q.QueryRow(ctx, `SELECT hash FROM events WHERE id = $1`, cp.Row).Scan(&h); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, "", &store.ChainError{Row: cp.Row, Reason: fmt.Sprintf("the checkpoint from %s names row %d, which is missing: it was deleted", src, cp.Row)}
		}
		return 0, "", err
	}
	if h != cp.Hash {
		return 0, "", &store.ChainError{Row: cp.Row, Reason: fmt.Sprintf("the checkpoint from %s says row %d has hash %s but the ledger's row has hash %s: the chain was rewritten up to this row", src, cp.Row, short(cp.Hash), short(h))}
	}
	return cp.Row, h, nil
}

// Checkpoint signs the chain's current head and records it in the ledger.
// It returns nil, nil when there is nothing new to anchor (an empty log,
// or no event since the last checkpoint).
func (d *DB) Checkpoint(ctx context.Context) (*store.Checkpoint, error) {
	if d.ckSigner == nil {
		return nil, errors.New("store: no checkpoint signer configured")
	}
	// Never sign over rows nobody checked.
	if !d.tailVerified.Load() {
		if _, err := d.VerifyTail(ctx); err != nil {
			return nil, fmt.Errorf("store: not signing a checkpoint over the ledger's unverified tail: %w", err)
		}
	}
	var out *store.Checkpoint
	err := d.write(ctx, "checkpoint", func(tx pgx.Tx, c *chain) error {
		out = nil
		if c.nextID == 1 {
			return nil
		}
		cp := store.Checkpoint{Row: c.nextID - 1, Hash: c.head}
		var lastRow int64
		var lastHash string
		err := tx.QueryRow(ctx, `SELECT event_id, event_hash FROM checkpoints ORDER BY id DESC LIMIT 1`).Scan(&lastRow, &lastHash)
		switch {
		case err == nil && lastRow == cp.Row && lastHash == cp.Hash:
			return nil
		case err != nil && !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		cp.At = d.now().UTC()
		if cp.Signature, err = store.SignCheckpoint(d.ckSigner, cp); err != nil {
			return fmt.Errorf("store: signing checkpoint: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO checkpoints (at, event_id, event_hash, signature) VALUES ($1, $2, $3, $4)`,
			cp.At.UnixNano(), cp.Row, cp.Hash, cp.Signature); err != nil {
			return err
		}
		out = &cp
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// verifyCheckpoints checks every checkpoint in the ledger against the
// verified chain, which ends at row lastRow. It fills the checkpoint
// figures of res and returns the problem with the lowest row.
func (d *DB) verifyCheckpoints(ctx context.Context, q queryer, lastRow int64, res *ca.VerifyResult) error {
	type stored struct {
		id int64
		cp store.Checkpoint
	}
	rows, err := q.Query(ctx, `SELECT id, at, event_id, event_hash, signature FROM checkpoints ORDER BY id`)
	if err != nil {
		return err
	}
	var all []stored
	for rows.Next() {
		var s stored
		var at int64
		if err := rows.Scan(&s.id, &at, &s.cp.Row, &s.cp.Hash, &s.cp.Signature); err != nil {
			rows.Close()
			return err
		}
		s.cp.At = time.Unix(0, at).UTC()
		all = append(all, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var worst *store.ChainError
	seenKeys := map[string]bool{}
	for _, s := range all {
		cp := s.cp
		res.Checkpoints++
		source := fmt.Sprintf("the ledger (checkpoint %d)", s.id)
		bad := func(row int64, format string, args ...any) {
			if worst == nil || row < worst.Row {
				worst = &store.ChainError{Row: row, Reason: fmt.Sprintf("checkpoint from %s signed at %s: ", source, cp.At.UTC().Format(time.RFC3339)) + fmt.Sprintf(format, args...)}
			}
		}
		pub, err := cp.Verify()
		if err != nil {
			bad(cp.Row, "says row %d has hash %s, but its signature does not verify (%v): the checkpoint was forged or edited", cp.Row, short(cp.Hash), err)
			continue
		}
		fp := ca.Fingerprint(pub)
		if len(d.ckKeys) > 0 && !containsKey(d.ckKeys, pub) {
			bad(cp.Row, "signed by %s, which is not a trusted checkpoint key", fp)
			continue
		}
		if !seenKeys[fp] {
			seenKeys[fp] = true
			res.CheckpointKeys = append(res.CheckpointKeys, fp)
		}
		if cp.Row > lastRow {
			bad(lastRow+1, "the ledger ends at row %d but this checkpoint says the chain reached row %d (hash %s): rows %d to %d were deleted from the end",
				lastRow, cp.Row, short(cp.Hash), lastRow+1, cp.Row)
			continue
		}
		var hash string
		if err := q.QueryRow(ctx, `SELECT hash FROM events WHERE id = $1`, cp.Row).Scan(&hash); err != nil {
			return err
		}
		if hash != cp.Hash {
			bad(cp.Row, "says row %d has hash %s but the ledger's row %d has hash %s: the chain was rewritten up to this row", cp.Row, short(cp.Hash), cp.Row, short(hash))
			continue
		}
		if cp.Row >= res.LastCheckpointRow {
			res.LastCheckpointRow, res.LastCheckpointAt = cp.Row, cp.At.UTC()
		}
	}
	res.Unanchored = lastRow - res.LastCheckpointRow
	if worst != nil {
		return worst
	}
	return nil
}

func containsKey(keys []ssh.PublicKey, k ssh.PublicKey) bool {
	for _, t := range keys {
		if bytes.Equal(t.Marshal(), k.Marshal()) {
			return true
		}
	}
	return false
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}
