package middleware

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// cacheShards splits the verified-token cache so that concurrent requests
// rarely meet on one lock. A power of two.
const cacheShards = 64

// entryOverhead is the memory an entry costs beyond its claims JSON: the map
// slot, the key, the entry, the Claims struct, its strings and scope lists.
// Measured: 1,156 bytes of heap per cached 853-byte Auth0-shaped token whose
// claims JSON is 329 bytes, so 832 beyond the JSON.
const entryOverhead = 832

// tokenCache remembers verified tokens by the SHA-256 of the whole token. The
// token itself is never stored: a hit needs the same 256-bit hash, so no
// collision can turn one token into another's hit.
type tokenCache struct {
	shards     [cacheShards]cacheShard
	maxEntries int   // per shard
	maxBytes   int64 // per shard

	hits, misses, evictions atomic.Uint64
}

type cacheShard struct {
	mu      sync.RWMutex // guards entries and bytes
	entries map[[sha256.Size]byte]*cacheEntry
	bytes   int64
}

// cacheEntry is a verified token: its claims (never modified after insert)
// and what a hit must re-check.
type cacheEntry struct {
	claims *Claims
	kid    string
	keyPub publicKey // the key that verified it; a hit requires the issuer still publishes it
	size   int64
}

// publicKey is what every crypto public key type implements.
type publicKey interface {
	Equal(x crypto.PublicKey) bool
}

// sameKey reports whether b is the key a. The common case — the same
// snapshot — is a pointer comparison; an RSA key re-fetched by a refresh is
// compared by value without the allocations of rsa.PublicKey.Equal.
func sameKey(a publicKey, b crypto.PublicKey) bool {
	if ra, ok := a.(*rsa.PublicKey); ok {
		rb, ok := b.(*rsa.PublicKey)
		return ok && (ra == rb || ra.E == rb.E && ra.N.Cmp(rb.N) == 0)
	}
	return a.Equal(b)
}

func newTokenCache(maxEntries int, maxBytes int64) *tokenCache {
	c := &tokenCache{
		maxEntries: max(1, maxEntries/cacheShards),
		maxBytes:   max(1, maxBytes/cacheShards),
	}
	for i := range c.shards {
		c.shards[i].entries = make(map[[sha256.Size]byte]*cacheEntry)
	}
	return c
}

// tokenKey hashes the token without copying it: the bytes are only read.
func tokenKey(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

func (c *tokenCache) shard(key *[sha256.Size]byte) *cacheShard {
	return &c.shards[key[0]&(cacheShards-1)]
}

func (c *tokenCache) get(key *[sha256.Size]byte) *cacheEntry {
	s := c.shard(key)
	s.mu.RLock()
	e := s.entries[*key]
	s.mu.RUnlock()
	return e
}

// fits reports whether an entry of this size may be cached at all: one larger
// than a shard's share of the byte bound is not, so the bound always holds.
func (c *tokenCache) fits(size int64) bool { return size <= c.maxBytes }

// put stores an entry, evicting others when the shard is over its bounds:
// expired entries first, then arbitrary ones (map order is randomised), so a
// flood of new tokens cannot grow the cache past its bound.
func (c *tokenCache) put(key *[sha256.Size]byte, e *cacheEntry, now time.Time) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.entries[*key]; ok {
		s.bytes -= old.size
	}
	s.entries[*key] = e
	s.bytes += e.size
	if len(s.entries) <= c.maxEntries && s.bytes <= c.maxBytes {
		return
	}
	for k, old := range s.entries {
		if k != *key && now.After(old.claims.ExpiresAt) {
			s.drop(k, old)
			c.evictions.Add(1)
		}
	}
	for k, old := range s.entries {
		if len(s.entries) <= c.maxEntries && s.bytes <= c.maxBytes {
			break
		}
		if k != *key {
			s.drop(k, old)
			c.evictions.Add(1)
		}
	}
}

func (c *tokenCache) remove(key *[sha256.Size]byte) {
	s := c.shard(key)
	s.mu.Lock()
	if e, ok := s.entries[*key]; ok {
		s.drop(*key, e)
	}
	s.mu.Unlock()
}

// drop deletes an entry; the caller holds s.mu.
func (s *cacheShard) drop(k [sha256.Size]byte, e *cacheEntry) {
	delete(s.entries, k)
	s.bytes -= e.size
}

func (c *tokenCache) stats() CacheStats {
	st := CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		st.Entries += len(s.entries)
		st.Bytes += s.bytes
		s.mu.RUnlock()
	}
	return st
}

// CacheStats describes the verified-token cache.
type CacheStats struct {
	Hits      uint64 // validations answered from the cache
	Misses    uint64 // validations that verified the token
	Evictions uint64 // entries dropped to keep the cache within its bounds
	Entries   int    // entries now
	Bytes     int64  // estimated memory of the entries now
}
