package policy

// This file is the verified-token cache. It maps the SHA-256 of a token
// (never the token) to the Principal it proved, until the token's exp. It
// is bounded: when a shard is full an arbitrary entry is evicted (Go's map
// iteration order is randomised), which keeps eviction O(1) and gives a
// flood of distinct valid tokens no way to pin chosen entries.

import (
	"sync"
	"time"
)

const authnCacheShards = 16

type authnCache struct {
	shards [authnCacheShards]authnCacheShard
}

type authnCacheShard struct {
	mu  sync.Mutex
	max int
	m   map[[32]byte]authnCacheEntry
}

type authnCacheEntry struct {
	p     *Principal
	until time.Time
}

func newAuthnCache(size int) *authnCache {
	c := &authnCache{}
	per := (size + authnCacheShards - 1) / authnCacheShards
	for i := range c.shards {
		c.shards[i].max = per
		c.shards[i].m = make(map[[32]byte]authnCacheEntry)
	}
	return c
}

// get returns the Principal cached for the token hash while now is before
// its exp. A nil cache holds nothing. The Principal is shared: callers
// clone it before handing it out.
func (c *authnCache) get(sum [32]byte, now time.Time) (*Principal, bool) {
	if c == nil {
		return nil, false
	}
	s := &c.shards[sum[0]%authnCacheShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[sum]
	if !ok {
		return nil, false
	}
	if !now.Before(e.until) {
		// From exp on, the token goes through full verification again,
		// which applies the clock skew and answers token-expired.
		delete(s.m, sum)
		return nil, false
	}
	return e.p, true
}

func (c *authnCache) put(sum [32]byte, p *Principal, until time.Time) {
	if c == nil {
		return
	}
	s := &c.shards[sum[0]%authnCacheShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[sum]; !ok && len(s.m) >= s.max {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[sum] = authnCacheEntry{p: p, until: until}
}

func (c *authnCache) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
