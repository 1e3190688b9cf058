package jwkstest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/tokenward/tokenward/dpop"
)

// A ProofKey is a DPoP client's key (RFC 9449): it makes the proofs a
// client sends with a DPoP-bound token ([Issuer.MintDPoP]).
type ProofKey struct {
	key   *Key
	jwk   map[string]any // the public JWK, as the proofs' jwk header carries it
	thumb string
}

// NewProofKey returns a fresh proof key for alg: ES256, ES384, EdDSA,
// RS256 or PS256.
func NewProofKey(alg string) (*ProofKey, error) {
	switch alg {
	case "ES256", "ES384", "EdDSA", "RS256", "PS256":
	default:
		return nil, fmt.Errorf("jwkstest: unsupported proof algorithm %q (want ES256, ES384, EdDSA, RS256 or PS256)", alg)
	}
	k, err := NewKey(alg)
	if err != nil {
		return nil, err
	}
	j, err := k.publicJWK()
	if err != nil {
		return nil, err
	}
	// The members of the key only: a jwk header has no kid, use or alg.
	m := map[string]any{"kty": j.KTY}
	for name, v := range map[string]string{"crv": j.Crv, "x": j.X, "y": j.Y, "n": j.N, "e": j.E} {
		if v != "" {
			m[name] = v
		}
	}
	t, err := dpop.Thumbprint(k.Public())
	if err != nil {
		return nil, err
	}
	return &ProofKey{key: k, jwk: m, thumb: t}, nil
}

// Algorithm returns the key's algorithm.
func (p *ProofKey) Algorithm() string { return p.key.Algorithm }

// Thumbprint returns the RFC 7638 thumbprint of the key: the cnf.jkt of
// the tokens bound to it.
func (p *ProofKey) Thumbprint() string { return p.thumb }

// JWK returns a copy of the public JWK the proofs carry.
func (p *ProofKey) JWK() map[string]any {
	m := make(map[string]any, len(p.jwk))
	for k, v := range p.jwk {
		m[k] = v
	}
	return m
}

// Key returns the signing key underneath, to sign crafted proofs with
// [Key.Sign] or [Key.SignSegments].
func (p *ProofKey) Key() *Key { return p.key }

// proofSettings is what the ProofOptions change.
type proofSettings struct {
	header, claims map[string]any
}

// A ProofOption changes a proof made by [ProofKey.Proof], to make the
// proofs a server needs (a nonce) or must refuse (a stale iat, a foreign
// typ…).
type ProofOption func(*proofSettings)

// WithNonce sets the proof's nonce claim (RFC 9449 §8).
func WithNonce(nonce string) ProofOption {
	return func(s *proofSettings) { s.claims["nonce"] = nonce }
}

// WithIssuedAt sets the proof's iat (the default is now).
func WithIssuedAt(t time.Time) ProofOption {
	return func(s *proofSettings) { s.claims["iat"] = t.Unix() }
}

// WithJTI sets the proof's jti (the default is 128 random bits); "" removes
// it.
func WithJTI(jti string) ProofOption {
	return func(s *proofSettings) {
		if jti == "" {
			delete(s.claims, "jti")
		} else {
			s.claims["jti"] = jti
		}
	}
}

// WithType sets the proof header's typ (the default is "dpop+jwt").
func WithType(typ string) ProofOption {
	return func(s *proofSettings) { s.header["typ"] = typ }
}

// WithAlgorithm sets the proof header's alg; the signature is still made
// with the key's own algorithm.
func WithAlgorithm(alg string) ProofOption {
	return func(s *proofSettings) { s.header["alg"] = alg }
}

// WithHeader merges header over the proof's header; a nil value deletes a
// member ("jwk": nil makes a proof without a key).
func WithHeader(header map[string]any) ProofOption {
	return func(s *proofSettings) { s.header = merge(s.header, header) }
}

// WithClaims merges claims over the proof's claims; a nil value deletes a
// claim ("ath": nil, "htm": nil…).
func WithClaims(claims map[string]any) ProofOption {
	return func(s *proofSettings) { s.claims = merge(s.claims, claims) }
}

// Proof returns a DPoP proof (RFC 9449 §4.2) for a request with method to
// url, signed by p: header {"typ": "dpop+jwt", "alg", "jwk"}, claims
// {"jti", "htm": method, "htu": url, "iat": now} and, when token is not "",
// "ath": the hash of token. opts change it. url is put in htu as given:
// strip the query and fragment first if the request has any.
func (p *ProofKey) Proof(method, url, token string, opts ...ProofOption) (string, error) {
	jti := make([]byte, 16)
	rand.Read(jti)
	s := proofSettings{
		header: map[string]any{"typ": "dpop+jwt", "alg": p.key.Algorithm, "jwk": p.jwk, "kid": nil},
		claims: map[string]any{"jti": base64.RawURLEncoding.EncodeToString(jti), "htm": method, "htu": url, "iat": time.Now().Unix()},
	}
	if token != "" {
		s.claims["ath"] = dpop.TokenHash(token)
	}
	for _, o := range opts {
		o(&s)
	}
	return p.key.Sign(s.header, s.claims)
}

// MintDPoP returns claims signed like [Issuer.Mint], bound to key: with
// cnf {"jkt": key's thumbprint} (RFC 9449 §6.1) over any cnf in claims.
// Present it as "Authorization: DPoP <token>" with a proof by key.
func (i *Issuer) MintDPoP(claims map[string]any, key *ProofKey) (string, error) {
	c := make(map[string]any, len(claims)+1)
	for k, v := range claims {
		c[k] = v
	}
	cnf := map[string]any{}
	if old, ok := c["cnf"].(map[string]any); ok {
		for k, v := range old {
			cnf[k] = v
		}
	}
	cnf["jkt"] = key.Thumbprint()
	c["cnf"] = cnf
	return i.Mint(c)
}
