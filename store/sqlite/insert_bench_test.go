package sqlite_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

func benchLedger(b *testing.B) *sqlite.DB {
	b.Helper()
	// Checkpoints signed as the server signs them (an ed25519 file key).
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	ck, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "ledger.db"), sqlite.WithCheckpointSigner(ck))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	r := newRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0)
	if err := db.ApplyRequestChange(context.Background(), ca.RequestChange{Request: r, Create: true}); err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkInsertCertificate is one durable RecordCertificate at a time:
// a transaction and an fsync per certificate.
func BenchmarkInsertCertificate(b *testing.B) {
	db := benchLedger(b)
	var serial uint64
	for b.Loop() {
		serial++
		if err := db.RecordCertificate(context.Background(), certFor(serial, "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", t0, 5*time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInsertCertificateParallel is 16 concurrent writers per core:
// group commit shares transactions and fsyncs between them.
func BenchmarkInsertCertificateParallel(b *testing.B) {
	db := benchLedger(b)
	var serial atomic.Uint64
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := certFor(serial.Add(1), "alice", "prod-db", "r-aaaaaaaaaaaaaaaa", t0, 5*time.Minute)
			if err := db.RecordCertificate(context.Background(), c); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
