package middleware

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/binary"
	"sync"
	"unsafe"

	"github.com/tokenward/tokenward/internal/tokenhash"
	"github.com/tokenward/tokenward/internal/ttlcache"
	"github.com/tokenward/tokenward/scopes"
)

// entryOverhead is the memory an entry costs beyond its data block and its
// own scope list: its map slot in the cache (32-byte key, 56-byte item, at
// the map's average load) and the rounding of the block up to its
// allocation size class. The interned key reference, and the scope list
// when it is shared (see [keyRef.sharedScopes]), are shared by many entries
// and not counted. TestCacheEntryBytes holds the estimate to within 20% of
// the heap measured: about 590 bytes per entry for an Auth0-shaped token
// with 329-byte claims JSON (a 396-byte data block, four scopes shared).
const entryOverhead = 176

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

	mu   sync.Mutex            // guards sets
	sets map[string]scopes.Set // by scopeSetKey; at most maxSharedSets
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
	if e.data[eFlags]&flagSharedScopes == 0 {
		n += int64(e.scopes.Len()) * int64(unsafe.Sizeof(""))
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
	k := &keyRef{iss: iss, keys: keys, kid: kid, alg: alg, pub: pub}
	if len(r.list) == maxKeyRefs {
		r.list = append(r.list[:0], r.list[1:]...)
	}
	r.list = append(r.list, k)
	return k
}

// Scope sets repeat across tokens (one per client or role, typically), so
// entries share them: a shared list saves an entry its own list (64 of the
// 625 bytes an Auth0-shaped entry took), and the collector the list's
// pointers into the entry's data (40 to 60% of its work on such an entry,
// which a full cache makes it do at every cycle). Only small sets are shared,
// at most maxSharedSets a key, so that what is shared, not counted in the
// cache's bytes, stays small: maxKeyRefs × maxSharedSets × 512 bytes of key.
// Other sets are the entry's own.
const (
	maxSharedSets     = 64
	maxSharedSetBytes = 512 // of scopeSetKey
)

// sharedScopes returns the set of list (sorted and without duplicates, as
// [scopes.Set.List] returns it) shared by the entries of r's tokens, or
// ok=false when it is not shared: empty, too large, or r already shares as
// many sets as it may.
func (r *keyRef) sharedScopes(list []string) (set scopes.Set, ok bool) {
	if r == nil || len(list) == 0 {
		return scopes.Set{}, false
	}
	var buf [maxSharedSetBytes]byte
	k, ok := scopeSetKey(buf[:0], list)
	if !ok {
		return scopes.Set{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if set, ok := r.sets[string(k)]; ok {
		return set, true
	}
	if len(r.sets) >= maxSharedSets {
		return scopes.Set{}, false
	}
	// The scopes are substrings of the map key, a copy: a shared set
	// keeps no entry's data alive.
	owned := string(k)
	parts := make([]string, 0, len(list))
	for off := 0; off < len(k); {
		n, w := binary.Uvarint(k[off:])
		off += w
		parts = append(parts, owned[off:off+int(n)])
		off += int(n)
	}
	set = scopes.New(parts...)
	if r.sets == nil {
		r.sets = make(map[string]scopes.Set)
	}
	r.sets[owned] = set
	return set, true
}

// scopeSetKey appends to b each scope of list preceded by its length, which
// no two different lists share (scopes may contain spaces or any byte). ok
// is false when the key would be longer than maxSharedSetBytes.
func scopeSetKey(b []byte, list []string) (key []byte, ok bool) {
	for _, s := range list {
		if len(b)+binary.MaxVarintLen64+len(s) > maxSharedSetBytes {
			return nil, false
		}
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b, true
}
