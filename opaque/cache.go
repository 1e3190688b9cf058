package opaque

import (
	"crypto/sha256"
	"math"
	"time"

	"github.com/tokenward/tokenward/internal/tokenhash"
	"github.com/tokenward/tokenward/internal/ttlcache"
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

// entry is one answer of the issuer, never modified once stored: the claims
// it vouched for (positive), or the error it amounts to (negative).
type entry struct {
	claims *middleware.Claims // nil for a negative answer
	err    *middleware.Error  // nil for a positive answer
	// staleUntil is, for a positive answer, until when it may still be
	// served after it expires while every slot for issuer calls is taken:
	// never past the token's exp. Zero (never) for a negative answer.
	staleUntil time.Time
	size       int64 // of a positive answer
}

func (e *entry) cost() int64 { return e.size }

// cache remembers the issuer's answers by the SHA-256 of the token. Positive
// and negative answers are bounded apart, so a flood of made-up tokens (each
// one a negative answer) cannot evict the answers for real ones. A key holds
// one answer of either kind.
type cache struct {
	pos, neg *ttlcache.Cache[*entry] // bytes bound pos only
}

func newCache(maxEntries int, maxBytes int64, now func() time.Time) *cache {
	c := &cache{
		pos: ttlcache.New(maxEntries, maxBytes, (*entry).cost, now),
		// A negative answer costs nothing against the byte bound: the
		// entry bound alone holds them (a few hundred bytes each).
		neg: ttlcache.New(maxEntries, math.MaxInt64, func(*entry) int64 { return 0 }, now),
	}
	// An expired refusal is never used (only active answers serve past
	// their expiry, for StaleIfBusy): drop them as they expire, so that a
	// trickle of made-up tokens does not fill the cache with dead ones.
	c.neg.DropExpired()
	return c
}

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
	e, expires, ok := c.pos.Get(k)
	if !ok {
		if e, expires, ok = c.neg.Get(k); !ok {
			return nil, false
		}
	}
	switch {
	case now.Before(expires):
		return e, true
	case e.claims != nil && now.Before(e.staleUntil):
		return e, false
	}
	return nil, false // an expired entry is replaced by the next put, or evicted
}

// put stores an answer until expires, in place of any other answer for k. A
// positive answer too large for the cache's byte bound is not stored.
func (c *cache) put(k *key, e *entry, expires time.Time) {
	if e.claims != nil {
		if c.pos.Put(k, e, expires) {
			c.neg.Remove(k)
		}
		return
	}
	c.neg.Put(k, e, expires)
	c.pos.Remove(k)
}

// len returns the number of entries, expired ones included.
func (c *cache) len() int { return c.pos.Len() + c.neg.Len() }
