package store_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jit-ssh/jit-ssh/store"
)

type gcOp struct{ committed int }

// TestGroupCommit: every operation is in exactly one batch, its caller
// returns only after that batch ran, and batches never run at once.
func TestGroupCommit(t *testing.T) {
	var g store.GroupCommit[*gcOp]
	var running, overlap atomic.Int32
	var wg sync.WaitGroup
	const n = 600
	ops := make([]*gcOp, n)
	for i := range ops {
		ops[i] = &gcOp{}
		wg.Add(1)
		go func(op *gcOp) {
			defer wg.Done()
			g.Do(op, func(batch []*gcOp) {
				if running.Add(1) > 1 {
					overlap.Add(1)
				}
				if len(batch) > store.MaxGroupCommit {
					t.Errorf("batch of %d, want at most %d", len(batch), store.MaxGroupCommit)
				}
				for _, o := range batch {
					o.committed++
				}
				running.Add(-1)
			})
			if op.committed != 1 {
				t.Errorf("Do returned with the op committed %d times, want 1", op.committed)
			}
		}(ops[i])
	}
	wg.Wait()
	if overlap.Load() != 0 {
		t.Errorf("%d batches ran while another was running", overlap.Load())
	}
	if b := g.Batches(); b < 1 || b > n {
		t.Errorf("%d batches for %d ops", b, n)
	}
	if g.Queued() != 0 || g.Leading() {
		t.Errorf("after all callers returned: queued %d, leading %v; want 0, false", g.Queued(), g.Leading())
	}
}
