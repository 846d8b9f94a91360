package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store"
)

// SidecarSuffix is appended to the ledger's path to name the checkpoint
// sidecar file that Open writes and Verify reads by default.
const SidecarSuffix = ".checkpoints"

// WithCheckpointSigner makes Checkpoint sign with s (the CA's file key, or a
// dedicated checkpoint key when the CA key lives in Vault, which signs only
// certificates). Verify trusts s's public key.
func WithCheckpointSigner(s ssh.Signer) Option {
	return func(d *DB) {
		d.ckSigner = s
		if s != nil {
			d.ckKeys = append(d.ckKeys, s.PublicKey())
		}
	}
}

// WithCheckpointKeys sets further public keys Verify accepts checkpoints
// from (a previous key after rotation, or the key an auditor pinned). With
// no keys at all, Verify checks each signature against the key it carries
// and reports the keys it saw.
func WithCheckpointKeys(keys ...ssh.PublicKey) Option {
	return func(d *DB) { d.ckKeys = append(d.ckKeys, keys...) }
}

// WithCheckpointFile sets the sidecar file checkpoints are appended to and
// read from. The default is the ledger's path plus SidecarSuffix; "-" turns
// the sidecar off.
func WithCheckpointFile(path string) Option { return func(d *DB) { d.sidecar = path } }

// Checkpoint signs the chain's current head and records it in the ledger and
// the sidecar file. It returns nil, nil when there is nothing new to anchor
// (an empty log, or no event since the last checkpoint).
func (d *DB) Checkpoint(ctx context.Context) (*store.Checkpoint, error) {
	if d.ckSigner == nil {
		return nil, errors.New("store: no checkpoint signer configured")
	}
	// Never sign over rows nobody checked: once per Open, the rows after
	// the newest checkpoint are verified (after that, every new row is this
	// process's own).
	if !d.tailVerified.Load() {
		if _, err := d.VerifyTail(ctx); err != nil {
			return nil, fmt.Errorf("store: not signing a checkpoint over the ledger's unverified tail: %w", err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var cp store.Checkpoint
	err := d.w.QueryRowContext(ctx, `SELECT id, hash FROM events ORDER BY id DESC LIMIT 1`).Scan(&cp.Row, &cp.Hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, classify("checkpoint", err)
	}
	var lastRow int64
	var lastHash string
	err = d.w.QueryRowContext(ctx, `SELECT event_id, event_hash FROM checkpoints ORDER BY id DESC LIMIT 1`).Scan(&lastRow, &lastHash)
	switch {
	case err == nil && lastRow == cp.Row && lastHash == cp.Hash:
		return nil, nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return nil, classify("checkpoint", err)
	}
	cp.At = d.now().UTC()
	if cp.Signature, err = store.SignCheckpoint(d.ckSigner, cp); err != nil {
		return nil, fmt.Errorf("store: signing checkpoint: %w", err)
	}
	err = d.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (at, event_id, event_hash, signature) VALUES (?, ?, ?, ?)`,
			cp.At.UnixNano(), cp.Row, cp.Hash, cp.Signature)
		return err
	})
	if err != nil {
		return nil, classify("recording checkpoint", err)
	}
	if err := d.appendSidecar(cp); err != nil {
		return &cp, err
	}
	return &cp, nil
}

func (d *DB) appendSidecar(cp store.Checkpoint) error {
	if d.sidecar == "-" || d.sidecar == "" {
		return nil
	}
	line, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	f, err := os.OpenFile(d.sidecar, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("store: checkpoint recorded in the ledger but not in the sidecar: %w", err)
	}
	_, err = f.Write(append(line, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: checkpoint recorded in the ledger but not in the sidecar %s: %w", d.sidecar, err)
	}
	return nil
}

// ReadCheckpointFile reads a checkpoint sidecar file (one JSON object per
// line), calling fn for each checkpoint in file order.
func ReadCheckpointFile(path string, fn func(line int, cp store.Checkpoint) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var cp store.Checkpoint
		if err := json.Unmarshal(sc.Bytes(), &cp); err != nil {
			return fmt.Errorf("store: %s line %d is not a checkpoint: %w", path, n, err)
		}
		if err := fn(n, cp); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("store: reading %s: %w", path, err)
	}
	return nil
}

// verifyCheckpoints checks every checkpoint in the ledger and the sidecar
// against the verified chain, which ends at row lastRow. It fills the
// checkpoint figures of res and returns the problem with the lowest row.
func (d *DB) verifyCheckpoints(ctx context.Context, q queryer, lastRow int64, res *ca.VerifyResult) error {
	var worst *store.ChainError
	seenKeys := map[string]bool{}
	check := func(source string, cp store.Checkpoint) error {
		bad := func(row int64, format string, args ...any) {
			if worst == nil || row < worst.Row {
				worst = &store.ChainError{Row: row, Reason: fmt.Sprintf("checkpoint from %s signed at %s: ", source, cp.At.UTC().Format(time.RFC3339)) + fmt.Sprintf(format, args...)}
			}
		}
		pub, err := cp.Verify()
		if err != nil {
			bad(cp.Row, "says row %d has hash %s, but its signature does not verify (%v): the checkpoint was forged or edited", cp.Row, short(cp.Hash), err)
			return nil
		}
		fp := ca.Fingerprint(pub)
		if len(d.ckKeys) > 0 && !containsKey(d.ckKeys, pub) {
			bad(cp.Row, "signed by %s, which is not a trusted checkpoint key", fp)
			return nil
		}
		if !seenKeys[fp] {
			seenKeys[fp] = true
			res.CheckpointKeys = append(res.CheckpointKeys, fp)
		}
		if cp.Row > lastRow {
			bad(lastRow+1, "the ledger ends at row %d but this checkpoint says the chain reached row %d (hash %s): rows %d to %d were deleted from the end",
				lastRow, cp.Row, short(cp.Hash), lastRow+1, cp.Row)
			return nil
		}
		var hash string
		if err := q.QueryRowContext(ctx, `SELECT hash FROM events WHERE id = ?`, cp.Row).Scan(&hash); err != nil {
			return classify("verify", err)
		}
		if hash != cp.Hash {
			bad(cp.Row, "says row %d has hash %s but the ledger's row %d has hash %s: the chain was rewritten up to this row", cp.Row, short(cp.Hash), cp.Row, short(hash))
			return nil
		}
		if cp.Row >= res.LastCheckpointRow {
			res.LastCheckpointRow, res.LastCheckpointAt = cp.Row, cp.At.UTC()
		}
		return nil
	}

	var hasTable int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'`).Scan(&hasTable); err != nil {
		return classify("verify", err)
	}
	if hasTable > 0 {
		rows, err := q.QueryContext(ctx, `SELECT id, at, event_id, event_hash, signature FROM checkpoints ORDER BY id`)
		if err != nil {
			return classify("verify", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, at int64
			var cp store.Checkpoint
			if err := rows.Scan(&id, &at, &cp.Row, &cp.Hash, &cp.Signature); err != nil {
				return classify("verify", err)
			}
			cp.At = time.Unix(0, at).UTC()
			res.Checkpoints++
			if err := check(fmt.Sprintf("the ledger (checkpoint %d)", id), cp); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return classify("verify", err)
		}
	}
	if d.sidecar != "" && d.sidecar != "-" {
		err := ReadCheckpointFile(d.sidecar, func(line int, cp store.Checkpoint) error {
			res.SidecarCheckpoints++
			return check(fmt.Sprintf("%s line %d", d.sidecar, line), cp)
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
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
