package middleware

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/tokenward/tokenward/internal/jsonscan"
	"github.com/tokenward/tokenward/scopes"
)

// Claims are the verified claims of an access token.
type Claims struct {
	Issuer    string    // iss
	Subject   string    // sub
	Audience  []string  // aud, always as a list
	ExpiresAt time.Time // exp
	NotBefore time.Time // nbf; zero when absent
	IssuedAt  time.Time // iat; zero when absent
	ID        string    // jti; "" when absent
	ClientID  string    // client_id (RFC 9068), else azp; "" when absent
	// Scopes are the granted scopes: the union of "scope" (space-delimited),
	// "scp" (string or array) and "permissions" (Auth0 RBAC).
	Scopes scopes.Set
	// Kind says where the claims come from: a verified JWT, an RFC 7662
	// introspection answer, or a /userinfo profile.
	Kind Kind
	// b64Raw: raw is the claims segment of a cache hit's token, which
	// Decode decodes (see entry.go). Here, it fits in Kind's padding.
	b64Raw bool
	// Confirmation is the cnf claim (RFC 7800): the token is
	// sender-constrained, usable only with the proof it names. Nil means
	// no cnf: a bearer token. [Guard.Check] refuses a token with one unless
	// the request proves it (see [Confirmation]).
	Confirmation *Confirmation
	// TokenType is the scheme the token was presented with:
	// TokenTypeBearer ("Bearer") or TokenTypeDPoP ("DPoP"), set by
	// [Guard.Check]; "" from [Validator.Validate].
	TokenType string

	raw       []byte // the claims JSON, for Decode; base64url with b64Raw
	dpopNonce string // the nonce of the request's DPoP proof, for Guard.NonceHeader
}

// Confirmation is a token's cnf claim (RFC 7800): what a request must prove
// to use the token. [Guard.Check] accepts a token with a Confirmation only
// when Unsupported is false and the request proves each binding it names:
// a client certificate with the CertThumbprint (RFC 8705 §3), and the DPoP
// scheme with a proof by the key of KeyThumbprint (RFC 9449). Everything
// else is refused, never taken for a bearer token.
type Confirmation struct {
	// CertThumbprint is x5t#S256 (RFC 8705 §3.1): the base64url
	// (unpadded) SHA-256 of the DER of the client certificate the token
	// is bound to. "" when absent.
	CertThumbprint string
	// KeyThumbprint is jkt (RFC 9449 §6.1): the token is bound to a DPoP
	// key, and [Guard.Check] accepts it only with the DPoP scheme and a
	// proof signed by that key. "" when absent.
	KeyThumbprint string
	// Unsupported is true when cnf has a member other than x5t#S256 and
	// jkt (RFC 7800's jwk, jwe, jku, kid, or any other), or no member at
	// all: a binding tokenward cannot check, so the token is refused.
	Unsupported bool
}

// Kind is the source of [Claims].
type Kind uint8

const (
	KindJWT           Kind = iota // a JWT verified locally
	KindIntrospection             // an RFC 7662 introspection answer
	KindUserInfo                  // a /userinfo profile: no audience, no scopes
)

// ParseClaims reads claims from JSON with the same rules as a token's: the
// same limits, registered claims of the right types, no duplicates among
// them. It is for [OpaqueChecker] implementations turning an issuer's answer
// into claims; it verifies nothing. The claims share no memory with data,
// which the caller may reuse.
func ParseClaims(data []byte, kind Kind) (*Claims, error) {
	// The claims' strings point into their JSON (see decodeFast): into a
	// copy that only they hold.
	data = bytes.Clone(data)
	if err := scanObject(data, registered); err != nil {
		return nil, &Error{Reason: ReasonMalformed, Description: "claims are not a valid JSON object", Err: err}
	}
	wc, err := decodeClaims(data)
	if err != nil {
		return nil, &Error{Reason: ReasonMalformed, Description: "claims are not valid", Err: err}
	}
	c := wc.claims(data)
	c.Kind = kind
	return c, nil
}

func (wc *wireClaims) claims(raw []byte) *Claims {
	c := &Claims{
		Issuer:    wc.Iss,
		Subject:   wc.Sub,
		Audience:  wc.Aud,
		ExpiresAt: wc.Exp.t,
		NotBefore: wc.Nbf.t,
		IssuedAt:  wc.Iat.t,
		ID:        wc.Jti,
		ClientID:  wc.ClientID,
		Scopes:    scopes.Union(wc.Scope, wc.Scp, wc.Permissions),
		raw:       raw,
	}
	if wc.Cnf.present {
		c.Confirmation = &Confirmation{CertThumbprint: wc.Cnf.cert, KeyThumbprint: wc.Cnf.jkt, Unsupported: wc.Cnf.other}
	}
	if c.ClientID == "" {
		c.ClientID = wc.Azp
	}
	return c
}

// Decode unmarshals the claims JSON into v, for custom claims:
//
//	var custom struct {
//		Roles []string `json:"https://example.com/roles"`
//	}
//	err := claims.Decode(&custom)
func (c *Claims) Decode(v any) error {
	raw, owned := c.json()
	if raw == nil && !owned {
		return errors.New("tokenward: no claims")
	}
	return json.Unmarshal(raw, v)
}

// JSON returns a copy of the claims JSON as it was in the token.
func (c *Claims) JSON() []byte {
	raw, owned := c.json()
	if owned || raw == nil {
		return raw
	}
	return append([]byte(nil), raw...)
}

// json returns the claims JSON: raw, or the payload of a cache hit decoded
// (owned: a fresh copy). The payload was verified when the token was
// cached, and a hit has the same SHA-256: it decodes.
func (c *Claims) json() (raw []byte, owned bool) {
	switch {
	case c == nil:
		return nil, false
	case c.b64Raw:
		b := make([]byte, base64.RawURLEncoding.DecodedLen(len(c.raw)))
		n, err := base64.RawURLEncoding.Strict().Decode(b, c.raw)
		if err != nil {
			return nil, false
		}
		return b[:n], true
	}
	return c.raw, false
}

// registered are the claim names the validator acts on; duplicates of these
// are refused (see scanObject). At most 64.
var registered = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope", "scp", "permissions", "client_id", "azp", "cnf"}

// wireClaims is the JSON shape of the registered claims. A claim of the wrong
// JSON type fails decoding, so the token is refused rather than read loosely.
type wireClaims struct {
	Iss         string       `json:"iss"`
	Sub         string       `json:"sub"`
	Aud         audience     `json:"aud"`
	Exp         numericDate  `json:"exp"`
	Nbf         numericDate  `json:"nbf"`
	Iat         numericDate  `json:"iat"`
	Jti         string       `json:"jti"`
	Scope       scopes.Set   `json:"scope"`
	Scp         scopes.Set   `json:"scp"`
	Permissions scopes.Set   `json:"permissions"`
	ClientID    string       `json:"client_id"`
	Azp         string       `json:"azp"`
	Cnf         confirmation `json:"cnf"`
}

// decodeClaims decodes the registered claims exactly as json.Unmarshal into
// wireClaims does; the usual shapes take a fast path without reflection.
func decodeClaims(payload []byte) (wireClaims, error) {
	var wc wireClaims
	if wc.decodeFast(payload) {
		return wc, nil
	}
	return decodeClaimsJSON(payload)
}

// decodeClaimsJSON is the slow path of decodeClaims, in a function of its
// own so that the fast path's wireClaims stays on the stack.
func decodeClaimsJSON(payload []byte) (wireClaims, error) {
	var wc wireClaims
	err := json.Unmarshal(payload, &wc)
	return wc, err
}

// decodeFast decodes b as json.Unmarshal would, when every string-typed
// registered claim (iss, sub, jti, client_id, azp) is a string of printable
// ASCII without escapes and no registered name is spelled otherwise: those
// strings, and the usual string and array shapes of aud and the scope
// claims, share the memory of b, which must not be modified afterwards; the
// other claims go through their own UnmarshalJSON, as with encoding/json. For anything else it reports false, and b is left to
// encoding/json: it need only be right about what it accepts.
func (wc *wireClaims) decodeFast(b []byte) bool {
	if !jsonscan.ValidObject(b) {
		return false
	}
	// The strings are substrings of b, which the caller never modifies
	// (it becomes Claims.raw).
	text := unsafe.String(unsafe.SliceData(b), len(b))
	str := func(vs, ve int) (string, bool) {
		if !jsonscan.SimpleString(b[vs:ve]) {
			return "", false
		}
		return text[vs+1 : ve-1], true
	}
	m := jsonscan.NewMembers(b)
	for {
		ns, ne, vs, ve, more := m.Next()
		if !more {
			return true
		}
		name, value := b[ns:ne], b[vs:ve]
		ok := true
		var err error
		switch string(name) {
		case "iss":
			wc.Iss, ok = str(vs, ve)
		case "sub":
			wc.Sub, ok = str(vs, ve)
		case "jti":
			wc.Jti, ok = str(vs, ve)
		case "client_id":
			wc.ClientID, ok = str(vs, ve)
		case "azp":
			wc.Azp, ok = str(vs, ve)
		case "aud":
			if s, isString := str(vs, ve); isString {
				wc.Aud = audience{s}
			} else if list, isList := simpleArray(b, vs, str, nil); isList {
				wc.Aud = list
			} else {
				err = wc.Aud.UnmarshalJSON(value)
			}
		case "exp":
			err = wc.Exp.UnmarshalJSON(value)
		case "nbf":
			err = wc.Nbf.UnmarshalJSON(value)
		case "iat":
			err = wc.Iat.UnmarshalJSON(value)
		case "scope", "scp":
			set := &wc.Scope
			if string(name) == "scp" {
				set = &wc.Scp
			}
			*set, err = scopeSet(b, vs, ve, str)
		case "permissions":
			wc.Permissions, err = scopeSet(b, vs, ve, str)
		case "cnf":
			wc.Cnf, err = parseConfirmation(value)
		default:
			if bytes.IndexByte(name, '\\') >= 0 || foldIndex(name, registered) >= 0 {
				return false
			}
		}
		if !ok || err != nil {
			return false
		}
	}
}

// scopeSet decodes a scope claim at b[vs:ve] as scopes.Set's UnmarshalJSON
// does, with the usual shapes' strings in b's memory.
func scopeSet(b []byte, vs, ve int, str func(vs, ve int) (string, bool)) (scopes.Set, error) {
	if s, isString := str(vs, ve); isString {
		return scopes.Parse(s), nil
	}
	var buf [16]string
	if list, isList := simpleArray(b, vs, str, buf[:0]); isList {
		return scopes.New(list...), nil
	}
	var set scopes.Set
	err := set.UnmarshalJSON(b[vs:ve])
	return set, err
}

// simpleArray returns the strings of the JSON array at b[vs] if every
// element is a string str accepts, appended to dst if it has room for them.
// b must be valid JSON.
func simpleArray(b []byte, vs int, str func(vs, ve int) (string, bool), dst []string) ([]string, bool) {
	if b[vs] != '[' {
		return nil, false
	}
	// next returns the offset of the element after the string ending at end.
	next := func(end int) int {
		i := jsonscan.SkipSpace(b, end)
		if b[i] == ',' {
			i = jsonscan.SkipSpace(b, i+1)
		}
		return i
	}
	n, i := 0, jsonscan.SkipSpace(b, vs+1)
	for ; b[i] == '"'; n++ {
		end := jsonscan.StringEnd(b, i)
		if !jsonscan.SimpleString(b[i:end]) {
			return nil, false
		}
		i = next(end)
	}
	if b[i] != ']' {
		return nil, false
	}
	list := dst[:0]
	if list == nil || cap(list) < n {
		list = make([]string, 0, n)
	}
	for i = jsonscan.SkipSpace(b, vs+1); b[i] == '"'; {
		end := jsonscan.StringEnd(b, i)
		s, _ := str(i, end)
		list = append(list, s)
		i = next(end)
	}
	return list, true
}

// confirmation is "cnf" (RFC 7800) as decoded: an object whose members name
// how the token is bound. Anything but an object (null included) is an
// error, so the token is refused rather than taken for a bearer token.
type confirmation struct {
	present bool
	cert    string // x5t#S256
	jkt     string // jkt
	other   bool   // another member, or none
}

// cnfWatched are the cnf members whose duplicates are refused, as scanObject
// refuses duplicate registered claims: parsers that keep the first of two
// x5t#S256 would bind the token to another certificate than ours.
var cnfWatched = []string{"x5t#s256", "jkt"}

func (c *confirmation) UnmarshalJSON(b []byte) error {
	var err error
	*c, err = parseConfirmation(b)
	return err
}

// parseConfirmation decodes cnf. A function of its own, returning by
// value, so that decodeFast's wireClaims stays on the stack.
func parseConfirmation(b []byte) (confirmation, error) {
	var c confirmation
	if len(b) == 0 || b[0] != '{' || !jsonscan.ValidObject(b) {
		return c, errors.New("cnf is not a JSON object")
	}
	if err := scanObject(b, cnfWatched); err != nil {
		return c, err
	}
	c.present = true
	m := jsonscan.NewMembers(b)
	for n := 0; ; n++ {
		ns, ne, vs, ve, more := m.Next()
		if !more {
			if n == 0 {
				c.other = true // no member: a binding nobody can check
			}
			return c, nil
		}
		name := string(b[ns:ne])
		if bytes.IndexByte(b[ns:ne], '\\') >= 0 {
			var unq string
			if err := json.Unmarshal(b[ns-1:ne+1], &unq); err != nil {
				return c, err
			}
			name = unq
		}
		if name != "x5t#S256" && name != "jkt" { // exact: "X5T#S256" is another member, so refused
			c.other = true
			continue
		}
		if b[vs] != '"' {
			return c, errors.New("cnf." + name + " is not a string")
		}
		var v string
		if err := json.Unmarshal(b[vs:ve], &v); err != nil {
			return c, err
		}
		if name == "jkt" {
			c.jkt = v
		} else {
			c.cert = v
		}
	}
}

// audience is "aud": a string or an array of strings (RFC 7519 §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	case len(b) > 0 && b[0] == '[':
		var list []string
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		*a = list
		return nil
	case string(b) == "null":
		return nil
	}
	return errors.New("aud is neither a string nor an array of strings")
}

// numericDate is an RFC 7519 NumericDate: seconds since the epoch, possibly
// fractional. Strings and dates before 1970 are refused: no access token was
// issued then, and year 1 would decode to the zero time.Time, which some
// checks read as "absent".
type numericDate struct {
	t   time.Time
	set bool
}

// maxSeconds keeps dates far from time.Time's limits (year 5138).
const maxSeconds = 1e11

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxSeconds {
		return errors.New("not a NumericDate")
	}
	sec, frac := math.Modf(f)
	d.t = time.Unix(int64(sec), int64(frac*1e9))
	d.set = true
	return nil
}
