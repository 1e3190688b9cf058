package opaque

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/tokenward/tokenward/internal/tokenhash"
	"github.com/tokenward/tokenward/middleware"
)

// key is the SHA-256 of a token: what the cache and the single-flight are
// keyed by. The token itself is never stored.
type key = [sha256.Size]byte

// tokenKey is the cache and single-flight key of a token.
func tokenKey(token string) key { return tokenhash.Sum(token) }

// entryOverhead estimates what an entry costs beyond its claims JSON: the map
// slot, the key, the entry, the Claims struct and its strings.
const entryOverhead = 384

// sampleSize is how many entries eviction looks at to choose a victim.
const sampleSize = 8

// entry is one answer of the issuer, never modified once stored: the claims
// it vouched for (positive), or the error it amounts to (negative).
type entry struct {
	claims  *middleware.Claims // nil for a negative answer
	err     *middleware.Error  // nil for a positive answer
	expires time.Time
	// staleUntil is, for a positive answer, until when it may still be
	// served after expires while every slot for issuer calls is taken: never
	// past the token's exp. Zero (never) for a negative answer.
	staleUntil time.Time
	size       int64
}

// cache remembers the issuer's answers by the SHA-256 of the token. Positive
// and negative answers are bounded apart, so a flood of made-up tokens (each
// one a negative answer) cannot evict the answers for real ones.
type cache struct {
	shards     []shard
	maxEntries int   // per shard, for each of pos and neg
	maxBytes   int64 // per shard, for pos
}

type shard struct {
	mu    sync.RWMutex // guards pos, neg and bytes
	pos   map[key]*entry
	neg   map[key]*entry
	bytes int64 // estimated size of pos
}

func newCache(maxEntries int, maxBytes int64) *cache {
	n := 16
	if maxEntries < n*64 {
		n = 1 // a small cache keeps its bound exactly
	}
	c := &cache{
		shards:     make([]shard, n),
		maxEntries: max(1, maxEntries/n),
		maxBytes:   max(1, maxBytes/int64(n)),
	}
	for i := range c.shards {
		c.shards[i].pos = make(map[key]*entry)
		c.shards[i].neg = make(map[key]*entry)
	}
	return c
}

func (c *cache) shard(k *key) *shard { return &c.shards[int(k[0])%len(c.shards)] }

// get returns the unexpired answer for k, or nil.
func (c *cache) get(k *key, now time.Time) *entry {
	if e, fresh := c.lookup(k, now); fresh {
		return e
	}
	return nil
}

// lookup returns the answer for k: an unexpired one of either kind (fresh),
// or a positive one past its expiry but before its staleUntil (not fresh),
// which only a check refused for want of a slot may use. Otherwise nil.
func (c *cache) lookup(k *key, now time.Time) (e *entry, fresh bool) {
	s := c.shard(k)
	s.mu.RLock()
	e = s.pos[*k]
	if e == nil {
		e = s.neg[*k]
	}
	s.mu.RUnlock()
	switch {
	case e == nil:
		return nil, false
	case now.Before(e.expires):
		return e, true
	case e.claims != nil && now.Before(e.staleUntil):
		return e, false
	}
	return nil, false // an expired entry is replaced by the next put, or evicted
}

// put stores an answer, evicting others when the shard is over its bounds.
// A positive answer too large for a shard's share of the byte bound is not
// stored at all, so the bound always holds.
func (c *cache) put(k *key, e *entry, now time.Time) {
	if e.size > c.maxBytes {
		return
	}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	// A key holds one answer: a new one replaces the other kind too.
	if old, ok := s.pos[*k]; ok {
		delete(s.pos, *k)
		s.bytes -= old.size
	}
	delete(s.neg, *k)
	if e.claims != nil {
		s.pos[*k] = e
		s.bytes += e.size
		for len(s.pos) > c.maxEntries || s.bytes > c.maxBytes {
			if !s.evict(s.pos, k, now) {
				break
			}
		}
		return
	}
	s.neg[*k] = e
	for len(s.neg) > c.maxEntries {
		if !s.evict(s.neg, k, now) {
			break
		}
	}
}

// evict drops from m the expired entries among a few sampled ones (map
// order is randomised) or, when none has expired, the sampled entry that
// expires first. It never drops keep, the entry just stored, and reports
// whether it dropped anything. The caller holds s.mu.
func (s *shard) evict(m map[key]*entry, keep *key, now time.Time) bool {
	var victim key
	var soonest *entry
	dropped, n := false, 0
	for k, e := range m {
		if k == *keep {
			continue
		}
		if !now.Before(e.expires) {
			s.drop(m, k, e)
			dropped = true
		} else if soonest == nil || e.expires.Before(soonest.expires) {
			victim, soonest = k, e
		}
		if n++; n >= sampleSize {
			break
		}
	}
	if !dropped && soonest != nil {
		s.drop(m, victim, soonest)
		dropped = true
	}
	return dropped
}

func (s *shard) drop(m map[key]*entry, k key, e *entry) {
	delete(m, k)
	if e.claims != nil {
		s.bytes -= e.size
	}
}

// len returns the number of entries, expired ones included.
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.pos) + len(s.neg)
		s.mu.RUnlock()
	}
	return n
}
