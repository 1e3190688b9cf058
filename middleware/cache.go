package middleware

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"strings"
	"sync"

	"github.com/tokenward/tokenward/internal/tokenhash"
	"github.com/tokenward/tokenward/internal/ttlcache"
)

// entryOverhead is the memory an entry costs beyond its data block and its
// own shape: its map slot in the cache (32-byte key, 40-byte item, at the
// map's average load) and the rounding of the block up to its allocation
// size class. The interned key reference, and the shape when it is shared
// (see [keyRef.shape]), are shared by many entries and not counted.
// TestCacheEntryBytes holds the estimate to within 20% of the heap
// measured: about 250 bytes per entry for an Auth0-shaped token (a
// 120-byte data block, audiences and scopes shared).
const entryOverhead = 130

// tokenCache remembers verified tokens by the SHA-256 of the whole token
// (the token itself is never stored), until exp plus the leeway.
type tokenCache = ttlcache.Cache[cacheEntry]

// keyRef is a key that verified tokens, interned so that entries share it.
// It also interns the scope sets of those tokens.
type keyRef struct {
	iss  string
	keys KeySet
	kid  string    // as in the tokens' header
	pub  publicKey // a hit requires the issuer still publishes it
	alg  string    // the key's published alg then; a hit requires it unchanged

	mu     sync.Mutex        // guards shapes
	shapes map[string]*shape // by shapeKey; at most maxSharedShapes
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

// identicalKey reports whether a and b are the same key object (not merely
// equal keys), for interning.
func identicalKey(a, b crypto.PublicKey) bool {
	switch a := a.(type) {
	case *rsa.PublicKey:
		b, ok := b.(*rsa.PublicKey)
		return ok && a == b
	case *ecdsa.PublicKey:
		b, ok := b.(*ecdsa.PublicKey)
		return ok && a == b
	case ed25519.PublicKey:
		b, ok := b.(ed25519.PublicKey)
		return ok && len(a) > 0 && len(a) == len(b) && &a[0] == &b[0]
	}
	return false
}

// tokenKey is the cache key of a token: its SHA-256.
func tokenKey(token string) ttlcache.Key { return tokenhash.Sum(token) }

func (e cacheEntry) size() int64 {
	n := int64(len(e.data)) + entryOverhead
	if e.data[eFlags]&flagSharedShape == 0 {
		n += ownShapeBytes(e.shape)
	}
	return n
}

// CacheStats describes the verified-token cache.
type CacheStats struct {
	Hits      uint64 // validations answered from the cache
	Misses    uint64 // validations that verified the token
	Evictions uint64 // entries dropped to keep the cache within its bounds
	Entries   int    // entries now
	Bytes     int64  // estimated memory of the entries now
}

func cacheStats(s ttlcache.Stats) CacheStats {
	return CacheStats{Hits: s.Hits, Misses: s.Misses, Evictions: s.Evictions, Entries: s.Entries, Bytes: s.Bytes}
}

// keyRefs interns the keys that verified cached tokens.
type keyRefs struct {
	mu   sync.Mutex // guards list
	list []*keyRef  // most recent last; at most maxKeyRefs
}

// maxKeyRefs bounds the interned keys. Keys are interned only after they
// verified a token, so this is about key rotations, not attackers; an entry
// keeps its own reference alive after it leaves the list.
const maxKeyRefs = 64

func (r *keyRefs) get(iss string, keys KeySet, kid, alg string, pub publicKey) *keyRef {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.list) - 1; i >= 0; i-- {
		if k := r.list[i]; k.iss == iss && k.kid == kid && k.alg == alg && identicalKey(k.pub, pub) {
			return k
		}
	}
	// iss and kid may point into a token's claims or header: copied, so
	// that the reference keeps no token's memory alive.
	k := &keyRef{iss: strings.Clone(iss), keys: keys, kid: strings.Clone(kid), alg: alg, pub: pub}
	if len(r.list) == maxKeyRefs {
		r.list = append(r.list[:0], r.list[1:]...)
	}
	r.list = append(r.list, k)
	return k
}

// Audiences and scopes repeat across tokens (one API, and one scope set per
// client or role, typically), so entries share them: a shared shape saves
// an entry its own copy of both, and the collector the pointers into it,
// which a full cache makes it follow at every cycle. Only small shapes are
// shared, at most maxSharedShapes a key, so that what is shared, not counted
// in the cache's bytes, stays small: maxKeyRefs × maxSharedShapes × 512
// bytes of key. Other shapes are the entry's own.
const (
	maxSharedShapes     = 64
	maxSharedShapeBytes = 512 // of shapeKey
)

// shape returns the shape of aud and scopeList (sorted and without
// duplicates, as [scopes.Set.List] returns it), shared by the entries of r's
// tokens when it can be (shared=true), else the entry's own. r may be nil.
func (r *keyRef) shape(aud, scopeList []string) (sh *shape, shared bool) {
	var buf [maxSharedShapeBytes]byte
	k := shapeKey(buf[:0], aud, scopeList)
	if r == nil || len(k) > maxSharedShapeBytes {
		return newShape(string(k)), false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if sh, ok := r.shapes[string(k)]; ok {
		return sh, true
	}
	if len(r.shapes) >= maxSharedShapes {
		return newShape(string(k)), false
	}
	owned := string(k)
	sh = newShape(owned)
	if r.shapes == nil {
		r.shapes = make(map[string]*shape)
	}
	r.shapes[owned] = sh
	return sh, true
}
