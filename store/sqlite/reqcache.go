package sqlite

import (
	"slices"
	"sync"

	"github.com/jit-ssh/jit-ssh/ca"
)

// requestCacheSize bounds the request cache; when full it starts over.
const requestCacheSize = 4096

// requestCache keeps requests (with their reviews) as last read, so that a
// burst of certificates under one grant reads the grant from the ledger
// once. This process is the ledger's only writer and drops the whole cache
// after every write that touches requests or reviews (dropAll). A read
// that raced such a write is not cached: put is refused unless nothing was
// dropped since the read began (the generation it started under).
type requestCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]*ca.Request
}

// get returns a copy of the cached request, or the generation a read from
// the ledger must pass to put.
func (c *requestCache) get(id string) (*ca.Request, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.m[id]; ok {
		return cloneRequest(r), c.gen
	}
	return nil, c.gen
}

// put caches a copy of r, read from the ledger under generation gen.
func (c *requestCache) put(r *ca.Request, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.m == nil || len(c.m) >= requestCacheSize {
		c.m = make(map[string]*ca.Request)
	}
	c.m[r.ID] = cloneRequest(r)
}

// dropAll forgets every cached request and refuses puts of reads that
// began before it.
func (c *requestCache) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.m = nil
}

func cloneRequest(r *ca.Request) *ca.Request {
	d := *r
	d.Reviews = slices.Clone(r.Reviews)
	return &d
}
