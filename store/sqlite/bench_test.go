package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/static"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/ca/api"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// benchCerts is the size of the generated ledger: one million certificates
// unless JIT_SSH_BENCH_CERTS says otherwise.
func benchCerts(b *testing.B) int {
	if v := os.Getenv("JIT_SSH_BENCH_CERTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("JIT_SSH_BENCH_CERTS=%q: want a positive number", v)
		}
		return n
	}
	return 1_000_000
}

// bigLedger returns a ledger file holding n generated certificates.
func bigLedger(b *testing.B, n int) string {
	path := filepath.Join(b.TempDir(), "ledger.db")
	start := time.Now()
	if err := GenerateLedger(context.Background(), path, n); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d certificates in %s", n, time.Since(start).Round(time.Millisecond))
	return path
}

// GenerateLedger creates a ledger at path (schema by sqlite.Open) and fills
// it with n realistic certificates in one transaction, generated inside
// SQLite: a request per 100 certificates, spread over three host groups
// and a thousand users, issued a minute apart from 2024-01-01, each valid
// from two minutes before issue to five after.
func GenerateLedger(ctx context.Context, path string, n int) error {
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer raw.Close()
	raw.SetMaxOpenConns(1)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	const groups = `CASE (%s) %% 3 WHEN 0 THEN 'prod-db' WHEN 1 THEN 'staging' ELSE 'prod-web' END`
	reqGroup, certGroup := fmt.Sprintf(groups, "i"), fmt.Sprintf(groups, "i / 100")
	stmts := []string{
		`BEGIN IMMEDIATE`,
		`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?1)
		 INSERT INTO requests (id, host_group, requester, state, reason, duration_ns, created_at, updated_at, approved_at, version)
		 SELECT printf('r-%016d', i), ` + reqGroup + `, printf('user%03d', i % 1000), 'approved', printf('INC-%d routine work', i),
		        7200000000000, ?2 + i * 6000000000000, ?2 + i * 6000000000000, ?2 + i * 6000000000000, 2 FROM s`,
		`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?1)
		 INSERT INTO certificates (serial, key_id, host_group, principals, valid_after, valid_before, requester, request_id, approvers,
		                           fingerprint, ca_fingerprint, certificate, issued_at)
		 SELECT i + 1, printf('jit-ssh:user=user%03d:group=%s:req=r-%016d:by=bob', (i / 100) % 1000, ` + certGroup + `, i / 100),
		        ` + certGroup + `, '["' || ` + certGroup + ` || '"]', ?2 + i * 60000000000 - 120000000000, ?2 + i * 60000000000 + 300000000000,
		        printf('user%03d', (i / 100) % 1000), printf('r-%016d', i / 100), '["bob"]', 'SHA256:subject' || i, 'SHA256:ca',
		        'ssh-ed25519-cert-v01@openssh.com ' || hex(zeroblob(300)), ?2 + i * 60000000000 FROM s`,
		`COMMIT`,
	}
	conn, err := raw.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for i, q := range stmts {
		var args []any
		switch i {
		case 1:
			args = []any{(n + 99) / 100, base}
		case 2:
			args = []any{n, base}
		}
		if _, err := conn.ExecContext(ctx, q, args...); err != nil {
			_, _ = conn.ExecContext(ctx, `ROLLBACK`)
			return fmt.Errorf("generating the ledger: %w", err)
		}
	}
	var got int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM certificates`).Scan(&got); err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("generated %d certificates, want %d", got, n)
	}
	return nil
}

// peakMemory samples the Go heap while fn runs and returns the highest
// HeapInuse seen and the process's peak RSS (VmHWM, reset before fn where
// the kernel allows).
func peakMemory(fn func()) (heap uint64, rss uint64) {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return peak.Load(), vmHWM()
}

func vmHWM() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkListCertificates1M exports every certificate of a ledger of one
// million as JSON, straight from the store and through the HTTP API as
// `jit-ssh audit certs -o json` does, and reports the peak heap and RSS:
// both stay flat however large the ledger, because rows stream.
//
//	go test ./store/sqlite/ -run '^$' -bench ListCertificates1M -benchtime 1x
func BenchmarkListCertificates1M(b *testing.B) {
	// Generating the ledger takes most of a minute and a 1.5 GB file: run
	// it only when asked for by name, not as part of `-bench .`.
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "ListCertificates") {
		b.Skip("run it by name: go test ./store/sqlite/ -run '^$' -bench ListCertificates1M -benchtime 1x")
	}
	n := benchCerts(b)
	path := bigLedger(b, n)
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()

	export := func(b *testing.B, list func(w io.Writer) (int, error)) {
		b.Helper()
		var rows int
		var lerr error
		heap, rss := peakMemory(func() {
			for range b.N {
				rows, lerr = list(io.Discard)
			}
		})
		if lerr != nil {
			b.Fatal(lerr)
		}
		if rows != n {
			b.Fatalf("listed %d certificates, want %d", rows, n)
		}
		b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "certs/s")
	}

	b.Run("store", func(b *testing.B) {
		export(b, func(w io.Writer) (int, error) {
			enc := json.NewEncoder(w)
			rows := 0
			err := db.ListCertificates(ctx, ca.CertFilter{}, func(c *ca.Certificate) error { rows++; return enc.Encode(c) })
			return rows, err
		})
	})

	b.Run("api", func(b *testing.B) {
		dir := static.New(map[string]static.User{"carol": {Token: "dev-carol", Teams: []string{"security"}}})
		svc := approval.NewService(db, dir, nil, []string{"security"})
		srv := httptest.NewServer(api.NewServer(svc, nil, nil, db))
		defer srv.Close()
		c, err := api.NewClient(srv.URL, "dev-carol")
		if err != nil {
			b.Fatal(err)
		}
		export(b, func(w io.Writer) (int, error) {
			enc := json.NewEncoder(w)
			rows := 0
			err := c.ListCertificates(ctx, api.CertificateFilter{}, func(cert api.Certificate) error { rows++; return enc.Encode(cert) })
			return rows, err
		})
	})

	b.Run("valid-at", func(b *testing.B) {
		at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n/2) * time.Minute)
		var rows int
		for range b.N {
			rows = 0
			if err := db.ListCertificates(ctx, ca.CertFilter{ValidAt: at}, func(*ca.Certificate) error { rows++; return nil }); err != nil {
				b.Fatal(err)
			}
		}
		// Issued a minute apart, valid from 2m before to 5m after issue:
		// seven are valid at any instant in the middle.
		if rows != 7 {
			b.Fatalf("valid-at in the middle of the ledger found %d certificates, want 7", rows)
		}
	})
}
