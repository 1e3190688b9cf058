package middleware

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"maps"
	"math/big"
	"slices"
)

// algorithm describes one JWS signature algorithm we implement (RFC 7518 §3,
// RFC 8037). HMAC algorithms are deliberately absent: a resource server
// verifies with public keys only, so "HS256 signed with the RSA public key as
// secret" has nothing to be verified with.
type algorithm struct {
	hash  crypto.Hash
	kind  keyKind
	curve elliptic.Curve // ECDSA only
}

type keyKind int

const (
	kindRSA keyKind = iota
	kindPSS
	kindECDSA
	kindEdDSA
)

var algorithms = map[string]algorithm{
	"RS256": {crypto.SHA256, kindRSA, nil},
	"RS384": {crypto.SHA384, kindRSA, nil},
	"RS512": {crypto.SHA512, kindRSA, nil},
	"PS256": {crypto.SHA256, kindPSS, nil},
	"PS384": {crypto.SHA384, kindPSS, nil},
	"PS512": {crypto.SHA512, kindPSS, nil},
	"ES256": {crypto.SHA256, kindECDSA, elliptic.P256()},
	"ES384": {crypto.SHA384, kindECDSA, elliptic.P384()},
	"ES512": {crypto.SHA512, kindECDSA, elliptic.P521()},
	"EdDSA": {0, kindEdDSA, nil},
}

// Algorithms returns the "alg" values a [Validator] can be configured with,
// sorted, for configuration checks and help texts. "none" and the HMAC
// algorithms are never among them.
func Algorithms() []string {
	return slices.Sorted(maps.Keys(algorithms))
}

// fits reports whether pub is a key of the kind alg needs.
func (a algorithm) fits(pub crypto.PublicKey) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return a.kind == kindRSA || a.kind == kindPSS
	case *ecdsa.PublicKey:
		return a.kind == kindECDSA && k.Curve == a.curve
	case ed25519.PublicKey:
		return a.kind == kindEdDSA
	}
	return false
}

// verify checks sig over signingInput. The caller has checked fits.
func (a algorithm) verify(pub crypto.PublicKey, signingInput, sig []byte) bool {
	if a.kind == kindEdDSA {
		k := pub.(ed25519.PublicKey)
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k, signingInput, sig)
	}
	// The Sum functions, not hash.New: no allocation for the hash state.
	var digest []byte
	switch a.hash {
	case crypto.SHA256:
		d := sha256.Sum256(signingInput)
		digest = d[:]
	case crypto.SHA384:
		d := sha512.Sum384(signingInput)
		digest = d[:]
	case crypto.SHA512:
		d := sha512.Sum512(signingInput)
		digest = d[:]
	default:
		return false
	}
	switch a.kind {
	case kindRSA:
		return rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), a.hash, digest, sig) == nil
	case kindPSS:
		// RFC 7518 §3.5: the salt is as long as the hash.
		return rsa.VerifyPSS(pub.(*rsa.PublicKey), a.hash, digest, sig,
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	case kindECDSA:
		// RFC 7518 §3.4: R and S as fixed-size big-endian integers, not ASN.1.
		k := pub.(*ecdsa.PublicKey)
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return false
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}
