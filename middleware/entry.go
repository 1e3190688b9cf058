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
// immutable block without copying: their strings are substrings of it.
//
// When the entry is built, a claim string found inside the claims JSON by
// address (within: decodeFast leaves the usual strings pointing into the
// JSON) is stored as a span of the JSON's copy; any other string is copied
// after it. So the address lookup only saves bytes: a string that is not
// where it is looked for is copied, never mis-addressed.
// FuzzEntryRoundTrip holds Claims → entry → Claims to the identity.

// maxEntryData is the largest data block an entry may have: offsets in it
// are 16 bits. A token whose entry would be larger is verified every time.
const maxEntryData = math.MaxUint16

// cacheEntry is a verified token: one immutable block of bytes holding its
// claims JSON and everything a hit needs (see the layout below), its scopes,
// and the key that verified it, shared by every entry of that key.
type cacheEntry struct {
	data   string // never modified; the claims returned on a hit point into it
	key    *keyRef
	scopes scopes.Set // its strings point into data; shared by every hit
}

// Layout of cacheEntry.data: a fixed head of little-endian fields, the spans
// (16-bit offset and length) of the audiences and scopes, the claims JSON,
// then the bytes of any string that is not a substring of the JSON (a claim
// with escapes, decoded). Strings of the claims are substrings of data.
const (
	eExp    = 0  // exp, nbf, iat: Unix seconds, int64
	eNbf    = 8  //
	eIat    = 16 //
	eExpNs  = 24 // their nanoseconds, uint32
	eNbfNs  = 28 //
	eIatNs  = 32 //
	eFlags  = 36 // flagNbf | flagIat | flagSharedScopes | flagCnf | flagCnfOther
	eNAud   = 38 // number of audiences, uint16
	eNScope = 40 // number of scopes, uint16
	eRaw    = 42 // spans: the claims JSON, iss, sub, jti, client ID
	eIss    = 46
	eSub    = 50
	eJti    = 54
	eClient = 58
	eCnfX5t = 62 // cnf's x5t#S256 and jkt
	eCnfJkt = 66
	eSpans  = 70 // nAud then nScope spans

	flagNbf          = 1
	flagIat          = 2
	flagSharedScopes = 4  // the entry's scope list is shared, not its own
	flagCnf          = 8  // the token has a cnf claim (Claims.Confirmation)
	flagCnfOther     = 16 // Confirmation.Unsupported
)

// newEntry builds the cache entry of a verified token from its claims. ok is
// false when the entry would be too large to address.
func newEntry(c *Claims, ref *keyRef) (e cacheEntry, ok bool) {
	scopeList := c.Scopes.List()
	raw := c.raw
	var cnf Confirmation
	if c.Confirmation != nil {
		cnf = *c.Confirmation
	}
	// In the order of their spans, from eIss.
	strs := [...]string{c.Issuer, c.Subject, c.ID, c.ClientID, cnf.CertThumbprint, cnf.KeyThumbprint}
	n := eSpans + 4*(len(c.Audience)+len(scopeList)) + len(raw)
	extra := func(s string) int {
		if _, in := within(raw, s); in {
			return 0
		}
		return len(s)
	}
	for _, s := range strs {
		n += extra(s)
	}
	for _, s := range c.Audience {
		n += extra(s)
	}
	for _, s := range scopeList {
		n += extra(s)
	}
	if n > maxEntryData || len(c.Audience) > math.MaxUint16 || len(scopeList) > math.MaxUint16 {
		return cacheEntry{}, false
	}

	b := make([]byte, n)
	putTime := func(at, atNs int, t time.Time) {
		binary.LittleEndian.PutUint64(b[at:], uint64(t.Unix()))
		binary.LittleEndian.PutUint32(b[atNs:], uint32(t.Nanosecond()))
	}
	putTime(eExp, eExpNs, c.ExpiresAt)
	var flags byte
	if !c.NotBefore.IsZero() {
		flags |= flagNbf
		putTime(eNbf, eNbfNs, c.NotBefore)
	}
	if !c.IssuedAt.IsZero() {
		flags |= flagIat
		putTime(eIat, eIatNs, c.IssuedAt)
	}
	if c.Confirmation != nil {
		flags |= flagCnf
		if cnf.Unsupported {
			flags |= flagCnfOther
		}
	}
	set, shared := ref.sharedScopes(scopeList)
	if shared {
		flags |= flagSharedScopes
	}
	b[eFlags] = flags
	binary.LittleEndian.PutUint16(b[eNAud:], uint16(len(c.Audience)))
	binary.LittleEndian.PutUint16(b[eNScope:], uint16(len(scopeList)))
	rawAt := eSpans + 4*(len(c.Audience)+len(scopeList))
	copy(b[rawAt:], raw)
	next := rawAt + len(raw) // where the next string not in raw goes
	span := func(at, off, n int) {
		binary.LittleEndian.PutUint16(b[at:], uint16(off))
		binary.LittleEndian.PutUint16(b[at+2:], uint16(n))
	}
	put := func(at int, s string) {
		if off, in := within(raw, s); in {
			span(at, rawAt+off, len(s))
			return
		}
		span(at, next, len(s))
		next += copy(b[next:], s)
	}
	span(eRaw, rawAt, len(raw))
	for i, s := range strs {
		put(eIss+4*i, s)
	}
	for i, s := range c.Audience {
		put(eSpans+4*i, s)
	}
	for i, s := range scopeList {
		put(eSpans+4*(len(c.Audience)+i), s)
	}
	d := entryView(unsafe.String(&b[0], len(b)))
	if !shared {
		set = d.scopes()
	}
	return cacheEntry{data: string(d), key: ref, scopes: set}, true
}

// within reports whether s is a substring of b in memory, and where.
func within(b []byte, s string) (off int, ok bool) {
	if len(s) == 0 {
		return 0, true
	}
	if len(b) == 0 {
		return 0, false
	}
	p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if p < start || p+uintptr(len(s)) > start+uintptr(len(b)) {
		return 0, false
	}
	return int(p - start), true
}

// entryView reads a cacheEntry's data.
type entryView string

func (d entryView) u16(at int) int { return int(d[at]) | int(d[at+1])<<8 }

func (d entryView) i64(at int) int64 {
	_ = d[at+7]
	return int64(uint64(d[at]) | uint64(d[at+1])<<8 | uint64(d[at+2])<<16 | uint64(d[at+3])<<24 |
		uint64(d[at+4])<<32 | uint64(d[at+5])<<40 | uint64(d[at+6])<<48 | uint64(d[at+7])<<56)
}

func (d entryView) date(at, atNs int) time.Time {
	return time.Unix(d.i64(at), int64(d.u16(atNs)|d.u16(atNs+2)<<16))
}

// str returns the string of the span at, a substring of d.
func (d entryView) str(at int) string {
	off := d.u16(at)
	return string(d[off : off+d.u16(at+2)])
}

// hitClaims is a Claims with room for its audiences, so that a hit builds it
// in one allocation.
type hitClaims struct {
	Claims
	aud [2]string
}

// claims builds the Claims of an entry in one allocation (with up to two
// audiences; a bound token's Confirmation takes a second). The strings
// point into d.
func (d entryView) claims(exp time.Time, set scopes.Set) *Claims {
	h := new(hitClaims)
	c := &h.Claims
	c.Issuer = d.str(eIss)
	c.Subject = d.str(eSub)
	c.ID = d.str(eJti)
	c.ClientID = d.str(eClient)
	c.ExpiresAt = exp // d.date(eExp, eExpNs), which the caller has
	flags := d[eFlags]
	if flags&flagNbf != 0 {
		c.NotBefore = d.date(eNbf, eNbfNs)
	}
	if flags&flagIat != 0 {
		c.IssuedAt = d.date(eIat, eIatNs)
	}
	if flags&flagCnf != 0 {
		// A cached token is as bound as a verified one: the proof is
		// checked per request, by Guard.Check, never cached. An
		// allocation of its own, so that bearer tokens' hits stay small.
		c.Confirmation = &Confirmation{CertThumbprint: d.str(eCnfX5t), KeyThumbprint: d.str(eCnfJkt), Unsupported: flags&flagCnfOther != 0}
	}
	nAud := d.u16(eNAud)
	if nAud <= len(h.aud) {
		c.Audience = h.aud[:nAud:nAud]
	} else {
		c.Audience = make([]string, nAud)
	}
	for i := range c.Audience {
		c.Audience[i] = d.str(eSpans + 4*i)
	}
	c.Scopes = set
	raw := d.str(eRaw)
	// The JSON is only ever read (Decode, and JSON's copy).
	c.raw = unsafe.Slice(unsafe.StringData(raw), len(raw))
	if len(raw) == 0 {
		c.raw = []byte{}
	}
	return c
}

// scopes builds the scope set of an entry, once, when it is stored: its
// strings point into d.
func (d entryView) scopes() scopes.Set {
	nAud, nScope := d.u16(eNAud), d.u16(eNScope)
	if nScope == 0 {
		return scopes.Set{}
	}
	var buf [16]string
	list := buf[:0]
	for i := range nScope {
		list = append(list, d.str(eSpans+4*(nAud+i)))
	}
	// Stored sorted and without duplicates, as scopes.New leaves them.
	return scopes.New(list...)
}
