package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// loadResult is the outcome of one closed-loop load run.
type loadResult struct {
	N        int
	Errors   int
	Elapsed  time.Duration
	Lat      []time.Duration // sorted
	FirstErr string
}

func (r loadResult) perSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.N) / r.Elapsed.Seconds()
}

func (r loadResult) pct(p float64) float64 {
	if len(r.Lat) == 0 {
		return 0
	}
	i := min(int(float64(len(r.Lat))*p), len(r.Lat)-1)
	return ms(r.Lat[i])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// merge adds o's counts and latencies to r (for interleaved rounds).
func (r loadResult) merge(o loadResult) loadResult {
	r.N += o.N
	r.Errors += o.Errors
	r.Elapsed += o.Elapsed
	r.Lat = append(r.Lat, o.Lat...)
	slices.Sort(r.Lat)
	if r.FirstErr == "" {
		r.FirstErr = o.FirstErr
	}
	return r
}

// newHTTPClient returns a client that keeps one connection per worker.
func newHTTPClient(workers int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = workers * 2
	t.MaxIdleConnsPerHost = workers * 2
	t.MaxConnsPerHost = 0
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// request builds the i-th request of a worker.
type request func(ctx context.Context, worker, i int) (*http.Request, error)

// runLoad runs workers closed-loop clients for d; every answer must have
// status want, else it counts as an error.
func runLoad(hc *http.Client, workers int, d time.Duration, want int, mk request) loadResult {
	ctx := context.Background()
	var wg sync.WaitGroup
	lats := make([][]time.Duration, workers)
	var errs atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				req, err := mk(ctx, w, i)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body)))
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	res := loadResult{Elapsed: time.Since(start), Errors: int(errs.Load())}
	for _, l := range lats {
		res.Lat = append(res.Lat, l...)
	}
	res.N = len(res.Lat)
	slices.Sort(res.Lat)
	if v, ok := firstErr.Load().(string); ok {
		res.FirstErr = v
	}
	return res
}

// subjectKeys returns n fresh ed25519 public keys in authorized_keys form.
// The load reuses them round-robin: the server signs whatever it is given,
// and generating keys would only burn the cores the server needs.
func subjectKeys(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		sp, err := ssh.NewPublicKey(pub)
		if err != nil {
			return nil, err
		}
		out[i] = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	}
	return out, nil
}

// issueRequests returns the request maker for POST /v1/certificates on
// request id as the holder of token.
func issueRequests(base, token, requestID string, keys []string) (request, error) {
	bodies := make([][]byte, len(keys))
	for i, k := range keys {
		b, err := json.Marshal(map[string]string{"request_id": requestID, "public_key": k})
		if err != nil {
			return nil, err
		}
		bodies[i] = b
	}
	url := base + "/v1/certificates"
	return func(ctx context.Context, w, i int) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[(w*7919+i)%len(bodies)]))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		return req, nil
	}, nil
}

// vaultSignRequests returns the request maker for Vault's own
// <mount>/sign/<role>, with what jit-ssh would ask for.
func vaultSignRequests(addr, token, mount, role, requestID string, keys []string) (request, error) {
	bodies := make([][]byte, len(keys))
	for i, k := range keys {
		b, err := json.Marshal(map[string]any{
			"public_key": k, "valid_principals": "staging", "ttl": 300, "cert_type": "user",
			"key_id":     "jit-ssh:user=alice:group=staging:req=" + requestID + ":by=",
			"extensions": map[string]string{"permit-pty": ""}, "critical_options": map[string]string{},
		})
		if err != nil {
			return nil, err
		}
		bodies[i] = b
	}
	url := addr + "/v1/" + mount + "/sign/" + role
	return func(ctx context.Context, w, i int) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[(w*7919+i)%len(bodies)]))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Vault-Token", token)
		return req, nil
	}, nil
}
