package hostconfig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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
	CAKeys       int    // CA keys now trusted
	KRLVersion   uint64 // version of the KRL now in place
	CAChanged    bool
	KRLChanged   bool
	PreviousKRLV uint64 // version of the KRL that was in place (0 if none)
	ServerKRLV   uint64 // version the server offered
}

// ErrStaleKRL means the server offered a KRL older than the one in place.
var ErrStaleKRL = errors.New("hostconfig: server KRL is older than the local one")

// Sync fetches the CA keys and the KRL from src, checks them (CA keys parse
// and are not empty; the KRL parses and is not older than the local one),
// and replaces dir's ca.pub and revoked.krl atomically. On any failure the
// last good files stay as they are, and it never leaves the KRL missing.
func Sync(ctx context.Context, dir string, src Source) (*SyncResult, error) {
	if err := CheckDir(dir); err != nil {
		return nil, err
	}
	keys, err := src.CAKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("hostconfig: fetching CA keys (kept the last good files): %w", err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: the server offered no CA key (kept the last good files)", ErrInvalidFiles)
	}
	var caData bytes.Buffer
	for _, k := range keys {
		if _, isCert := k.(*ssh.Certificate); isCert {
			return nil, fmt.Errorf("%w: the server offered a certificate as a CA key (kept the last good files)", ErrInvalidFiles)
		}
		caData.Write(ssh.MarshalAuthorizedKey(k))
	}
	krl, err := src.KRL(ctx)
	if err != nil {
		return nil, fmt.Errorf("hostconfig: fetching the KRL (kept the last good files): %w", err)
	}
	h, err := ca.ParseKRLHeader(krl)
	if err != nil {
		return nil, fmt.Errorf("%w: the server's KRL is unusable (kept the last good files): %w", ErrInvalidFiles, err)
	}
	res := &SyncResult{CAKeys: len(keys), ServerKRLV: h.Version, KRLVersion: h.Version}
	krlPath := filepath.Join(dir, KRLName)
	local, err := os.ReadFile(krlPath)
	switch {
	case err == nil:
		if lh, err := ca.ParseKRLHeader(local); err == nil {
			res.PreviousKRLV = lh.Version
			if h.Version < lh.Version {
				return nil, fmt.Errorf("%w: server version %d, local %d (kept the local one; is the server's ledger restored from an old backup?)", ErrStaleKRL, h.Version, lh.Version)
			}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("hostconfig: reading %s: %w", krlPath, err)
	}
	caPath := filepath.Join(dir, CAKeysName)
	if old, err := os.ReadFile(caPath); err != nil || !bytes.Equal(old, caData.Bytes()) {
		if err := writeFileAtomic(caPath, caData.Bytes(), fileMode); err != nil {
			return nil, err
		}
		res.CAChanged = true
	}
	if !bytes.Equal(local, krl) {
		if err := writeFileAtomic(krlPath, krl, fileMode); err != nil {
			return nil, err
		}
		res.KRLChanged = true
	}
	return res, nil
}
