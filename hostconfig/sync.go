package hostconfig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Source is where host sync gets fresh trust material: the jit-ssh server.
type Source interface {
	CAKeys(ctx context.Context) ([]ssh.PublicKey, error)
	KRL(ctx context.Context) ([]byte, error)
}

// SyncResult says what Sync changed.
type SyncResult struct {
	Dir          string `json:"dir"`
	CAKeys       int    `json:"ca_keys"`              // CA keys now trusted
	KRLVersion   uint64 `json:"krl_version"`          // version of the KRL now in place
	CAChanged    bool   `json:"ca_changed"`           // ca.pub was replaced
	KRLChanged   bool   `json:"krl_changed"`          // revoked.krl was replaced
	PreviousKRLV uint64 `json:"previous_krl_version"` // version of the KRL that was in place (0 if none)
}

// ErrStaleKRL means the server offered a KRL older than the one in place.
var ErrStaleKRL = errors.New("hostconfig: server KRL is older than the local one")

// SyncOption changes how Sync behaves.
type SyncOption func(*syncOptions)

type syncOptions struct {
	allowOlder bool
	now        func() time.Time
}

// AllowOlderKRL lets Sync install a KRL whose version is lower than the
// local one. It is for the one deliberate case: the server's ledger was
// rebuilt (a new deployment, not a restore), so its versions start again.
func AllowOlderKRL() SyncOption { return func(o *syncOptions) { o.allowOlder = true } }

// WithSyncClock sets the clock Sync stamps the KRL's modification time
// with after a successful sync; nil means time.Now.
func WithSyncClock(now func() time.Time) SyncOption { return func(o *syncOptions) { o.now = now } }

// Sync fetches the CA keys and the KRL from src, checks them (CA keys parse,
// are not certificates and are not empty; the KRL parses and is not older
// than the local one), and replaces dir's ca.pub and revoked.krl
// atomically. Nothing is written until both downloads passed their checks;
// then both new files are written and fsynced under temporary names and
// renamed into place, the KRL first. On any failure the last good files
// stay as they are, and Sync never removes the KRL.
//
// After a successful sync the KRL's modification time is the time of the
// sync, even when its content did not change, so `jit-ssh doctor --host`
// can tell a host whose sync stopped working.
func Sync(ctx context.Context, dir string, src Source, opts ...SyncOption) (*SyncResult, error) {
	o := syncOptions{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if err := CheckDir(dir); err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory; create the host files first with 'jit-ssh host config --dir %s'", ErrInvalidPath, dir, dir)
	}
	krlPath := filepath.Join(dir, KRLName)
	caPath := filepath.Join(dir, CAKeysName)
	local, err := os.ReadFile(krlPath)
	missingKRL := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missingKRL {
		return nil, fmt.Errorf("hostconfig: reading %s: %w", krlPath, err)
	}
	kept := "kept the last good files"
	if missingKRL {
		kept = "nothing written; " + krlPath + " is missing, so sshd refuses every certificate until a sync succeeds"
	}

	keys, err := src.CAKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("hostconfig: fetching CA keys (%s): %w", kept, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: the server offered no CA key (%s)", ErrInvalidFiles, kept)
	}
	var caData bytes.Buffer
	for _, k := range keys {
		if k == nil {
			return nil, fmt.Errorf("%w: the server offered an empty CA key (%s)", ErrInvalidFiles, kept)
		}
		if _, isCert := k.(*ssh.Certificate); isCert {
			return nil, fmt.Errorf("%w: the server offered a certificate as a CA key (%s)", ErrInvalidFiles, kept)
		}
		caData.Write(ssh.MarshalAuthorizedKey(k))
	}
	krl, err := src.KRL(ctx)
	if err != nil {
		return nil, fmt.Errorf("hostconfig: fetching the KRL (%s): %w", kept, err)
	}
	h, err := ca.ParseKRLHeader(krl)
	if err != nil {
		return nil, fmt.Errorf("%w: the server's KRL is unusable (%s): %w", ErrInvalidFiles, kept, err)
	}
	res := &SyncResult{Dir: dir, CAKeys: len(keys), KRLVersion: h.Version}
	// A local KRL that does not parse is replaced: sshd refuses every
	// certificate while it is in place.
	if lh, err := ca.ParseKRLHeader(local); err == nil {
		res.PreviousKRLV = lh.Version
		if h.Version < lh.Version && !o.allowOlder {
			return nil, fmt.Errorf("%w: the server offers version %d, this host has %d (kept the local one). If the server's ledger was restored from a backup, revocations since then are lost: fix the server. If it was deliberately rebuilt, run 'jit-ssh host sync --allow-older-krl' once", ErrStaleKRL, h.Version, lh.Version)
		}
	}

	// Write both new files under temporary names first, so a full disk or
	// a permission problem is found before anything is replaced.
	oldCA, err := os.ReadFile(caPath)
	res.CAChanged = err != nil || !bytes.Equal(oldCA, caData.Bytes())
	res.KRLChanged = missingKRL || !bytes.Equal(local, krl)
	type pending struct{ tmp, path string }
	var todo []pending
	cleanup := func() {
		for _, p := range todo {
			os.Remove(p.tmp)
		}
	}
	if res.KRLChanged {
		tmp, err := writeTemp(krlPath, krl, fileMode)
		if err != nil {
			return nil, fmt.Errorf("%w (%s)", err, kept)
		}
		todo = append(todo, pending{tmp, krlPath})
	}
	if res.CAChanged {
		tmp, err := writeTemp(caPath, caData.Bytes(), fileMode)
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("%w (%s)", err, kept)
		}
		todo = append(todo, pending{tmp, caPath})
	}
	// The KRL goes first: a newly trusted CA key's revocations are in
	// place before sshd trusts the key.
	for i, p := range todo {
		if err := os.Rename(p.tmp, p.path); err != nil {
			for _, q := range todo[i:] {
				os.Remove(q.tmp)
			}
			return nil, fmt.Errorf("hostconfig: replacing %s: %w", p.path, err)
		}
	}
	if len(todo) > 0 {
		if err := syncDir(dir); err != nil {
			return nil, err
		}
	}
	now := o.now()
	if err := os.Chtimes(krlPath, now, now); err != nil {
		return nil, fmt.Errorf("hostconfig: marking %s synced: %w", krlPath, err)
	}
	return res, nil
}
