package postgres_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/storetest"
	"github.com/jit-ssh/jit-ssh/test/pgtest"
)

// BenchmarkRecordCertificateParallel is issuance's ledger write from
// concurrent callers on one PostgreSQL ledger (fsync on).
func BenchmarkRecordCertificateParallel(b *testing.B) {
	srv := pgtest.Start(b)
	db := open(b, srv.NewDatabase(b))
	r := storetest.NewRequest("r-aaaaaaaaaaaaaaaa", "alice", "prod-db", ca.StateApproved, t0)
	storetest.Create(b, db, r)
	var serial atomic.Uint64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := db.RecordCertificate(b.Context(), storetest.CertFor(serial.Add(1), "alice", "prod-db", r.ID, t0.Add(time.Second), time.Minute)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
