package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha512"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
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
	if cp.Signature, err = signSSHSig(d.ckSigner, store.CheckpointNamespace, cp.Message()); err != nil {
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
		pub, err := verifySSHSig(cp.Signature, store.CheckpointNamespace, cp.Message())
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

// The OpenSSH SSHSIG format (PROTOCOL.sshsig), so that a checkpoint can also
// be checked with stock tools: ssh-keygen -Y check-novalidate -n NAMESPACE.

const (
	sshsigMagic   = "SSHSIG"
	sshsigHashAlg = "sha512"
	sshsigArmorHd = "-----BEGIN SSH SIGNATURE-----"
	sshsigArmorFt = "-----END SSH SIGNATURE-----"
)

type sshsigSigned struct {
	Namespace string
	Reserved  string
	HashAlg   string
	Hash      []byte
}

type sshsigBlob struct {
	Version   uint32
	PublicKey []byte
	Namespace string
	Reserved  string
	HashAlg   string
	Signature []byte
}

func sshsigData(namespace string, msg []byte) []byte {
	h := sha512.Sum512(msg)
	return append([]byte(sshsigMagic), ssh.Marshal(sshsigSigned{Namespace: namespace, HashAlg: sshsigHashAlg, Hash: h[:]})...)
}

// signSSHSig signs msg with s as an armored SSHSIG.
func signSSHSig(s ssh.Signer, namespace string, msg []byte) (string, error) {
	sig, err := s.Sign(rand.Reader, sshsigData(namespace, msg))
	if err != nil {
		return "", err
	}
	blob := append([]byte(sshsigMagic), ssh.Marshal(sshsigBlob{
		Version: 1, PublicKey: s.PublicKey().Marshal(), Namespace: namespace, HashAlg: sshsigHashAlg, Signature: ssh.Marshal(sig),
	})...)
	b64 := base64.StdEncoding.EncodeToString(blob)
	var sb strings.Builder
	sb.WriteString(sshsigArmorHd + "\n")
	for len(b64) > 70 {
		sb.WriteString(b64[:70] + "\n")
		b64 = b64[70:]
	}
	sb.WriteString(b64 + "\n" + sshsigArmorFt + "\n")
	return sb.String(), nil
}

// verifySSHSig checks an armored SSHSIG over msg in namespace and returns
// the key that made it.
func verifySSHSig(armored, namespace string, msg []byte) (ssh.PublicKey, error) {
	s := strings.TrimSpace(armored)
	if !strings.HasPrefix(s, sshsigArmorHd) || !strings.HasSuffix(s, sshsigArmorFt) {
		return nil, errors.New("not an armored SSH signature")
	}
	s = strings.Join(strings.Fields(strings.TrimSuffix(strings.TrimPrefix(s, sshsigArmorHd), sshsigArmorFt)), "")
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || !bytes.HasPrefix(raw, []byte(sshsigMagic)) {
		return nil, errors.New("malformed SSH signature")
	}
	var blob sshsigBlob
	if err := ssh.Unmarshal(raw[len(sshsigMagic):], &blob); err != nil {
		return nil, fmt.Errorf("malformed SSH signature: %w", err)
	}
	if blob.Version != 1 || blob.Namespace != namespace || blob.HashAlg != sshsigHashAlg {
		return nil, fmt.Errorf("SSH signature version %d, namespace %q, hash %q; want 1, %q, %q", blob.Version, blob.Namespace, blob.HashAlg, namespace, sshsigHashAlg)
	}
	pub, err := ssh.ParsePublicKey(blob.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("SSH signature key: %w", err)
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(blob.Signature, &sig); err != nil {
		return nil, fmt.Errorf("malformed SSH signature: %w", err)
	}
	if err := pub.Verify(sshsigData(namespace, msg), &sig); err != nil {
		return nil, err
	}
	return pub, nil
}

// SignCheckpoint returns cp's signature by s, as Checkpoint makes it: for
// tools that build a ledger outside the server (the bench's generated
// ledger) and must anchor it with the data dir's key. Whoever holds the
// key can sign any chain head; that is the limit of what checkpoints prove.
func SignCheckpoint(s ssh.Signer, cp store.Checkpoint) (string, error) {
	return signSSHSig(s, store.CheckpointNamespace, cp.Message())
}
