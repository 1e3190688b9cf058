// Package jwkstest provides a test OpenID Connect issuer, in the spirit of
// net/http/httptest: an [Issuer] listens on loopback, serves its discovery
// document and its JWKS, and mints signed JWT access tokens, so that code
// validating tokens can be tested against a real HTTP key source instead of
// a mock.
//
// Start one with [NewIssuer] (or [NewIssuerWithOptions], or [Start] to get an
// error rather than a panic), point the code under test at [Issuer.URL] as
// the trusted issuer, and give it tokens from [Issuer.Mint]:
//
//	iss := jwkstest.NewIssuer()
//	defer iss.Close()
//	token, err := iss.Mint(iss.Claims("https://api.example.com", map[string]any{"scope": "read:contacts"}))
//
// [Issuer.Claims] makes a valid claim set to start from; changing or deleting
// claims, or the header with [Issuer.MintWithHeader], crafts invalid tokens.
// A [Key] from [NewKey] signs tokens that the issuer does not vouch for.
//
// Keys can be added, chosen, removed and rotated while the issuer serves
// ([Issuer.AddKey], [Issuer.SetSigningKey], [Issuer.RemoveKey],
// [Issuer.Rotate]), and the issuer can misbehave: be down
// ([Issuer.SetDown]), slow ([Issuer.SetDelay]), answer garbage
// ([Issuer.SetGarbage]) or any body ([Issuer.SetJWKSBody]). It counts
// requests ([Issuer.JWKSRequests]), and tests wait on the count
// ([Issuer.WaitJWKSRequests]) rather than sleep.
//
// For DPoP (RFC 9449), [NewProofKey] makes a client's key,
// [Issuer.MintDPoP] a token bound to it (cnf.jkt), and [ProofKey.Proof] a
// proof for one request; its options ([WithNonce], [WithIssuedAt],
// [WithJTI], [WithType], [WithAlgorithm], [WithHeader], [WithClaims]) make
// the proofs a server must refuse.
//
// For opaque access tokens the issuer also serves /userinfo
// ([Issuer.UserInfoURL]) and an RFC 7662 introspection endpoint
// ([Issuer.IntrospectionURL]), both listed in its discovery document.
// [Issuer.MintOpaque] makes a random token that the issuer remembers with its
// claims, [Issuer.RevokeOpaque] makes it inactive, and
// [Issuer.SetIntrospectionClient] sets the client_secret_basic credentials
// the introspection endpoint requires. /userinfo also answers for the JWTs
// the issuer signs. Both endpoints are counted ([Issuer.IntrospectionRequests],
// [Issuer.WaitIntrospectionRequests], ...) and obey SetDown, SetDelay and
// SetGarbage.
//
// Signatures follow RFC 7518: RS256/384/512 are RSASSA-PKCS1-v1_5, PS256/384/512
// are RSASSA-PSS with a salt as long as the hash, ES256/384/512 are raw
// R||S of fixed size (not ASN.1), and EdDSA is Ed25519 (RFC 8037).
//
// The package does not depend on package testing, so the tokenward demo
// command uses it too.
//
// # Security
//
// This is for tests and demos only. The issuer speaks plain http, refuses to
// listen anywhere but loopback, keeps its private keys in memory, and mints
// whatever it is asked to; nothing it issues must be trusted outside a test.
// Its JWKS publishes public key members only (kty, kid, use "sig", alg, and
// n/e, crv/x/y or crv/x), unless a test sets another body with
// [Issuer.SetJWKSBody].
package jwkstest
