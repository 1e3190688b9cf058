package dpop

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenward/tokenward/internal/jsonscan"
)

// The errors [Verifier.Parse] wraps, one per check, so that a caller maps
// each to its own reason with [errors.Is].
var (
	ErrTooLarge  = errors.New("dpop: proof too large")
	ErrMalformed = errors.New("dpop: proof malformed")
	ErrType      = errors.New("dpop: proof typ is not dpop+jwt")
	ErrAlgorithm = errors.New("dpop: proof algorithm not accepted")
	ErrKey       = errors.New("dpop: proof jwk missing, private or not usable")
	ErrSignature = errors.New("dpop: proof signature invalid")
	ErrBinding   = errors.New("dpop: proof key is not the one the token is bound to")
)

// Algorithms are the proof algorithms a [Verifier] can accept: asymmetric
// only. "none" and HMAC (HS*) are never accepted: a proof must show
// possession of a private key whose public half is in the proof. "Ed25519"
// is RFC 9864's fully-specified name for EdDSA with an Ed25519 key, which
// DPoP clients now send (the npm package dpop does); each name must be
// allowed on its own.
var Algorithms = []string{"ES256", "ES384", "RS256", "PS256", "EdDSA", "Ed25519"}

// DefaultAlgorithms is what a [Verifier] accepts when its options name none.
var DefaultAlgorithms = []string{"ES256"}

// DefaultMaxBytes bounds a proof when [VerifierOptions].MaxBytes is zero:
// an RSA-4096 proof is under 2 KiB.
const DefaultMaxBytes = 8192

// maxMembers bounds the members of a proof's header, of its claims and of
// its jwk, so that hostile JSON costs little even within the size limit.
const maxMembers = 24

// minRSABits is the smallest RSA modulus accepted in a proof's jwk.
const minRSABits = 2048

// VerifierOptions tunes a [Verifier]. The zero value accepts ES256 proofs of
// up to [DefaultMaxBytes].
type VerifierOptions struct {
	// Algorithms are the accepted proof algorithms, from [Algorithms].
	// Nil means [DefaultAlgorithms].
	Algorithms []string
	// MaxBytes bounds the proof's length, checked before any decoding.
	// Zero means [DefaultMaxBytes].
	MaxBytes int
}

// Verifier parses proofs and checks their structure, key and signature
// (RFC 9449 §4.3 steps 1–7). What depends on the request — htm, htu, iat,
// jti, ath, nonce, the token's cnf.jkt — is the caller's to check against
// the [Proof] it returns. A Verifier is safe for concurrent use.
type Verifier struct {
	algs     []string
	maxBytes int
}

// NewVerifier returns a verifier, or every problem with opts at once.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	var errs []error
	algs := opts.Algorithms
	if algs == nil {
		algs = DefaultAlgorithms
	}
	if len(algs) == 0 {
		errs = append(errs, errors.New("dpop: no proof algorithm accepted"))
	}
	for _, a := range algs {
		if !slices.Contains(Algorithms, a) {
			errs = append(errs, fmt.Errorf("dpop: proof algorithm %q not supported (want one of %s; never none or HMAC)", a, strings.Join(Algorithms, ", ")))
		}
	}
	if opts.MaxBytes < 0 {
		errs = append(errs, errors.New("dpop: negative MaxBytes"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	max := opts.MaxBytes
	if max == 0 {
		max = DefaultMaxBytes
	}
	return &Verifier{algs: slices.Clone(algs), maxBytes: max}, nil
}

// Algorithms returns the accepted algorithms, for challenges (algs="…").
func (v *Verifier) Algorithms() []string { return slices.Clone(v.algs) }

// MaxBytes is the proof size limit.
func (v *Verifier) MaxBytes() int { return v.maxBytes }

// Proof is a proof whose structure, key and signature verified.
type Proof struct {
	Algorithm  string           // alg
	Key        crypto.PublicKey // the jwk header: *ecdsa.PublicKey, ed25519.PublicKey or *rsa.PublicKey
	Thumbprint string           // RFC 7638 thumbprint of Key, as cnf.jkt holds it
	Method     string           // htm
	URL        string           // htu, as sent
	IssuedAt   time.Time        // iat
	ID         string           // jti; "" when absent (the caller refuses it)
	TokenHash  string           // ath; "" when absent
	Nonce      string           // nonce; "" when absent
	HasIAT     bool             // iat was present
}

// ReplayID is the [Store] key of the proof: the SHA-256 of its key
// thumbprint and jti, so that two keys' jti never collide.
func (p *Proof) ReplayID() [32]byte {
	h := sha256.New()
	h.Write([]byte(p.Thumbprint))
	h.Write([]byte{0})
	h.Write([]byte(p.ID))
	var id [32]byte
	h.Sum(id[:0])
	return id
}

// TokenHash is the ath of a proof for token (RFC 9449 §4.2): the base64url
// (unpadded) SHA-256 of the token's ASCII.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// proofHeader and proofClaims are what Parse reads of a proof: strings
// unescaped, jwk and iat as their JSON text.
type proofHeader struct {
	typ, alg string
	jwk      []byte
}

type proofClaims struct {
	htm, htu, jti, ath, nonce string
	iat                       []byte
}

func parseHeader(b []byte) (h proofHeader, err error) {
	err = walkObject(b, func(name, v []byte) (err error) {
		switch string(name) {
		case "typ":
			h.typ, err = jsonString(v)
		case "alg":
			h.alg, err = jsonString(v)
		case "jwk":
			if v[0] != '{' {
				return errors.New("jwk is not an object")
			}
			h.jwk = v
		case "crit":
			// RFC 7515 §4.1.11: a JWS naming an extension the recipient
			// does not understand (b64, say, RFC 7797) is invalid; this
			// verifier understands none.
			return errors.New("crit names an extension not understood")
		}
		return err
	})
	return h, err
}

func parseClaims(b []byte) (c proofClaims, err error) {
	err = walkObject(b, func(name, v []byte) (err error) {
		switch string(name) {
		case "htm":
			c.htm, err = jsonString(v)
		case "htu":
			c.htu, err = jsonString(v)
		case "jti":
			c.jti, err = jsonString(v)
		case "ath":
			c.ath, err = jsonString(v)
		case "nonce":
			c.nonce, err = jsonString(v)
		case "iat":
			// A JSON number only: not a string, even one of digits.
			if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
				return errors.New("iat is not a number")
			}
			c.iat = v
		}
		return err
	})
	return c, err
}

// jsonString returns the string a JSON value holds; an error for any other
// kind of value.
func jsonString(v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' {
		return "", errors.New("a member is not a string")
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", errors.New("a member is not a string")
	}
	return s, nil
}

// Parse checks proof's size, structure, typ, alg, jwk and signature, in
// that order, and returns it. Errors wrap [ErrTooLarge], [ErrMalformed],
// [ErrType], [ErrAlgorithm], [ErrKey] or [ErrSignature] ([ErrBinding] too
// from [Verifier.ParseFor]); their text may
// quote header values, never the proof.
func (v *Verifier) Parse(proof string) (*Proof, error) { return v.parse(proof, nil) }

// ParseFor is [Verifier.Parse] for a token bound to the key of thumbprint
// jkt (cnf.jkt): a proof whose jwk has another thumbprint is refused with
// [ErrBinding] before its signature is verified, so that a client cannot
// make the verifier spend a signature verification (milliseconds for a
// large RSA key) on a key of its choosing.
func (v *Verifier) ParseFor(proof, jkt string) (*Proof, error) { return v.parse(proof, &jkt) }

func (v *Verifier) parse(proof string, jkt *string) (*Proof, error) {
	// The size first: nothing is decoded from an oversized proof.
	if len(proof) > v.maxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(proof), v.maxBytes)
	}
	h64, rest, ok1 := strings.Cut(proof, ".")
	c64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(s64, '.') >= 0 {
		return nil, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	enc := base64.RawURLEncoding.Strict()
	hb, err := enc.DecodeString(h64)
	if err != nil {
		return nil, fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	cb, err := enc.DecodeString(c64)
	if err != nil {
		return nil, fmt.Errorf("%w: claims are not base64url", ErrMalformed)
	}
	sig, err := enc.DecodeString(s64)
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not base64url", ErrMalformed)
	}
	h, err := parseHeader(hb)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	c, err := parseClaims(cb)
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if h.typ != "dpop+jwt" {
		return nil, fmt.Errorf("%w: typ %q", ErrType, truncate(h.typ))
	}
	if !slices.Contains(v.algs, h.alg) {
		return nil, fmt.Errorf("%w: alg %q", ErrAlgorithm, truncate(h.alg))
	}
	if h.jwk == nil {
		return nil, fmt.Errorf("%w: no jwk header", ErrKey)
	}
	key, thumb, err := parseJWK(h.jwk, h.alg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	if jkt != nil && subtle.ConstantTimeCompare([]byte(thumb), []byte(*jkt)) != 1 {
		return nil, fmt.Errorf("%w: thumbprint %s", ErrBinding, thumb)
	}
	if !verify(h.alg, key, proof[:len(h64)+1+len(c64)], sig) {
		return nil, ErrSignature
	}
	p := &Proof{Algorithm: h.alg, Key: key, Thumbprint: thumb, Method: c.htm, URL: c.htu, ID: c.jti, TokenHash: c.ath, Nonce: c.nonce}
	if c.iat != nil {
		f, err := strconv.ParseFloat(string(c.iat), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
			return nil, fmt.Errorf("%w: iat is not a NumericDate", ErrMalformed)
		}
		sec, frac := math.Modf(f)
		p.IssuedAt, p.HasIAT = time.Unix(int64(sec), int64(frac*1e9)), true
	}
	return p, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// walkObject calls fn with each member of the JSON object b: its name and
// its value's JSON text. b must be one JSON object of at most maxMembers
// members, with no member twice — in any case, so that no reader matching
// names case-insensitively sees another value — and no escaped member
// name: a duplicate would let another reader of the same proof see other
// values. It walks the top level only, and allocates nothing itself.
func walkObject(b []byte, fn func(name, value []byte) error) error {
	if !jsonscan.ValidObject(b) {
		return errors.New("not a JSON object")
	}
	var names [maxMembers][]byte
	n := 0
	for m := jsonscan.NewMembers(b); ; {
		ns, ne, vs, ve, ok := m.Next()
		if !ok {
			return nil
		}
		name := b[ns:ne]
		if bytes.IndexByte(name, '\\') >= 0 {
			return errors.New("escaped member name")
		}
		for _, seen := range names[:n] {
			if bytes.EqualFold(seen, name) {
				return fmt.Errorf("member %q twice", truncate(string(name)))
			}
		}
		if n == maxMembers {
			return errors.New("too many members")
		}
		names[n] = name
		n++
		if err := fn(name, b[vs:ve]); err != nil {
			return err
		}
	}
}

// privateMembers are the JWK members of private or symmetric keys
// (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2): a proof carrying one gave
// its secret away, and is refused.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// jwk is the part of a JWK a proof's key is read from.
type jwk struct {
	kty, crv, x, y, n, e string
}

// parseJWK reads a proof's public key, which must fit alg, and returns it
// with its RFC 7638 thumbprint.
func parseJWK(b []byte, alg string) (crypto.PublicKey, string, error) {
	var j jwk
	err := walkObject(b, func(name, v []byte) (err error) {
		switch string(name) {
		case "kty":
			j.kty, err = jsonString(v)
		case "crv":
			j.crv, err = jsonString(v)
		case "x":
			j.x, err = jsonString(v)
		case "y":
			j.y, err = jsonString(v)
		case "n":
			j.n, err = jsonString(v)
		case "e":
			j.e, err = jsonString(v)
		default:
			if slices.Contains(privateMembers, string(name)) {
				return fmt.Errorf("has the private member %q", name)
			}
		}
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("jwk: %v", err)
	}
	enc := base64.RawURLEncoding.Strict()
	var pub crypto.PublicKey
	switch alg {
	case "ES256", "ES384":
		curve, crv, size := elliptic.P256(), "P-256", 32
		if alg == "ES384" {
			curve, crv, size = elliptic.P384(), "P-384", 48
		}
		if j.kty != "EC" || j.crv != crv {
			return nil, "", fmt.Errorf("jwk is not an EC %s key", crv)
		}
		x, errx := enc.DecodeString(j.x)
		y, erry := enc.DecodeString(j.y)
		if errx != nil || erry != nil || len(x) != size || len(y) != size {
			return nil, "", errors.New("jwk x or y is not a base64url coordinate of the curve's size")
		}
		k, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, "", errors.New("jwk is not a point on the curve")
		}
		pub = k
	case "EdDSA", "Ed25519":
		if j.kty != "OKP" || j.crv != "Ed25519" {
			return nil, "", errors.New("jwk is not an OKP Ed25519 key")
		}
		x, err := enc.DecodeString(j.x)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, "", errors.New("jwk x is not a base64url Ed25519 key")
		}
		if smallOrder(x) {
			return nil, "", errors.New("jwk x is an Ed25519 point of small order")
		}
		pub = ed25519.PublicKey(x)
	case "RS256", "PS256":
		if j.kty != "RSA" {
			return nil, "", errors.New("jwk is not an RSA key")
		}
		n, errn := enc.DecodeString(j.n)
		e, erre := enc.DecodeString(j.e)
		if errn != nil || erre != nil || len(n) == 0 || n[0] == 0 || len(e) == 0 || len(e) > 4 || e[0] == 0 {
			return nil, "", errors.New("jwk n or e is not a minimal base64url integer")
		}
		k := &rsa.PublicKey{N: new(big.Int).SetBytes(n)}
		for _, c := range e {
			k.E = k.E<<8 | int(c)
		}
		if k.N.BitLen() < minRSABits || k.N.BitLen() > 8192 || k.E < 3 || k.E&1 == 0 {
			return nil, "", fmt.Errorf("jwk RSA key of %d bits, or exponent %d, not accepted", k.N.BitLen(), k.E)
		}
		pub = k
	default:
		return nil, "", fmt.Errorf("no key type for alg %q", alg)
	}
	t, err := Thumbprint(pub)
	return pub, t, err
}

// smallOrderY are the y coordinates, little-endian, of the Ed25519 points
// of small order (orders 1, 2, 4 and 8) in every encoding that decodes,
// the non-canonical ones (y+p) included: libsodium's list. A signature
// verifies under such a key with no private key at all (the identity
// accepts R=identity, S=0 over any message), so it proves nothing.
var smallOrderY = [...][32]byte{
	{0x00}, // y=0: order 4
	{0x01}, // y=1: the identity
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05}, // order 8
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a}, // order 8
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // y=p-1: order 2
	{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // y=p, that is 0
	{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // y=p+1, that is 1
}

// smallOrder reports whether the Ed25519 public key x is a point of small
// order, whatever the sign bit of its x coordinate.
func smallOrder(x []byte) bool {
	var y [32]byte
	copy(y[:], x)
	y[31] &= 0x7f
	for _, s := range smallOrderY {
		if y == s {
			return true
		}
	}
	return false
}

// Thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url unpadded)
// of an ECDSA (P-256, P-384, P-521), Ed25519 or RSA public key: the value of
// a DPoP-bound token's cnf.jkt (RFC 9449 §6.1).
func Thumbprint(pub crypto.PublicKey) (string, error) {
	enc := base64.RawURLEncoding
	var s string
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		var crv string
		switch k.Curve {
		case elliptic.P256():
			crv = "P-256"
		case elliptic.P384():
			crv = "P-384"
		case elliptic.P521():
			crv = "P-521"
		default:
			return "", errors.New("dpop: thumbprint of an unsupported curve")
		}
		b, err := k.Bytes()
		if err != nil {
			return "", fmt.Errorf("dpop: thumbprint: %w", err)
		}
		size := (len(b) - 1) / 2
		s = `{"crv":"` + crv + `","kty":"EC","x":"` + enc.EncodeToString(b[1:1+size]) + `","y":"` + enc.EncodeToString(b[1+size:]) + `"}`
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", errors.New("dpop: thumbprint of a malformed Ed25519 key")
		}
		s = `{"crv":"Ed25519","kty":"OKP","x":"` + enc.EncodeToString(k) + `"}`
	case *rsa.PublicKey:
		if k.N == nil || k.E <= 0 {
			return "", errors.New("dpop: thumbprint of a malformed RSA key")
		}
		s = `{"e":"` + enc.EncodeToString(big.NewInt(int64(k.E)).Bytes()) + `","kty":"RSA","n":"` + enc.EncodeToString(k.N.Bytes()) + `"}`
	default:
		return "", fmt.Errorf("dpop: thumbprint of an unsupported key type %T", pub)
	}
	sum := sha256.Sum256([]byte(s))
	return enc.EncodeToString(sum[:]), nil
}

// verify checks a JWS signature over input with pub, for alg.
func verify(alg string, pub crypto.PublicKey, input string, sig []byte) bool {
	switch alg {
	case "ES256", "ES384":
		k := pub.(*ecdsa.PublicKey)
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		var digest []byte
		if alg == "ES256" {
			d := sha256.Sum256([]byte(input))
			digest = d[:]
		} else {
			d := sha512.Sum384([]byte(input))
			digest = d[:]
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, digest, r, s)
	case "EdDSA", "Ed25519":
		return ed25519.Verify(pub.(ed25519.PublicKey), []byte(input), sig)
	case "RS256", "PS256":
		k := pub.(*rsa.PublicKey)
		d := sha256.Sum256([]byte(input))
		if alg == "RS256" {
			return rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], sig) == nil
		}
		return rsa.VerifyPSS(k, crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	}
	return false
}
