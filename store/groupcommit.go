package store

import "sync"

// GroupCommit batches the writes of concurrent callers so that many share
// one transaction and one commit (one fsync or one round trip), the
// mechanism every ledger backend uses for certificates. There is no
// background goroutine: the first caller to find no batch running leads,
// commits whatever is queued (at most MaxGroupCommit), and hands the lead to the
// oldest caller still waiting. Each caller returns only after the batch
// holding its own operation finished; the commit function reports each
// operation's outcome in the operation itself (T is a pointer type).
// The zero value is ready to use.
type GroupCommit[T comparable] struct {
	mu      sync.Mutex
	queue   []groupOp[T]
	leading bool
	batches int
}

// MaxGroupCommit bounds how many operations share one commit.
const MaxGroupCommit = 256

type groupOp[T comparable] struct {
	op T
	// wake receives false when the op's batch has finished and true when
	// its caller must lead the next batch.
	wake chan bool
}

// Do queues op and returns once commit has run over a batch holding it.
// commit runs on one caller's goroutine at a time, never concurrently.
func (g *GroupCommit[T]) Do(op T, commit func(batch []T)) {
	me := groupOp[T]{op: op, wake: make(chan bool, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, me)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if !lead && !<-me.wake {
		return
	}
	// Lead: commit everything queued (including op), then pass the lead on.
	g.mu.Lock()
	n := min(len(g.queue), MaxGroupCommit)
	batch := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()
	ops := make([]T, n)
	for i, o := range batch {
		ops[i] = o.op
	}
	commit(ops)
	g.mu.Lock()
	g.batches++
	if len(g.queue) > 0 {
		g.queue[0].wake <- true
	} else {
		g.leading = false
	}
	g.mu.Unlock()
	for _, o := range batch {
		if o.op != op {
			o.wake <- false
		}
	}
}

// Batches returns how many batches have been committed (or failed).
func (g *GroupCommit[T]) Batches() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.batches
}

// Queued returns how many operations wait for a batch.
func (g *GroupCommit[T]) Queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// Leading reports whether a batch is being committed.
func (g *GroupCommit[T]) Leading() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.leading
}
