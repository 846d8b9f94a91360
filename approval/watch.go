package approval

import (
	"context"
	"sync"
	"time"

	"github.com/jit-ssh/jit-ssh/ca"
)

// Wait returns request id once its version differs from version, or when
// maxWait passes or ctx ends, whichever is first. Like Get, it writes
// nothing.
func (s *Service) Wait(ctx context.Context, login, id string, version int64, maxWait time.Duration) (*ca.Request, error) {
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	for {
		changed := s.watch.subscribe(id)
		r, err := s.Get(ctx, login, id)
		if err != nil || r.Version != version {
			return r, err
		}
		select {
		case <-changed:
		case <-timer.C:
			return r, nil
		case <-ctx.Done():
			return r, nil
		}
	}
}

// watchers wakes long-polling waiters (Wait) when a request changes. It is
// in-process only; it is unrelated to the Notifier, which tells people.
type watchers struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

// subscribe returns a channel closed at the next change of request id.
func (n *watchers) subscribe(id string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = map[string]chan struct{}{}
	}
	c, ok := n.ch[id]
	if !ok {
		c = make(chan struct{})
		n.ch[id] = c
	}
	return c
}

// notify wakes the waiters of request id.
func (n *watchers) notify(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c, ok := n.ch[id]; ok {
		close(c)
		delete(n.ch, id)
	}
}

// WaitForChange is the long poll on request id: Wait from version, the
// version the caller last saw, or, when it names none (nil), from the
// request's version now, so the answer comes once the request changes or
// maxWait passes.
func (s *Service) WaitForChange(ctx context.Context, login, id string, version *int64, maxWait time.Duration) (*ca.Request, error) {
	if version == nil {
		cur, err := s.Get(ctx, login, id)
		if err != nil {
			return nil, err
		}
		version = &cur.Version
	}
	return s.Wait(ctx, login, id, *version, maxWait)
}
