package jwkstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// rsaBits is the size of the RSA keys NewKey generates: the smallest size
// verifiers commonly accept, and the slowest thing this package does.
const rsaBits = 2048

// family says how an algorithm turns a signing input into a signature.
type family int

const (
	familyRSA   family = iota // RSASSA-PKCS1-v1_5 (RS*)
	familyPSS                 // RSASSA-PSS, salt length = hash length (PS*)
	familyECDSA               // ECDSA, raw R||S (ES*)
	familyEdDSA               // Ed25519 (EdDSA)
)

// algorithm describes one JWS "alg" value (RFC 7518 §3, RFC 8037).
type algorithm struct {
	family family
	hash   crypto.Hash    // digest signed; 0 for EdDSA, which signs the message itself
	curve  elliptic.Curve // ECDSA only
	size   int            // ECDSA only: bytes of R and of S in the signature, and of x and y in the JWK
	crv    string         // ECDSA only: JWK "crv"
}

var algorithms = map[string]algorithm{
	"RS256": {family: familyRSA, hash: crypto.SHA256},
	"RS384": {family: familyRSA, hash: crypto.SHA384},
	"RS512": {family: familyRSA, hash: crypto.SHA512},
	"PS256": {family: familyPSS, hash: crypto.SHA256},
	"PS384": {family: familyPSS, hash: crypto.SHA384},
	"PS512": {family: familyPSS, hash: crypto.SHA512},
	"ES256": {family: familyECDSA, hash: crypto.SHA256, curve: elliptic.P256(), size: 32, crv: "P-256"},
	"ES384": {family: familyECDSA, hash: crypto.SHA384, curve: elliptic.P384(), size: 48, crv: "P-384"},
	"ES512": {family: familyECDSA, hash: crypto.SHA512, curve: elliptic.P521(), size: 66, crv: "P-521"},
	"EdDSA": {family: familyEdDSA},
}

func lookupAlgorithm(alg string) (algorithm, error) {
	a, ok := algorithms[alg]
	if !ok {
		return algorithm{}, fmt.Errorf("jwkstest: unsupported algorithm %q (want RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA)", alg)
	}
	return a, nil
}

// A Key is an asymmetric signing key with its key ID and algorithm. Keys made
// by [NewKey], [Issuer.AddKey] and [Issuer.Rotate] are ready to use; a Key
// built by hand must have a Private key that fits its Algorithm. A Key must not
// be modified once it is published by an [Issuer].
type Key struct {
	ID        string        // kid: in the JWKS and in the header of the tokens it signs
	Algorithm string        // alg it signs with, and is published with in the JWKS
	Private   crypto.Signer // *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey
}

// NewKey returns a fresh key for alg with a random key ID, not attached to any
// issuer: sign with it to get tokens that no issuer vouches for, or give it to
// [Issuer.PublishKey]. RSA keys are 2048 bits; in a test binary the first 96
// come from a pool made in advance (see rsapool.go), each handed out once,
// since generating them is the slowest thing a test run does.
func NewKey(alg string) (*Key, error) {
	a, err := lookupAlgorithm(alg)
	if err != nil {
		return nil, err
	}
	var priv crypto.Signer
	switch a.family {
	case familyRSA, familyPSS:
		if k := pooledRSAKey(); k != nil {
			priv = k
		} else {
			priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
		}
	case familyECDSA:
		priv, err = ecdsa.GenerateKey(a.curve, rand.Reader)
	case familyEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("jwkstest: generating %s key: %w", alg, err)
	}
	return &Key{ID: randomKID(), Algorithm: alg, Private: priv}, nil
}

// randomKID returns 96 random bits, base64url: unique enough that two keys
// never share a kid by accident, short enough to read in a failing test.
func randomKID() string {
	b := make([]byte, 12)
	rand.Read(b) // never returns an error (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Public returns the public half of k.
func (k *Key) Public() crypto.PublicKey {
	return k.Private.Public()
}

// Sign returns a compact JWS of claims signed with k. The header starts as
// {"alg": k.Algorithm, "typ": "JWT", "kid": k.ID}; header's fields are merged
// over it, and a nil value deletes a field. The signature is always made with
// k's own algorithm, whatever header says, so a test can craft a token that
// lies about its "alg" or "kid".
func (k *Key) Sign(header, claims map[string]any) (string, error) {
	a, err := k.check()
	if err != nil {
		return "", err
	}
	h := merge(map[string]any{"alg": k.Algorithm, "typ": "JWT", "kid": k.ID}, header)
	hj, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("jwkstest: encoding header: %w", err)
	}
	cj, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("jwkstest: encoding claims: %w", err)
	}
	enc := base64.RawURLEncoding
	return k.signInput(a, enc.EncodeToString(hj)+"."+enc.EncodeToString(cj))
}

// SignSegments returns the compact JWS header.claims.signature, signing the
// two encoded segments exactly as given with k's algorithm. Nothing is
// encoded or checked: it crafts the tokens Sign cannot, such as JSON with
// duplicate members, or segments that are not strict base64url (padding, the
// standard alphabet), so that a test can see a validator refuse them for
// that reason and not for a bad signature.
func (k *Key) SignSegments(header, claims string) (string, error) {
	a, err := k.check()
	if err != nil {
		return "", err
	}
	return k.signInput(a, header+"."+claims)
}

// signInput signs the signing input of a compact JWS and appends the
// signature segment.
func (k *Key) signInput(a algorithm, input string) (string, error) {
	sig, err := k.sign(a, []byte(input))
	if err != nil {
		return "", err
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// merge sets over's fields in base, deleting those whose value is nil.
func merge(base, over map[string]any) map[string]any {
	for name, v := range over {
		if v == nil {
			delete(base, name)
		} else {
			base[name] = v
		}
	}
	return base
}

// check reports whether k is usable: a known algorithm, a kid, and a private
// key of the kind the algorithm needs.
func (k *Key) check() (algorithm, error) {
	if k == nil || k.Private == nil {
		return algorithm{}, errors.New("jwkstest: key has no private key")
	}
	a, err := lookupAlgorithm(k.Algorithm)
	if err != nil {
		return algorithm{}, err
	}
	if k.ID == "" {
		return algorithm{}, errors.New("jwkstest: key has no ID")
	}
	ok := false
	switch pub := k.Private.Public().(type) {
	case *rsa.PublicKey:
		ok = a.family == familyRSA || a.family == familyPSS
	case *ecdsa.PublicKey:
		ok = a.family == familyECDSA && pub.Curve == a.curve
	case ed25519.PublicKey:
		ok = a.family == familyEdDSA
	}
	if !ok {
		return algorithm{}, fmt.Errorf("jwkstest: key %q: a %T cannot sign %s", k.ID, k.Private.Public(), k.Algorithm)
	}
	return a, nil
}

// sign signs input through the crypto.Signer interface, so keys held
// elsewhere (an HSM, a KMS) work too.
func (k *Key) sign(a algorithm, input []byte) ([]byte, error) {
	var digest []byte
	if a.hash != 0 {
		h := a.hash.New()
		h.Write(input)
		digest = h.Sum(nil)
	}
	var (
		sig []byte
		err error
	)
	switch a.family {
	case familyRSA:
		sig, err = k.Private.Sign(rand.Reader, digest, a.hash)
	case familyPSS:
		sig, err = k.Private.Sign(rand.Reader, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: a.hash})
	case familyECDSA:
		sig, err = k.Private.Sign(rand.Reader, digest, a.hash)
		if err == nil {
			sig, err = rawECDSA(sig, a.size)
		}
	case familyEdDSA:
		sig, err = k.Private.Sign(rand.Reader, input, crypto.Hash(0))
	}
	if err != nil {
		return nil, fmt.Errorf("jwkstest: signing with key %q: %w", k.ID, err)
	}
	return sig, nil
}

// rawECDSA converts the ASN.1 signature crypto.Signer returns into the JWS
// form: R and S big-endian, each left-padded to size bytes (RFC 7518 §3.4).
func rawECDSA(der []byte, size int) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil || len(rest) != 0 {
		return nil, errors.New("malformed ECDSA signature")
	}
	if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || (rs.R.BitLen()+7)/8 > size || (rs.S.BitLen()+7)/8 > size {
		return nil, errors.New("ECDSA signature out of range")
	}
	out := make([]byte, 2*size)
	rs.R.FillBytes(out[:size])
	rs.S.FillBytes(out[size:])
	return out, nil
}

// jwk is the public JWK of a key: only public members are ever set.
type jwk struct {
	KTY string `json:"kty"`
	KID string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n,omitempty"`   // RSA modulus
	E   string `json:"e,omitempty"`   // RSA exponent
	Crv string `json:"crv,omitempty"` // EC, OKP
	X   string `json:"x,omitempty"`   // EC, OKP
	Y   string `json:"y,omitempty"`   // EC
}

// PublicJWK returns the JSON of the public JWK of k, as an issuer's JWKS
// publishes it: kty, kid, use "sig", alg, and the public members only.
func (k *Key) PublicJWK() ([]byte, error) {
	j, err := k.publicJWK()
	if err != nil {
		return nil, err
	}
	return json.Marshal(j)
}

// JWKS returns a JWK Set, {"keys": [...]}, publishing the public halves of
// keys in order: the document an [Issuer] serves, for a static key set
// (jwks.NewStatic, a file:// JWKS URL) in a test that runs no issuer.
func JWKS(keys ...*Key) ([]byte, error) {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(keys))}
	for _, k := range keys {
		j, err := k.publicJWK()
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, j)
	}
	return json.Marshal(set)
}

// publicJWK returns the JWK that publishes k (RFC 7517, RFC 7518 §6,
// RFC 8037 §2).
func (k *Key) publicJWK() (jwk, error) {
	a, err := k.check()
	if err != nil {
		return jwk{}, err
	}
	enc := base64.RawURLEncoding
	j := jwk{KID: k.ID, Use: "sig", Alg: k.Algorithm}
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		j.KTY = "RSA"
		j.N = enc.EncodeToString(pub.N.Bytes())
		j.E = enc.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		// Uncompressed point: 0x04 || x || y, each already padded to the
		// field size, which the JWK requires (RFC 7518 §6.2.1.2).
		p, err := pub.Bytes()
		if err != nil {
			return jwk{}, fmt.Errorf("jwkstest: key %q: %w", k.ID, err)
		}
		j.KTY, j.Crv = "EC", a.crv
		j.X = enc.EncodeToString(p[1 : 1+a.size])
		j.Y = enc.EncodeToString(p[1+a.size:])
	case ed25519.PublicKey:
		j.KTY, j.Crv = "OKP", "Ed25519"
		j.X = enc.EncodeToString(pub)
	}
	return j, nil
}
