package oidc

import (
	"sync"
	"time"
)

// replayCache remembers the jti of every accepted token until the token
// expires, so a token is accepted once. It is bounded: when it holds max
// unexpired tokens it refuses new ones (fail closed) rather than forget one
// that could then be replayed.
type replayCache struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time // jti -> exp
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, seen: map[string]time.Time{}}
}

// errReplayFull and errReplayed are what add reports besides success.
type replayResult int

const (
	replayFresh replayResult = iota
	replaySeen
	replayFull
)

// add records jti, valid until exp, at now: replaySeen if it was recorded
// before and has not expired, replayFull if the cache is full of unexpired
// tokens.
func (c *replayCache) add(jti string, exp, now time.Time) replayResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.seen[jti]; ok && !now.After(e) {
		return replaySeen
	}
	if len(c.seen) >= c.max {
		for k, e := range c.seen {
			if now.After(e) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= c.max {
			return replayFull
		}
	}
	c.seen[jti] = exp
	return replayFresh
}
