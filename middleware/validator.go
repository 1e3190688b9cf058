package middleware

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/tokenward/tokenward/internal/httpfetch"
	"github.com/tokenward/tokenward/internal/jsonscan"
	"github.com/tokenward/tokenward/internal/ttlcache"
	"github.com/tokenward/tokenward/jwks"
)

// Defaults for the zero values of [ValidatorOptions].
const (
	DefaultLeeway        = 30 * time.Second
	DefaultMaxTokenBytes = 16384
	DefaultAlgorithm     = "RS256"
)

// KeySet is where the validator finds an issuer's keys. [jwks.Remote] and
// [jwks.Static] implement it.
type KeySet interface {
	// Key returns the key with the given ID, or an error wrapping
	// [jwks.ErrKeyNotFound] or [jwks.ErrUnavailable].
	Key(ctx context.Context, kid string) (jwks.Key, error)
}

// Issuer is a trusted issuer and the key set its tokens are verified with.
type Issuer struct {
	// URL is the issuer identifier, matched exactly against "iss" (Auth0
	// issuers end with "/"). https, or http on a loopback host.
	URL string
	// Keys holds this issuer's keys, and only this issuer's tokens are
	// verified with them.
	Keys KeySet
}

// ValidatorOptions tunes a [Validator]. The zero value is the safe default.
type ValidatorOptions struct {
	// Algorithms are the accepted "alg" values. Nil means RS256 only.
	// Supported: RS256/384/512, PS256/384/512, ES256/384/512, EdDSA.
	// "none" and the HMAC algorithms are refused.
	Algorithms []string
	// Leeway is the clock skew allowed on exp, nbf and iat. Zero means
	// [DefaultLeeway]; a negative value means none.
	Leeway time.Duration
	// RequireATJWT requires the header "typ" to be "at+jwt" (RFC 9068). When
	// false, typ may also be absent or "JWT".
	RequireATJWT bool
	// MaxTokenBytes is the largest token parsed at all. Zero means
	// [DefaultMaxTokenBytes].
	MaxTokenBytes int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// CacheSize is how many verified tokens are remembered, so that a token
	// seen before skips parsing and the signature check. Zero means no cache.
	// A hit still re-checks exp and nbf (with the leeway), that the issuer
	// still publishes the key that verified it, and Revoked; entries past
	// the token's exp (and the leeway) are evicted first. Keyed by SHA-256
	// of the token; the token is not stored.
	CacheSize int
	// CacheMaxBytes bounds the cache's estimated memory (about 250 bytes
	// per entry for an Auth0 access token whose audiences and scopes other
	// tokens share; a token whose entry would exceed 64 KiB is not cached).
	// Zero means [DefaultCacheMaxBytes].
	CacheMaxBytes int64
	// Revoked, if set, is asked about every verified token, cached or not; a
	// true answer refuses the token with reason revoked (a deny list).
	Revoked func(*Claims) bool
	// Opaque checks opaque tokens with the issuer: RFC 7662 introspection
	// or /userinfo. A token shaped like a JWT (two dots or more, or a first
	// segment that decodes leniently to a header naming alg) is never
	// passed to it: it is verified or refused as malformed. A compact JWE,
	// which tokenward does not decrypt, is opaque. Nil refuses opaque
	// tokens with reason opaque.
	Opaque OpaqueChecker
}

// OpaqueChecker asks an issuer about a token that is not a JWT.
type OpaqueChecker interface {
	// CheckOpaque returns the claims the issuer vouches for, with Kind set,
	// or an [*Error] (reason inactive for a token the issuer does not
	// know, issuer_unavailable when it cannot be asked, issuer_busy when
	// too many calls to it are in progress).
	CheckOpaque(ctx context.Context, token string) (*Claims, error)
}

// DefaultCacheMaxBytes bounds the verified-token cache when
// [ValidatorOptions.CacheMaxBytes] is zero.
const DefaultCacheMaxBytes = 64 << 20

// Validator turns a token string into verified [Claims], or an [*Error]
// saying why not. It is safe for concurrent use.
type Validator struct {
	issuers   map[string]KeySet
	trusted   []string // issuer URLs, for diagnostics
	maxIss    int      // the length of the longest trusted issuer URL
	audiences []string
	algs      []string
	leeway    time.Duration
	requireAT bool
	maxBytes  int
	now       func() time.Time
	cache     *tokenCache                  // nil without a cache
	refs      keyRefs                      // the keys of cached tokens
	headers   atomic.Pointer[[]headerMemo] // headers of verified tokens
	revoked   func(*Claims) bool
	opaque    OpaqueChecker
}

// NewValidator returns a validator that accepts tokens of the given issuers
// carrying at least one of the given audiences. Every configuration problem is
// reported at once.
func NewValidator(issuers []Issuer, audiences []string, opts ValidatorOptions) (*Validator, error) {
	var errs []error
	v := &Validator{issuers: make(map[string]KeySet, len(issuers))}
	if len(issuers) == 0 {
		errs = append(errs, errors.New("tokenward: no trusted issuers"))
	}
	for _, iss := range issuers {
		switch {
		case iss.Keys == nil:
			errs = append(errs, fmt.Errorf("tokenward: issuer %q has no key set", iss.URL))
		case v.issuers[iss.URL] != nil:
			errs = append(errs, fmt.Errorf("tokenward: issuer %q given twice", iss.URL))
		}
		if err := httpfetch.CheckURL(iss.URL); err != nil {
			errs = append(errs, fmt.Errorf("tokenward: issuer: %w", err))
		}
		v.issuers[iss.URL] = iss.Keys
		v.trusted = append(v.trusted, iss.URL)
		v.maxIss = max(v.maxIss, len(iss.URL))
	}
	if len(audiences) == 0 {
		errs = append(errs, errors.New("tokenward: no accepted audiences"))
	}
	for _, a := range audiences {
		if a == "" {
			errs = append(errs, errors.New("tokenward: empty audience"))
		}
	}
	v.audiences = slices.Clone(audiences)
	v.algs = opts.Algorithms
	if v.algs == nil {
		v.algs = []string{DefaultAlgorithm}
	}
	if len(v.algs) == 0 {
		errs = append(errs, errors.New("tokenward: empty algorithm list"))
	}
	for _, a := range v.algs {
		if _, ok := algorithms[a]; !ok {
			errs = append(errs, fmt.Errorf("tokenward: algorithm %q not supported (supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)", a))
		}
	}
	v.algs = slices.Clone(v.algs)
	switch {
	case opts.Leeway == 0:
		v.leeway = DefaultLeeway
	case opts.Leeway > 0:
		v.leeway = opts.Leeway
	}
	v.requireAT = opts.RequireATJWT
	v.maxBytes = opts.MaxTokenBytes
	switch {
	case v.maxBytes == 0:
		v.maxBytes = DefaultMaxTokenBytes
	case v.maxBytes < 0:
		errs = append(errs, errors.New("tokenward: negative maximum token size"))
	}
	v.now = opts.Now
	if v.now == nil {
		v.now = time.Now
	}
	v.revoked = opts.Revoked
	v.opaque = opts.Opaque
	switch {
	case opts.CacheSize < 0 || opts.CacheMaxBytes < 0:
		errs = append(errs, errors.New("tokenward: negative cache size"))
	case opts.CacheSize > 0:
		maxBytes := opts.CacheMaxBytes
		if maxBytes == 0 {
			maxBytes = DefaultCacheMaxBytes
		}
		v.cache = ttlcache.New(opts.CacheSize, maxBytes, cacheEntry.size, v.now)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return v, nil
}

// MaxTokenBytes is the largest token the validator parses.
func (v *Validator) MaxTokenBytes() int { return v.maxBytes }

// Issuers returns the trusted issuers, in the order given to [NewValidator]:
// the authorization servers of the resource's metadata (package resource).
func (v *Validator) Issuers() []string { return slices.Clone(v.trusted) }

// b64 is strict base64url: no padding, no standard alphabet, no stray bits.
var b64 = base64.RawURLEncoding.Strict()

// header is the JOSE header fields we act on.
type header struct {
	Alg  string          `json:"alg"`
	Typ  *string         `json:"typ"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

var headerNames = []string{"alg", "typ", "kid", "crit", "jku", "x5u", "jwk", "x5c", "b64"}

// headerFields are the JSON names of header's fields.
var headerFields = []string{"alg", "typ", "kid", "crit"}

// The typ values a header read on the fast path points to.
var (
	typJWT      = "JWT"
	typATJWT    = "at+jwt"
	typAppATJWT = "application/at+jwt"
)

// decodeHeader reads a token's header: the usual shape on a fast path, the
// rest with encoding/json.
func (v *Validator) decodeHeader(b []byte) (header, error) {
	var h header
	if v.headerFast(b, &h) {
		return h, nil
	}
	return decodeHeaderJSON(b)
}

// decodeHeaderJSON decodes with encoding/json, from a copy so that the
// caller's stack buffer does not escape to the heap.
func decodeHeaderJSON(b []byte) (header, error) {
	var h header
	err := json.Unmarshal(bytes.Clone(b), &h)
	return h, err
}

// headerFast reads a header as encoding/json would, without its reflection
// and allocations, when the header has the usual shape: alg one of the
// allowed algorithms, typ absent or JWT, at+jwt or application/at+jwt, kid;
// each a string of printable ASCII without escapes; no crit; no other
// spelling of these names. For anything else it reports false, and the
// header is left to encoding/json: it need only be right about what it
// accepts.
func (v *Validator) headerFast(b []byte, h *header) bool {
	if !jsonscan.ValidObject(b) {
		return false
	}
	m := jsonscan.NewMembers(b)
	for {
		ns, ne, vs, ve, more := m.Next()
		if !more {
			return true
		}
		name, value := b[ns:ne], b[vs:ve]
		switch string(name) {
		case "alg":
			if !jsonscan.SimpleString(value) {
				return false
			}
			h.Alg = ""
			for _, a := range v.algs {
				if a == string(value[1:len(value)-1]) {
					h.Alg = a
				}
			}
			if h.Alg == "" {
				return false
			}
		case "typ":
			if !jsonscan.SimpleString(value) {
				return false
			}
			switch string(value[1 : len(value)-1]) {
			case typJWT:
				h.Typ = &typJWT
			case typATJWT:
				h.Typ = &typATJWT
			case typAppATJWT:
				h.Typ = &typAppATJWT
			default:
				return false
			}
		case "kid":
			if !jsonscan.SimpleString(value) {
				return false
			}
			h.Kid = string(value[1 : len(value)-1])
		default:
			// crit, and any name encoding/json would read as a field, in
			// any spelling: other case, escapes. Other escaped names are
			// skipped here, so that a forged header full of them is not
			// left to encoding/json (an allocation per escaped name).
			escaped := bytes.IndexByte(name, '\\') >= 0
			if watchedIndex(b[ns-1:ne+1], escaped, headerFields) >= 0 {
				return false
			}
		}
	}
}

// Validate verifies a token and returns its claims. The checks run in a fixed
// order, cheapest and key-independent first, and the first failure is
// returned:
//
//  1. size, then structure: three base64url segments (two dots);
//  2. iss is a trusted issuer: found in the decoded claims by a scan that
//     stops at the member, before the header or the rest of the claims is
//     decoded, so that a forged token naming another issuer costs little;
//  3. header: JSON limits, alg in the allow-list, typ, crit;
//  4. the key by kid, from the set of the issuer the claims name only, and
//     of the alg's type and the key's own alg (or, for a key published
//     without alg, the first configured algorithm of its type);
//  5. the signature;
//  6. claims JSON: limits, registered claims of the right types — only
//     now, so that a forged token naming a trusted issuer costs a signature
//     check, not the decoding of its claims;
//  7. exp (required), nbf, iat, with the leeway; then aud.
//
// jku, x5u, jwk and x5c headers are never used. The error is an [*Error].
//
// Validate checks the token, not the request: a sender-constrained token
// (cnf) is returned with [Claims].Confirmation set, and only [Guard.Check]
// (so [New] and package proxy) checks its proof. A caller of Validate must
// refuse a token whose Confirmation it does not check.
//
// With a cache ([ValidatorOptions.CacheSize]), a token verified before is
// answered from the cache after the checks that can change with time: exp,
// nbf, the key still published, Revoked. The claims returned are a copy;
// their slices are shared and must not be modified.
func (v *Validator) Validate(ctx context.Context, token string) (*Claims, error) {
	c, err := v.validate(ctx, token)
	if err == nil && v.revoked != nil && v.revoked(c) {
		return nil, &Error{Reason: ReasonRevoked}
	}
	return c, err
}

// validate is Validate but the deny list, which every path shares.
func (v *Validator) validate(ctx context.Context, token string) (*Claims, error) {
	if len(token) > v.maxBytes {
		return nil, ErrTooLarge // shared: refusing a flood of huge tokens allocates nothing
	}
	// Anything shaped like a JWT is verified here or refused, never sent to
	// the issuer: a /userinfo or introspection endpoint that reads a JWT
	// leniently (padding, the standard alphabet) would vouch for a token
	// that is not for this API, is revoked, or has the wrong typ.
	if v.opaque != nil && token != "" && !jwtShaped(token) {
		return v.checkOpaque(ctx, token)
	}
	if v.cache == nil {
		return v.verify(ctx, token, nil)
	}
	key := tokenKey(token)
	if e, _, ok := v.cache.Get(&key); ok {
		if c, err, ok := v.fromCache(ctx, &key, e, token); ok {
			return c, err
		}
	}
	v.cache.Miss(&key)
	var used usedKey
	c, err := v.verify(ctx, token, &used)
	if err != nil {
		return nil, err
	}
	if pub, ok := used.pub.(publicKey); ok {
		ref := v.refs.get(c.Issuer, used.keys, used.kid, used.alg, pub)
		if e, ok := newEntry(c, ref); ok {
			// Kept until a hit would refuse it as expired. An entry
			// over the cache's share of bytes is not stored.
			v.cache.Put(&key, e, c.ExpiresAt.Add(v.leeway))
		}
	}
	return c, nil
}

// usedKey is the key that verified a token, remembered for cache hits.
type usedKey struct {
	keys KeySet
	kid  string
	alg  string // the key's published alg
	pub  any
}

// fromCache answers from a cache entry, or reports ok=false when the token
// must be verified again (the key changed, or it is not yet valid).
func (v *Validator) fromCache(ctx context.Context, key *ttlcache.Key, e cacheEntry, token string) (c *Claims, err error, ok bool) {
	d := entryView(e.data)
	now := v.now()
	exp, nbf, _, _ := d.times()
	if !now.Before(exp.Add(v.leeway)) { // as in verify
		v.cache.Remove(key)
		return nil, &Error{Reason: ReasonExpired, Detail: "expired " + ago(now.Sub(exp)) + " ago"}, true
	}
	if !nbf.IsZero() && nbf.After(now.Add(v.leeway)) {
		return nil, nil, false
	}
	k, kerr := e.key.keys.Key(ctx, e.key.kid)
	if kerr != nil || k.Algorithm != e.key.alg || !sameKey(e.key.pub, k.Public) {
		// The issuer no longer publishes that key (or published another
		// under its kid, or for another alg): verify the token afresh.
		v.cache.Remove(key)
		return nil, nil, false
	}
	v.cache.Hit(key)
	// The claims segment, for Claims.Decode: a cached token was verified,
	// so it has its two dots.
	_, payload, _ := strings.Cut(token, ".")
	payload, _, _ = strings.Cut(payload, ".")
	return d.claims(&e, payload), nil, true
}

// checkOpaque asks the opaque-token checker, then holds its answer to the
// same rules as a JWT's claims: a trusted issuer, an accepted audience
// (except for /userinfo answers, which carry none), the time claims (and,
// in Validate, the deny list).
func (v *Validator) checkOpaque(ctx context.Context, token string) (*Claims, error) {
	c, err := v.opaque.CheckOpaque(ctx, token)
	if err != nil {
		return nil, asError(err)
	}
	if c == nil {
		return nil, &Error{Reason: ReasonInactive}
	}
	if _, ok := v.issuers[c.Issuer]; !ok {
		return nil, &Error{Reason: ReasonIssuer, Detail: issuerHint(c.Issuer, v.trusted)}
	}
	now := v.now()
	switch {
	case !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt.Add(v.leeway)): // as in verify
		return nil, &Error{Reason: ReasonExpired, Detail: "expired " + ago(now.Sub(c.ExpiresAt)) + " ago"}
	case c.NotBefore.After(now.Add(v.leeway)):
		return nil, &Error{Reason: ReasonNotYetValid}
	case c.IssuedAt.After(now.Add(v.leeway)):
		return nil, &Error{Reason: ReasonIssuedInFuture}
	case c.Kind != KindUserInfo && !v.audienceAccepted(c.Audience):
		return nil, &Error{Reason: ReasonAudience, Detail: audienceHint(c.Audience, v.audiences)}
	}
	return c, nil
}

// CacheStats reports the verified-token cache; zero without a cache.
func (v *Validator) CacheStats() CacheStats {
	if v.cache == nil {
		return CacheStats{}
	}
	return cacheStats(v.cache.Stats())
}

// verify runs every check of Validate but the size limit and the cache.
func (v *Validator) verify(ctx context.Context, token string, used *usedKey) (*Claims, error) {
	dot1, dot2, ok := split(token)
	if !ok {
		return nil, v.structureError(token)
	}
	// The token's bytes, only ever read: no copy.
	raw := unsafe.Slice(unsafe.StringData(token), len(token))

	// Issuer first: a token is verified only with the keys of the issuer it
	// names, and one naming an untrusted issuer is refused before its
	// header and the rest of its claims are decoded.
	payload, iss, keys, ierr := v.claimsOfTrustedIssuer(raw[dot1+1 : dot2])
	if ierr != nil {
		return nil, ierr
	}

	// Header: one seen in a verified token before (tokens of one key share
	// it byte for byte) is not decoded again.
	h, known := v.knownHeader(token[:dot1])
	if !known {
		// The JOSE header of an access token is small; a stack buffer
		// spares an allocation.
		var hbuf [256]byte
		hdrBytes, err := decodeSegment(hbuf[:0], raw[:dot1])
		if err != nil {
			return nil, fail(ReasonMalformed, "token header is not base64url")
		}
		if err := scanObject(hdrBytes, headerNames); err != nil {
			return nil, &Error{Reason: ReasonMalformed, Description: "token header is not a valid JSON object", Err: err}
		}
		if h, err = v.decodeHeader(hdrBytes); err != nil {
			return nil, &Error{Reason: ReasonMalformed, Description: "token header is not a valid JSON object", Err: err}
		}
	}
	alg, ok := v.algorithm(h.Alg)
	if !ok {
		return nil, &Error{Reason: ReasonAlgorithm, Detail: fmt.Sprintf("alg %.20q not in %v", h.Alg, v.algs)}
	}
	if err := v.checkType(h.Typ); err != nil {
		return nil, err
	}
	if h.Crit != nil {
		// RFC 7515 §4.1.11: we implement no extension, so any crit — even an
		// empty list, which the RFC forbids — means we must refuse.
		return nil, &Error{Reason: ReasonUnsupported}
	}

	// The key, from the set of the issuer the claims name only.
	key, err := keys.Key(ctx, h.Kid)
	if err != nil {
		if errors.Is(err, jwks.ErrUnavailable) {
			return nil, &Error{Reason: ReasonKeysUnavailable, Err: err}
		}
		return nil, &Error{Reason: ReasonUnknownKey, Detail: fmt.Sprintf("kid %.64q not in the key set of %s", h.Kid, iss), Err: err}
	}
	if key.Algorithm != "" && key.Algorithm != h.Alg {
		return nil, &Error{Reason: ReasonAlgorithm, Detail: fmt.Sprintf("key %q is published for %s, token says %s", key.ID, key.Algorithm, h.Alg)}
	}
	if !alg.fits(key.Public) {
		return nil, &Error{Reason: ReasonAlgorithm, Detail: fmt.Sprintf("key %q is not a %s key", key.ID, h.Alg)}
	}
	if key.Algorithm == "" {
		// A key published without alg is bound to one algorithm all the
		// same, so that one RSA key cannot verify both RS256 and PS256.
		if bound := v.boundAlgorithm(key.Public); bound != h.Alg {
			return nil, &Error{Reason: ReasonAlgorithm, Detail: fmt.Sprintf("key %q is published without alg, so it verifies only %s, the first configured algorithm of its type; token says %s", key.ID, bound, h.Alg)}
		}
	}
	if used != nil {
		used.keys, used.kid, used.alg, used.pub = keys, h.Kid, key.Algorithm, key.Public
	}

	// Signature.
	var sbuf [512]byte
	sig, err := decodeSegment(sbuf[:0], raw[dot2+1:])
	if err != nil || len(sig) == 0 {
		return nil, fail(ReasonSignature, "")
	}
	if !alg.verify(key.Public, raw[:dot2], sig) {
		return nil, &Error{Reason: ReasonSignature}
	}

	// Claims, decoded once the issuer's key vouches for them: a forged
	// token costs a signature check, not the decoding of 16 KB of JSON.
	if err := scanObject(payload, registered); err != nil {
		return nil, &Error{Reason: ReasonMalformed, Description: "token claims are not a valid JSON object", Err: err}
	}
	wc, err := decodeClaims(payload)
	if err != nil {
		return nil, &Error{Reason: ReasonMalformed, Description: "token claims are not valid", Err: err}
	}
	if wc.Iss != iss {
		// The scan and the decoder agree on claims scanObject accepts; a
		// guard, should they ever not.
		return nil, &Error{Reason: ReasonIssuer, Detail: issuerHint(wc.Iss, v.trusted)}
	}

	// Time and audience.
	now := v.now()
	if !wc.Exp.set {
		return nil, fail(ReasonExpired, "token has no expiry")
	}
	// RFC 7519 §4.1.4: the current time must be before exp (plus leeway).
	if !now.Before(wc.Exp.t.Add(v.leeway)) {
		return nil, &Error{Reason: ReasonExpired, Detail: "expired " + ago(now.Sub(wc.Exp.t)) + " ago"}
	}
	if wc.Nbf.set && wc.Nbf.t.After(now.Add(v.leeway)) {
		return nil, &Error{Reason: ReasonNotYetValid, Detail: "valid in " + ago(wc.Nbf.t.Sub(now))}
	}
	if wc.Iat.set && wc.Iat.t.After(now.Add(v.leeway)) {
		return nil, &Error{Reason: ReasonIssuedInFuture, Detail: "issued " + ago(wc.Iat.t.Sub(now)) + " from now"}
	}
	if !v.audienceAccepted(wc.Aud) {
		return nil, &Error{Reason: ReasonAudience, Detail: audienceHint(wc.Aud, v.audiences)}
	}

	if !known {
		v.rememberHeader(token[:dot1], h)
	}
	return wc.claims(payload), nil
}

// claimsOfTrustedIssuer decodes the claims segment and, if its iss is a
// trusted issuer (see checkIssuer), returns the claims JSON, the issuer as
// the claims name it, and its key set. Large claims are decoded into a pooled
// buffer, so that refusing a flood of large forged tokens allocates little,
// and copied to the heap only once the issuer is trusted: [Claims] keep them.
func (v *Validator) claimsOfTrustedIssuer(seg []byte) (payload []byte, iss string, keys KeySet, _ *Error) {
	if b64.DecodedLen(len(seg)) > 1024 {
		buf := payloadPool.Get().(*[]byte)
		scratch, err := decodeSegment((*buf)[:0], seg)
		var ierr *Error
		if err != nil {
			ierr = fail(ReasonMalformed, "token claims are not base64url")
		} else if iss, keys, ierr = v.checkIssuer(scratch); ierr == nil {
			payload = bytes.Clone(scratch)
			iss = strings.Clone(iss) // it may be in scratch
		}
		if cap(scratch) <= maxPooledPayload {
			*buf = scratch[:0]
			payloadPool.Put(buf)
		}
		return payload, iss, keys, ierr
	}
	// Small claims, those of real tokens: decoded where they will stay.
	payload, err := decodeSegment(nil, seg)
	if err != nil {
		return nil, "", nil, fail(ReasonMalformed, "token claims are not base64url")
	}
	iss, keys, ierr := v.checkIssuer(payload)
	if ierr != nil {
		return nil, "", nil, ierr
	}
	return payload, iss, keys, nil
}

// payloadPool holds buffers for decoding claims larger than 1 KiB, up to
// maxPooledPayload bytes.
var payloadPool = sync.Pool{New: func() any { b := make([]byte, 0, DefaultMaxTokenBytes); return &b }}

const maxPooledPayload = 64 << 10

// checkIssuer refuses claims whose "iss" is not a trusted issuer, and
// returns the issuer and its key set otherwise. It reads only that member,
// found by issuerMember, so its cost is a scan of the claims up to it. The
// issuer returned may share payload's memory.
func (v *Validator) checkIssuer(payload []byte) (string, KeySet, *Error) {
	val, found, err := issuerMember(payload)
	var iss string
	switch {
	case err != nil:
		return "", nil, &Error{Reason: ReasonMalformed, Description: "token claims are not a valid JSON object", Err: err}
	case !found || string(val) == "null": // encoding/json leaves iss empty
		return "", nil, &Error{Reason: ReasonIssuer, Detail: issuerHint("", v.trusted)}
	case val[0] != '"':
		return "", nil, &Error{Reason: ReasonMalformed, Description: "token claims are not valid", Err: errors.New("iss is not a string")}
	case jsonscan.SimpleString(val): // the usual case: the bytes are the string
		iss = unsafe.String(&val[1], len(val)-2)
	case len(val) > 6*v.maxIss+2:
		// No escape takes more than 6 bytes per byte it stands for, so
		// this cannot decode to a trusted issuer: not worth decoding.
		return "", nil, &Error{Reason: ReasonIssuer, Detail: fmt.Sprintf("iss of %d bytes is not a trusted issuer", len(val))}
	default:
		var unescaped string // in a branch of its own: it escapes to the heap
		if err := json.Unmarshal(val, &unescaped); err != nil {
			return "", nil, &Error{Reason: ReasonMalformed, Description: "token claims are not valid", Err: err}
		}
		iss = unescaped
	}
	keys, ok := v.issuers[iss]
	if !ok {
		return "", nil, &Error{Reason: ReasonIssuer, Detail: issuerHint(iss, v.trusted)}
	}
	return iss, keys, nil
}

// issNames is the claim issuerMember looks for, as foldIndex takes it.
var issNames = []string{"iss"}

// issuerMember returns the raw value of the top-level member of the claims
// JSON b that encoding/json reads as "iss": the first one named iss in any
// spelling it matches (letter case, escapes). A second one is a duplicate,
// which scanObject refuses later. found is false when there is none. The
// error is errNotObject when b is not an object or a string in it is
// unterminated, and errTooMany when more than maxClaims members come before
// iss: scanObject would refuse those claims, and the scan stays bounded.
// Like scanObject it leaves the rest of the syntax to encoding/json: it need
// only find the right member in JSON that is valid.
func issuerMember(b []byte) (value []byte, found bool, err error) {
	i := jsonscan.SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false, errNotObject
	}
	i = jsonscan.SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return nil, false, nil
	}
	for members := 1; ; members++ {
		if members > maxClaims {
			return nil, false, errTooMany
		}
		// A member: name, colon, value.
		if i >= len(b) || b[i] != '"' {
			return nil, false, errNotObject
		}
		end, escaped := quotedEnd(b, i)
		if end < 0 {
			return nil, false, errNotObject
		}
		iss := isIssName(b[i:end], escaped)
		i = jsonscan.SkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, false, errNotObject
		}
		i = jsonscan.SkipSpace(b, i+1)
		if i >= len(b) {
			return nil, false, errNotObject
		}
		if iss {
			if end := jsonscan.ValueEnd(b, i); end > i {
				return b[i:end], true, nil
			}
			return nil, false, errNotObject // "iss":} and the like
		}
		if i = skipValue(b, i); i < 0 {
			return nil, false, errNotObject
		}
		i = jsonscan.SkipSpace(b, i)
		switch {
		case i >= len(b):
			return nil, false, errNotObject
		case b[i] == '}':
			return nil, false, nil
		case b[i] != ',':
			return nil, false, errNotObject
		}
		i = jsonscan.SkipSpace(b, i+1)
	}
}

// skipValue returns the offset just past the JSON value at b[i], or -1 if
// it is unterminated. It finds the value's end, and checks nothing else.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		end, _ := quotedEnd(b, i)
		return end
	case '{', '[':
		depth := 0
		for i < len(b) {
			// Eight bytes at a time while none is a quote or a backslash
			// and the depth cannot fall to zero within them: deep nesting
			// is what a forged token would use to make this slow.
			for ; i+8 <= len(b); i += 8 {
				w := binary.LittleEndian.Uint64(b[i:])
				if zeroBytes(w^(ones*'"'))|zeroBytes(w^(ones*'\\')) != 0 {
					break
				}
				// '[' and '{', ']' and '}' differ only in bit 5.
				closes := bits.OnesCount64(zeroBytes((w | ones*0x20) ^ ones*'}'))
				if closes >= depth {
					break
				}
				depth += bits.OnesCount64(zeroBytes((w|ones*0x20)^ones*'{')) - closes
			}
			if i >= len(b) {
				break
			}
			switch nestClass[b[i]] {
			case 0:
				i++
				continue
			case nestOpen:
				depth++
			case nestClose:
				if depth--; depth == 0 {
					return i + 1
				}
			case nestQuote:
				if i, _ = quotedEnd(b, i); i < 0 {
					return -1
				}
				continue
			}
			i++
		}
		return -1
	}
	return jsonscan.ValueEnd(b, i) // number, true, false, null
}

// isIssName reports whether a quoted member name is read as "iss".
func isIssName(quoted []byte, escaped bool) bool {
	if !escaped {
		name := quoted[1 : len(quoted)-1]
		// Only 'i' and 'I' fold to 'i': most names are out at once.
		if len(name) < 3 || name[0] < utf8.RuneSelf && name[0]|0x20 != 'i' {
			return false
		}
		return string(name) == "iss" || foldIndex(name, issNames) == 0
	}
	// Each of the three runes of a name read as "iss" is written in at most
	// 6 bytes (\u0069; ſ takes 2): a longer name is not worth decoding.
	// A shorter one is decoded (see foldedName), without allocating, up
	// to its first rune that is not the next of iss.
	name := quoted[1 : len(quoted)-1]
	if len(name) > 3*6 || len(name) < 3 {
		return false
	}
	// Most names are out at their first byte: an i is i, I or \u0069 or
	// \u0049 (a two-byte escape is no letter).
	if c := name[0]; c|0x20 != 'i' && (c != '\\' || name[1] != 'u') {
		return false
	}
	return foldedIs(name, "iss")
}

// quotedEnd returns the offset just past the JSON string starting at b[i]
// and whether it has escapes, or -1 if it is unterminated.
func quotedEnd(b []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; ; j += 2 {
		for j < len(b) && !jsonStringSpecial[b[j]] {
			j++
		}
		if j >= len(b) {
			return -1, escaped
		}
		if b[j] == '"' {
			return j + 1, escaped
		}
		escaped = true // a backslash: skip it and the byte it escapes
	}
}

// Byte classes for the scans of issuerMember, as tables: they run over
// attacker input up to the token size limit, and a table lookup per byte is
// the cheapest test.
var jsonStringSpecial = [256]bool{'"': true, '\\': true}

// ones has a 1 in every byte: ones*c is c in every byte.
const ones = 0x0101010101010101

// zeroBytes returns w with 0x80 in each byte that is zero, and 0 in every
// other byte (exactly: no borrow crosses bytes).
func zeroBytes(w uint64) uint64 {
	const low7 = 0x7f7f7f7f7f7f7f7f
	return ^((w&low7 + low7) | w | low7)
}

// The classes of nestClass; 0 for any other byte.
const (
	nestOpen = 1 + iota
	nestClose
	nestQuote
)

var nestClass = [256]uint8{'{': nestOpen, '[': nestOpen, '}': nestClose, ']': nestClose, '"': nestQuote}

// headerMemo is the decoded header of a verified token.
type headerMemo struct {
	segment string // the header segment of the token, base64url
	h       header
}

// maxHeaders bounds the headers remembered by rememberHeader.
const maxHeaders = 16

// knownHeader returns the header decoded from segment before, if any.
func (v *Validator) knownHeader(segment string) (header, bool) {
	if known := v.headers.Load(); known != nil {
		for i := range *known {
			if m := &(*known)[i]; m.segment == segment {
				return m.h, true
			}
		}
	}
	return header{}, false
}

// rememberHeader remembers the header of a token that passed every check,
// so that the headers remembered are those of the trusted issuers' keys,
// never an arbitrary client's. A header with crit never gets here.
func (v *Validator) rememberHeader(segment string, h header) {
	known := v.headers.Load()
	if known != nil && len(*known) >= maxHeaders {
		return
	}
	var next []headerMemo
	if known != nil {
		next = slices.Clone(*known)
	}
	next = append(next, headerMemo{segment: strings.Clone(segment), h: h})
	v.headers.CompareAndSwap(known, &next) // a lost race only skips this one
}

// split finds the two dots of a compact JWS and checks that every byte is of
// the base64url alphabet or a dot. Go's base64 decoder skips \r and \n, so
// they must be refused here for the encoding to be strict.
func split(token string) (dot1, dot2 int, ok bool) {
	// Branch-free over the bytes, four at a time: the class of every byte
	// is ORed together, and the dots are found afterwards.
	var a, b, c, d byte
	rest := token
	for len(rest) >= 4 {
		a |= byteClass[rest[0]]
		b |= byteClass[rest[1]]
		c |= byteClass[rest[2]]
		d |= byteClass[rest[3]]
		rest = rest[4:]
	}
	for i := 0; i < len(rest); i++ {
		a |= byteClass[rest[i]]
	}
	if (a|b|c|d)&classOther != 0 {
		return 0, 0, false
	}
	dot1 = strings.IndexByte(token, '.')
	if dot1 < 0 {
		return 0, 0, false
	}
	dot2 = strings.IndexByte(token[dot1+1:], '.')
	if dot2 < 0 {
		return 0, 0, false
	}
	dot2 += dot1 + 1
	if strings.IndexByte(token[dot2+1:], '.') >= 0 {
		return 0, 0, false
	}
	return dot1, dot2, true
}

// The classes of byteClass.
const (
	classDot   = 1
	classOther = 2 // neither base64url nor a dot
)

// byteClass classifies bytes for split: 0 for the base64url alphabet.
var byteClass = func() (t [256]byte) {
	for c := range 256 {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '.':
			t[c] = classDot
		default:
			t[c] = classOther
		}
	}
	return t
}()

// structureError explains a token that is not three base64url segments.
func (v *Validator) structureError(token string) *Error {
	switch {
	case token == "":
		return fail(ReasonMalformed, "empty token")
	case isJWE(token):
		return fail(ReasonOpaque, "encrypted tokens (JWE) are not accepted here: tokenward does not decrypt them")
	case jwtShaped(token) && strings.Count(token, ".") == 2:
		return fail(ReasonMalformed, "token is not base64url")
	case jwtShaped(token):
		return fail(ReasonMalformed, "token does not have three segments")
	case strings.IndexByte(token, '.') < 0:
		return &Error{Reason: ReasonOpaque}
	}
	return fail(ReasonMalformed, "token does not have three segments")
}

// jwtShaped reports whether a token is a JWS, or could be read as one by a
// lenient parser: two dots or more (unless it is a JWE, see isJWE), or a
// first segment that decodes, with padding or the standard alphabet allowed,
// to a JSON object naming "alg". Such a token is verified locally or
// refused; it is never an opaque token to ask the issuer about.
func jwtShaped(token string) bool {
	if strings.Count(token, ".") >= 2 {
		return !isJWE(token)
	}
	return joseHeaderPrefix(token)
}

// joseHeaderPrefix reports whether the token's first segment (up to the
// first byte of neither base64 alphabet) decodes leniently to what starts a
// JSON object with an "alg" member.
func joseHeaderPrefix(token string) bool {
	end := 0
	for end < len(token) && (byteClass[token[end]] == 0 || token[end] == '+' || token[end] == '/') {
		end++
	}
	if end%4 == 1 {
		end-- // a lone trailing character carries no byte
	}
	var buf [512]byte
	seg := buf[:0]
	if end > len(buf) {
		seg = make([]byte, 0, end)
	}
	for i := range end {
		switch c := token[i]; c {
		case '+':
			seg = append(seg, '-')
		case '/':
			seg = append(seg, '_')
		default:
			seg = append(seg, c)
		}
	}
	// Decoded in place: the output is shorter than the input.
	n, err := base64.RawURLEncoding.Decode(seg, seg)
	if err != nil {
		return false
	}
	b := seg[:n]
	i := jsonscan.SkipSpace(b, 0)
	return i < len(b) && b[i] == '{' && bytes.Contains(b, []byte(`"alg"`))
}

// isJWE reports whether a token is a compact JWE (RFC 7516 §7.1): five
// base64url segments, the protected header a JSON object with "enc" and a
// key-management "alg", not a signature algorithm. tokenward cannot decrypt
// it; for the issuer it is an opaque token (Auth0's opaque access tokens are
// JWEs with "alg":"dir").
func isJWE(token string) bool {
	if strings.Count(token, ".") != 4 {
		return false
	}
	for i := range len(token) {
		if byteClass[token[i]]&classOther != 0 {
			return false
		}
	}
	seg, rest, _ := strings.Cut(token, ".")
	_, rest, _ = strings.Cut(rest, ".") // the encrypted key, empty with "dir"
	iv, rest, _ := strings.Cut(rest, ".")
	ciphertext, tag, _ := strings.Cut(rest, ".")
	if seg == "" || iv == "" || ciphertext == "" || tag == "" {
		return false
	}
	hdr, err := b64.DecodeString(seg)
	if err != nil {
		return false
	}
	var h struct {
		Alg *string `json:"alg"`
		Enc *string `json:"enc"`
	}
	if json.Unmarshal(hdr, &h) != nil || h.Alg == nil || h.Enc == nil || *h.Enc == "" {
		return false
	}
	return !signatureAlgorithm(*h.Alg)
}

// signatureAlgorithm reports whether alg names a JWS algorithm (RFC 7518
// §3.1, RFC 8037), implemented here or not.
func signatureAlgorithm(alg string) bool {
	switch strings.ToUpper(alg) {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
		"EDDSA", "HS256", "HS384", "HS512", "NONE", "ES256K", "ED25519", "ED448":
		return true
	}
	return false
}

func decodeSegment(dst, seg []byte) ([]byte, error) {
	return b64.AppendDecode(dst, seg)
}

// boundAlgorithm is the one algorithm a key published without "alg" verifies:
// the first configured algorithm its key fits (for an RSA key, the first of
// RS256…PS512 in the allow-list; an EC key fits only its curve's).
func (v *Validator) boundAlgorithm(pub any) string {
	for _, a := range v.algs {
		if algorithms[a].fits(pub) {
			return a
		}
	}
	return ""
}

func (v *Validator) algorithm(name string) (algorithm, bool) {
	for _, a := range v.algs {
		if a == name {
			return algorithms[a], true
		}
	}
	return algorithm{}, false
}

// checkType enforces "typ" (RFC 9068 §4, RFC 8725 §3.11): another explicit
// type (an ID token's "JWT" aside) is another kind of JWT and is refused.
func (v *Validator) checkType(typ *string) *Error {
	if typ == nil {
		if v.requireAT {
			return fail(ReasonType, "token type must be at+jwt")
		}
		return nil
	}
	t := *typ
	switch {
	case strings.EqualFold(t, "at+jwt"), strings.EqualFold(t, "application/at+jwt"):
		return nil
	case strings.EqualFold(t, "JWT") && !v.requireAT:
		return nil
	case v.requireAT:
		return fail(ReasonType, "token type must be at+jwt")
	}
	return &Error{Reason: ReasonType}
}

func (v *Validator) audienceAccepted(aud []string) bool {
	for _, a := range aud {
		if slices.Contains(v.audiences, a) {
			return true
		}
	}
	return false
}

// ago renders a duration for an operator, rounded for reading.
func ago(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Minute:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}

// issuerHint explains an untrusted iss for the log: the classic mistakes are a
// missing trailing slash, http for https, and a token from the tenant domain
// when only the custom domain is trusted.
func issuerHint(iss string, trusted []string) string {
	if len(iss) > 200 {
		iss = iss[:200]
	}
	if iss == "" {
		return "token has no iss claim"
	}
	for _, t := range trusted {
		switch {
		case strings.TrimSuffix(iss, "/") == strings.TrimSuffix(t, "/"):
			return fmt.Sprintf("iss %q differs from trusted issuer %q only by a trailing slash", iss, t)
		case stripScheme(iss) == stripScheme(t):
			return fmt.Sprintf("iss %q differs from trusted issuer %q only by its scheme", iss, t)
		case strings.EqualFold(iss, t):
			return fmt.Sprintf("iss %q differs from trusted issuer %q only in letter case", iss, t)
		}
	}
	if isAuth0Tenant(iss) {
		for _, t := range trusted {
			if !isAuth0Tenant(t) {
				return fmt.Sprintf("iss %q is an Auth0 tenant domain, but only a custom domain is trusted; tokens requested from the tenant domain carry it: trust it too if that is intended", iss)
			}
		}
	}
	return fmt.Sprintf("iss %q is not a trusted issuer %q", iss, trusted)
}

func stripScheme(s string) string {
	s = strings.TrimPrefix(s, "https://")
	return strings.TrimPrefix(s, "http://")
}

func isAuth0Tenant(iss string) bool {
	host := stripScheme(iss)
	host, _, _ = strings.Cut(host, "/")
	return strings.HasSuffix(host, ".auth0.com")
}

func audienceHint(aud, accepted []string) string {
	if len(aud) == 0 {
		return "token has no aud claim"
	}
	shown := aud
	if len(shown) > 5 {
		shown = shown[:5]
	}
	return fmt.Sprintf("aud %.200q has none of %q", shown, accepted)
}
