// Package ttlcache is the bounded cache of tokenward's two token caches: the
// verified-token cache (middleware) and the opaque-answer cache (opaque).
// Entries are keyed by the SHA-256 of a token (internal/tokenhash), never by the
// token, and carry an expiry; the caller gives the cost of a value in bytes.
//
// The cache is split into shards, each behind its own lock, so that
// concurrent requests rarely meet. Each shard holds at most its share of the
// entry bound and of the byte bound, so the whole cache holds within both
// under any concurrency; an entry costing more than a shard's share of the
// bytes is not stored at all.
//
// # Eviction
//
// When a Put takes a shard over a bound, entries past their expiry go first
// (all of them, found without a scan while none can have expired), then, one
// at a time, the entry that expires soonest among a few sampled ones (Go's
// map order starts at a random place). Sampling, not an LRU or LFU list: a
// hit then takes only a read lock and writes nothing shared, an entry
// carries no list pointers (the byte bound is about memory per entry), and a
// token cache's entries are worth their remaining lifetime, which the soonest
// expiry approximates. A flood of new keys evicts other entries, never grows
// the cache.
//
// # Expired entries
//
// [Cache.Get] returns an entry past its expiry (with that expiry) until it is
// evicted, replaced or removed: whether such an entry may still be used is
// the caller's rule (opaque serves an active answer past its TTL while the
// issuer is busy, never past the token's own exp; the middleware never
// does).
// A cache whose callers never use an expired entry can have them dropped
// before the bounds need the room: [Cache.DropExpired] (opaque's refusals).
//
// # Security
//
//   - A hit needs the whole 256-bit key: no collision of a shorter hash can
//     turn one token into another's hit.
//   - The bounds hold under any sequence of Puts: memory is bounded by the
//     caller's cost estimates, which its tests hold to the heap measured.
package ttlcache

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Key is the SHA-256 of a token, as internal/tokenhash returns it.
type Key = [32]byte

// maxShards bounds the shards; minPerShard is the fewest entries a shard is
// given room for when the cache is split, so that a small cache keeps its
// bound close to exactly (one shard when it holds fewer than 2×minPerShard).
const (
	maxShards   = 64
	minPerShard = 64
)

// sampleSize is how many entries an eviction looks at to choose a victim.
const sampleSize = 8

// Cache is a bounded cache of V by [Key]. Its zero value is not usable; see
// [New].
type Cache[V any] struct {
	shards     []shard[V]
	mask       uint8 // len(shards)-1, a power of two less one
	maxEntries int   // per shard
	maxBytes   int64 // per shard
	cost       func(V) int64
	now        func() time.Time
	sweep      bool // DropExpired: expired entries go without waiting for the bounds
}

type shard[V any] struct {
	mu        sync.RWMutex // guards items, bytes, minExp, sweepAt and evictions
	items     map[Key]item[V]
	bytes     int64
	minExp    int64 // no item expires before this (Unix ns); may be early
	sweepAt   int   // with DropExpired: the size at which Put next drops expired entries
	evictions uint64

	hits, misses atomic.Uint64

	_ [64]byte // keeps shards' hot words on separate cache lines
}

// item is an entry in a shard's map. Its cost is not stored but asked of
// the value: 8 bytes in every slot of the map.
type item[V any] struct {
	v   V
	exp int64 // Unix nanoseconds
}

// New returns a cache of at most maxEntries entries whose costs add up to
// at most maxBytes (each at least 1). cost returns a value's estimated
// memory in bytes, the same every time for the same value. now is read only
// to evict.
func New[V any](maxEntries int, maxBytes int64, cost func(V) int64, now func() time.Time) *Cache[V] {
	maxEntries, maxBytes = max(1, maxEntries), max(1, maxBytes)
	n := 1
	for n < maxShards && maxEntries/(2*n) >= minPerShard && maxBytes/int64(2*n) >= 1 {
		n *= 2
	}
	c := &Cache[V]{
		shards:     make([]shard[V], n),
		mask:       uint8(n - 1),
		maxEntries: maxEntries / n,
		maxBytes:   maxBytes / int64(n),
		cost:       cost,
		now:        now,
	}
	for i := range c.shards {
		c.shards[i].items = make(map[Key]item[V])
		c.shards[i].minExp = math.MaxInt64
	}
	return c
}

func (c *Cache[V]) shard(k *Key) *shard[V] { return &c.shards[k[0]&c.mask] }

// DropExpired makes Put drop expired entries before the bounds require it,
// for a cache whose callers never use an entry past its expiry (the opaque
// checker's refusals). Otherwise a steady trickle of short-lived entries
// (made-up tokens, each refused once) fills the cache to its entry bound
// with dead entries, and the memory they hold grows for as long as that
// takes. A shard drops them whenever it has doubled since it last did (at
// least minPerShard entries), so it holds at most about twice its live
// entries, at an amortized constant cost per Put. Call it before the cache
// is used.
func (c *Cache[V]) DropExpired() {
	c.sweep = true
	for i := range c.shards {
		c.shards[i].sweepAt = minPerShard
	}
}

// unixNano is t in Unix nanoseconds, clamped to what an int64 holds.
func unixNano(t time.Time) int64 {
	switch s := t.Unix(); {
	case s >= math.MaxInt64/int64(time.Second):
		return math.MaxInt64
	case s <= math.MinInt64/int64(time.Second):
		return math.MinInt64
	}
	return t.UnixNano()
}

// Get returns the entry of k and its expiry, expired or not: see the
// package documentation. It counts nothing: what a hit is, the caller says
// ([Cache.Hit], [Cache.Miss]).
func (c *Cache[V]) Get(k *Key) (v V, expires time.Time, ok bool) {
	s := c.shard(k)
	s.mu.RLock()
	it, ok := s.items[*k]
	s.mu.RUnlock()
	if !ok {
		return v, time.Time{}, false
	}
	return it.v, time.Unix(0, it.exp), true
}

// Put stores v under k until expires, replacing any entry of k, and evicts
// others while the shard is over its bounds (never v). It reports false, and
// stores nothing, when v alone costs more than a shard's share of the bytes.
func (c *Cache[V]) Put(k *Key, v V, expires time.Time) bool {
	cost := c.cost(v)
	if cost > c.maxBytes {
		return false
	}
	s := c.shard(k)
	exp := unixNano(expires)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.items[*k]; ok {
		s.bytes -= c.cost(old.v)
	}
	s.items[*k] = item[V]{v: v, exp: exp}
	s.bytes += cost
	s.minExp = min(s.minExp, exp)
	over := len(s.items) > c.maxEntries || s.bytes > c.maxBytes
	sweep := c.sweep && len(s.items) >= s.sweepAt
	if !over && !sweep {
		return true
	}
	if t := unixNano(c.now()); t >= s.minExp {
		// Some entry may have expired: drop them all, and learn the
		// earliest expiry of the rest.
		s.minExp = math.MaxInt64
		for kk, it := range s.items {
			if t >= it.exp && kk != *k {
				s.evict(&kk, c.cost(it.v))
				continue
			}
			s.minExp = min(s.minExp, it.exp)
		}
	}
	if sweep {
		s.sweepAt = max(2*len(s.items), minPerShard)
	}
	for len(s.items) > c.maxEntries || s.bytes > c.maxBytes {
		var victim Key
		var victimV V
		soonest, n := int64(math.MaxInt64), 0
		for kk, it := range s.items {
			if kk == *k {
				continue
			}
			if n == 0 || it.exp < soonest {
				victim, victimV, soonest = kk, it.v, it.exp
			}
			if n++; n == sampleSize {
				break
			}
		}
		if n == 0 {
			break // only v is left, within the bounds (cost <= maxBytes)
		}
		s.evict(&victim, c.cost(victimV))
	}
	return true
}

// evict drops an entry to keep the bounds; the caller holds s.mu.
func (s *shard[V]) evict(k *Key, cost int64) {
	delete(s.items, *k)
	s.bytes -= cost
	s.evictions++
}

// Remove drops the entry of k, if any. It is not counted as an eviction.
func (c *Cache[V]) Remove(k *Key) {
	s := c.shard(k)
	s.mu.Lock()
	if it, ok := s.items[*k]; ok {
		delete(s.items, *k)
		s.bytes -= c.cost(it.v)
	}
	s.mu.Unlock()
}

// Hit counts a lookup of k that the cache answered. Counters are kept per
// shard, so that concurrent hits do not share one word.
func (c *Cache[V]) Hit(k *Key) { c.shard(k).hits.Add(1) }

// Miss counts a lookup of k that the cache could not answer.
func (c *Cache[V]) Miss(k *Key) { c.shard(k).misses.Add(1) }

// Stats describes a cache.
type Stats struct {
	Hits      uint64 // counted by [Cache.Hit]
	Misses    uint64 // counted by [Cache.Miss]
	Evictions uint64 // entries dropped by Put to keep the bounds
	Entries   int    // entries now, expired ones not yet evicted included
	Bytes     int64  // the costs of the entries now
}

// Stats returns the counters and the size of c.
func (c *Cache[V]) Stats() Stats {
	var st Stats
	for i := range c.shards {
		s := &c.shards[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
		s.mu.RLock()
		st.Evictions += s.evictions
		st.Entries += len(s.items)
		st.Bytes += s.bytes
		s.mu.RUnlock()
	}
	return st
}

// Len returns the number of entries, expired ones not yet evicted included.
func (c *Cache[V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.items)
		s.mu.RUnlock()
	}
	return n
}
