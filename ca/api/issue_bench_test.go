package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jit-ssh/jit-ssh/approval"
	"github.com/jit-ssh/jit-ssh/approval/static"
	"github.com/jit-ssh/jit-ssh/ca"
	"github.com/jit-ssh/jit-ssh/store/sqlite"
)

// BenchmarkIssueHTTP is POST /v1/certificates on an open grant through the
// whole service (auth, policy, file signer, durable ledger), 8 clients per
// core as in the bench's embedded load. Profile it with
//
//	go test -run '^$' -bench IssueHTTP -cpuprofile cpu.out ./ca/api/
func BenchmarkIssueHTTP(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	signer, err := ca.LoadOrCreateFileSigner(filepath.Join(dir, "ca_ed25519"))
	if err != nil {
		b.Fatal(err)
	}
	// The ledger signs like the server's: checkpoints with the CA's file key.
	db, err := sqlite.Open(ctx, filepath.Join(dir, "ledger.db"), sqlite.WithCheckpointSigner(signer.DataSigner()))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	dirUsers := static.New(map[string]static.User{"alice": {Token: "tok-alice", Teams: []string{"backend"}}})
	pol := &approval.Policy{Group: "staging", Principals: []string{"staging"}, Requesters: []string{"backend"},
		MaxDuration: time.Hour, CertTTL: 5 * time.Minute, Extensions: []string{"permit-pty"}}
	svc := approval.NewService(db, dirUsers, []*approval.Policy{pol}, []string{"security"})
	srv := NewServer(svc, ca.NewIssuer(signer, db), signer, db)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	req, err := svc.Create(ctx, "alice", "staging", time.Hour, "bench")
	if err != nil {
		b.Fatal(err)
	}
	var bodies [][]byte
	for range 64 {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		sp, err := ssh.NewPublicKey(pub)
		if err != nil {
			b.Fatal(err)
		}
		body, err := json.Marshal(IssueRequest{RequestID: req.ID, PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))})
		if err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, body)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	hc := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			r, err := http.NewRequest(http.MethodPost, ts.URL+"/v1/certificates", bytes.NewReader(bodies[i%len(bodies)]))
			if err != nil {
				b.Error(err)
				return
			}
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer tok-alice")
			resp, err := hc.Do(r)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("status %s", resp.Status)
				return
			}
		}
	})
}
