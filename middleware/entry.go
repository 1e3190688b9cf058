package middleware

import (
	"encoding/binary"
	"math"
	"time"
	"unsafe"

	"github.com/tokenward/tokenward/scopes"
)

// This file is the packed format of a verified-token cache entry, and the
// only code that reads or writes it. A hit rebuilds the Claims from one
// immutable block without copying: their strings are substrings of it, or
// of the entry's shared key and shape.
//
// An entry keeps what a hit needs, not the claims JSON: the JSON of a hit is
// the token's own payload, which the request carries and which a hit has
// proved identical (same SHA-256), decoded only if Claims.Decode or
// Claims.JSON is called. The issuer is the key's (a key verifies only its
// issuer's tokens); audiences and scopes, which repeat across the tokens of
// a key, are a shape shared by its entries. So an Auth0 access token's entry
// is its times, sub, client ID and jti: about 120 bytes of data, where the
// JSON alone was 330.
// FuzzEntryRoundTrip holds Claims → entry → Claims to the identity.

// maxEntryData is the largest data block an entry may have: string lengths
// in it are 16 bits. A token whose entry would be larger is verified every
// time.
const maxEntryData = math.MaxUint16

// cacheEntry is a verified token: one immutable block of bytes holding its
// times and its own strings (see the layout below), its audiences and
// scopes, and the key that verified it, shared by every entry of that key.
type cacheEntry struct {
	data  string // never modified; the claims returned on a hit point into it
	key   *keyRef
	shape *shape // shared by the entries of key when flagSharedShape is set
}

// shape is the audiences and scopes of a token. Its strings are substrings
// of one string of its own, so that a shared shape keeps no entry's data
// alive.
type shape struct {
	aud    []string
	scopes scopes.Set
}

// Layout of cacheEntry.data: flags, then exp, nbf and iat in Unix seconds
// (int64, nbf and iat only when present), their nanoseconds (uint32 each,
// only with flagFrac), the lengths (uint16) of iss, sub, jti and the client
// ID, and of the cnf thumbprints with flagCnf, then those strings.
const (
	eFlags = 0
	eExp   = 1

	flagNbf         = 1
	flagIat         = 2
	flagSharedShape = 4  // the entry's shape is shared, not its own
	flagCnf         = 8  // the token has a cnf claim (Claims.Confirmation)
	flagCnfOther    = 16 // Confirmation.Unsupported
	flagFrac        = 32 // some time has nanoseconds
	flagKeyIssuer   = 64 // iss is the key's issuer, not in data
)

// newEntry builds the cache entry of a verified token from its claims. ok is
// false when the entry would be too large to address.
func newEntry(c *Claims, ref *keyRef) (e cacheEntry, ok bool) {
	var cnf Confirmation
	if c.Confirmation != nil {
		cnf = *c.Confirmation
	}
	iss := c.Issuer
	var flags byte
	if ref != nil && ref.iss == iss {
		iss = ""
		flags |= flagKeyIssuer
	}
	strs := [...]string{iss, c.Subject, c.ID, c.ClientID, cnf.CertThumbprint, cnf.KeyThumbprint}
	nStrs := 4
	if c.Confirmation != nil {
		nStrs = 6
		flags |= flagCnf
		if cnf.Unsupported {
			flags |= flagCnfOther
		}
	}
	times := []time.Time{c.ExpiresAt}
	if !c.NotBefore.IsZero() {
		flags |= flagNbf
		times = append(times, c.NotBefore)
	}
	if !c.IssuedAt.IsZero() {
		flags |= flagIat
		times = append(times, c.IssuedAt)
	}
	for _, t := range times {
		if t.Nanosecond() != 0 {
			flags |= flagFrac
		}
	}
	n := 1 + 8*len(times) + 2*nStrs
	if flags&flagFrac != 0 {
		n += 4 * len(times)
	}
	for _, s := range strs[:nStrs] {
		if len(s) > math.MaxUint16 {
			return cacheEntry{}, false
		}
		n += len(s)
	}
	if n > maxEntryData {
		return cacheEntry{}, false
	}
	sh, shared := ref.shape(c.Audience, c.Scopes.List())
	if shared {
		flags |= flagSharedShape
	}

	b := make([]byte, 1, n)
	b[eFlags] = flags
	for _, t := range times {
		b = binary.LittleEndian.AppendUint64(b, uint64(t.Unix()))
	}
	if flags&flagFrac != 0 {
		for _, t := range times {
			b = binary.LittleEndian.AppendUint32(b, uint32(t.Nanosecond()))
		}
	}
	for _, s := range strs[:nStrs] {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	}
	for _, s := range strs[:nStrs] {
		b = append(b, s...)
	}
	return cacheEntry{data: unsafe.String(&b[0], len(b)), key: ref, shape: sh}, true
}

// shapeKey appends to b the number of audiences, then each audience and
// each scope preceded by its length: no two different shapes share it
// (audiences and scopes may contain any byte).
func shapeKey(b []byte, aud, scopeList []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(aud)))
	for _, list := range [2][]string{aud, scopeList} {
		for _, s := range list {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
	}
	return b
}

// newShape builds the shape of a shapeKey; its strings are substrings of
// key.
func newShape(key string) *shape {
	nAud, off := binary.Uvarint([]byte(key[:min(len(key), binary.MaxVarintLen64)]))
	var parts []string
	for off < len(key) {
		n, w := binary.Uvarint([]byte(key[off:min(len(key), off+binary.MaxVarintLen64)]))
		off += w
		parts = append(parts, key[off:off+int(n)])
		off += int(n)
	}
	sh := &shape{aud: parts[:nAud:nAud]}
	if scopeList := parts[nAud:]; len(scopeList) > 0 {
		// Sorted and without duplicates already: scopes.New keeps them.
		sh.scopes = scopes.New(scopeList...)
	}
	return sh
}

// ownShapeBytes is the memory of a shape that is an entry's own: the struct,
// its key string and the backing arrays of its lists.
func ownShapeBytes(sh *shape) int64 {
	n := int64(unsafe.Sizeof(shape{})) + int64(len(sh.aud)+2*sh.scopes.Len())*int64(unsafe.Sizeof(""))
	for _, s := range sh.aud {
		n += int64(len(s)) + 1
	}
	for _, s := range sh.scopes.List() {
		n += int64(len(s)) + 1
	}
	return n
}

// entryView reads a cacheEntry's data.
type entryView string

func (d entryView) u16(at int) int { return int(d[at]) | int(d[at+1])<<8 }

func (d entryView) u32(at int) int64 { return int64(d.u16(at) | d.u16(at+2)<<16) }

func (d entryView) i64(at int) int64 {
	_ = d[at+7]
	return int64(uint64(d[at]) | uint64(d[at+1])<<8 | uint64(d[at+2])<<16 | uint64(d[at+3])<<24 |
		uint64(d[at+4])<<32 | uint64(d[at+5])<<40 | uint64(d[at+6])<<48 | uint64(d[at+7])<<56)
}

// times returns exp, nbf and iat (zero when absent), and where the string
// lengths start.
func (d entryView) times() (exp, nbf, iat time.Time, next int) {
	flags := d[eFlags]
	n := 1
	if flags&flagNbf != 0 {
		n++
	}
	if flags&flagIat != 0 {
		n++
	}
	ns := func(i int) int64 {
		if flags&flagFrac == 0 {
			return 0
		}
		return d.u32(eExp + 8*n + 4*i)
	}
	exp = time.Unix(d.i64(eExp), ns(0))
	i := 1
	if flags&flagNbf != 0 {
		nbf = time.Unix(d.i64(eExp+8*i), ns(i))
		i++
	}
	if flags&flagIat != 0 {
		iat = time.Unix(d.i64(eExp+8*i), ns(i))
	}
	next = eExp + 8*n
	if flags&flagFrac != 0 {
		next += 4 * n
	}
	return exp, nbf, iat, next
}

// hitClaims is a Claims with room for its audiences, so that a hit builds it
// in one allocation.
type hitClaims struct {
	Claims
	aud [2]string
}

// claims builds the Claims of an entry in one allocation (with up to two
// audiences; a bound token's Confirmation takes a second). The strings point
// into d, the key and the shape; the audience list is the hit's own, since a
// caller may write to it and the shape is shared. payload is the token's
// claims segment, decoded by Claims.Decode.
func (d entryView) claims(e *cacheEntry, payload string) *Claims {
	h := &hitClaims{}
	c := &h.Claims
	c.Scopes = e.shape.scopes
	// Only ever read (Decode and JSON decode it), like the token it is in.
	c.raw, c.b64Raw = unsafe.Slice(unsafe.StringData(payload), len(payload)), true
	if n := len(e.shape.aud); n <= len(h.aud) {
		c.Audience = h.aud[:n:n]
	} else {
		c.Audience = make([]string, n)
	}
	copy(c.Audience, e.shape.aud)
	var next int
	c.ExpiresAt, c.NotBefore, c.IssuedAt, next = d.times()
	flags := d[eFlags]
	nStrs := 4
	if flags&flagCnf != 0 {
		nStrs = 6
	}
	var strs [6]string
	off := next + 2*nStrs
	for i := range nStrs {
		n := d.u16(next + 2*i)
		strs[i] = string(d[off : off+n])
		off += n
	}
	c.Issuer, c.Subject, c.ID, c.ClientID = strs[0], strs[1], strs[2], strs[3]
	if flags&flagKeyIssuer != 0 {
		c.Issuer = e.key.iss
	}
	if flags&flagCnf != 0 {
		// A cached token is as bound as a verified one: the proof is
		// checked per request, by Guard.Check, never cached. An
		// allocation of its own, so that bearer tokens' hits stay small.
		c.Confirmation = &Confirmation{CertThumbprint: strs[4], KeyThumbprint: strs[5], Unsupported: flags&flagCnfOther != 0}
	}
	return c
}
