package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/cmd/jit-ssh/internal/config"
	"github.com/jit-ssh/jit-ssh/store"
)

// CheckpointInterval is how often the server signs the ledger's chain head
// (only when events were added since the last checkpoint). It bounds how
// many of the newest rows a truncation could remove unnoticed.
const CheckpointInterval = time.Minute

// checkpointSigner returns the key that signs ledger checkpoints: the CA key
// itself when it is a file key, otherwise a dedicated ed25519 key in the
// data dir (config.CheckpointKeyFile), created 0600 on first start.
func checkpointSigner(cfg *config.Server, signer ca.Signer) (ssh.Signer, error) {
	if fs, ok := signer.(*ca.FileSigner); ok {
		return fs.DataSigner(), nil
	}
	fs, err := ca.LoadOrCreateFileSigner(cfg.CheckpointKeyPath())
	if err != nil {
		return nil, fmt.Errorf("ledger checkpoint key: %w", err)
	}
	return fs.DataSigner(), nil
}

// checkpoint signs the chain head now and logs it, so the server log (and
// whatever ships it off the host) holds a copy an attacker on the host
// cannot reach.
func checkpoint(ctx context.Context, db store.Checkpointer, log *slog.Logger) {
	cp, err := db.Checkpoint(ctx)
	if err != nil {
		log.Warn("ledger checkpoint failed", slog.String("error", err.Error()))
	}
	if cp != nil {
		log.Info("ledger checkpoint", slog.Int64("row", cp.Row), slog.String("hash", cp.Hash),
			slog.Time("at", cp.At), slog.String("signature", cp.Signature))
	}
}

func checkpointLoop(ctx context.Context, db store.Checkpointer, log *slog.Logger) {
	t := time.NewTicker(CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			checkpoint(ctx, db, log)
		}
	}
}

// tailError is the start-up refusal when the ledger's rows after the newest
// signed checkpoint fail VerifyTail: it names the first bad row and what the
// operator does next.
func tailError(ledger string, err error) error {
	var ce *store.ChainError
	if !errors.As(err, &ce) {
		return fmt.Errorf("verifying the ledger before serving: %w", err)
	}
	where := fmt.Sprintf("event row %d", ce.Row)
	if ce.Table != "" {
		where = fmt.Sprintf("%s row %s", ce.Table, ce.Key)
	}
	if strings.HasPrefix(ledger, "PostgreSQL ") {
		return fmt.Errorf("refusing to start: the ledger (%s) fails verification at %s: %s. "+
			"Nothing was signed or served. Keep a dump of the database as evidence (pg_dump), run 'jit-ssh audit verify --ledger postgres://...' "+
			"and 'jit-ssh audit events' against a copy to see what changed, then restore the database from a backup that verifies (see the README, For auditors)", ledger, where, ce.Reason)
	}
	return fmt.Errorf("refusing to start: the ledger %s fails verification at %s: %s. "+
		"Nothing was signed or served. Keep a copy of the data directory as evidence, run 'jit-ssh audit verify --ledger %s' "+
		"(with --checkpoints pointing at an off-host copy of the sidecar) and 'jit-ssh audit events' on the copy to see what changed, "+
		"then restore the ledger from a backup that verifies (see the README, For auditors)", ledger, where, ce.Reason, ledger)
}
