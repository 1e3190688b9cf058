// Package middleware validates OAuth 2.0 bearer access tokens (JWTs, RFC 7519
// and the RFC 9068 profile) and protects net/http handlers with them.
//
// A [Validator] turns a token string into verified [Claims] or an [*Error]
// that says why not. [New] wraps it as func(http.Handler) http.Handler
// middleware: it extracts the bearer token, validates it, enforces scopes,
// puts the claims in the request context ([ClaimsFrom]) and answers failures
// as RFC 6750 says ([WriteError]). [Require] adds per-route scopes.
//
// The decision lives in one place, [Guard.Check]: the parts of a request
// ([Request]: method, URL, host, headers, peer) and the scopes required in,
// verified [Claims] or an [*Error] out. [New] calls it ([Require], behind
// it, runs its scope step on the claims New verified), and so do package
// proxy's reverse proxy and forward-auth handler, so every front end gives
// a request the same answer; [WriteError] is the one place an [*Error]
// becomes HTTP.
//
// # Security
//
// The validator enforces, in this order (see [Validator.Validate]):
//
//   - a size limit before any parsing; compact serialization only, strict
//     base64url (no padding, no standard alphabet, no whitespace);
//   - "iss" must equal a trusted issuer exactly. It is checked first, from a
//     scan of the claims that stops at the member encoding/json reads as
//     iss, before the header or the rest of the claims is decoded, so that
//     a forged token naming another issuer costs less to refuse than a
//     valid token costs to verify (BenchmarkRefuseUntrustedIssuer16KB);
//   - header JSON bounded: at most 1,000 members, nesting at most 32, no
//     duplicate names we act on, counting the other spellings encoding/json
//     reads as the same name ("ALG", "\u0061lg") — parsers disagree on
//     duplicates;
//   - an algorithm allow-list (RS256 by default). "none" and the HMAC
//     algorithms cannot be configured, so a token "signed" with a public key
//     as an HMAC secret has nothing to verify with;
//   - "typ", when present, must be JWT, at+jwt or application/at+jwt; an
//     option requires at+jwt. A "crit" header is refused: no extension is
//     implemented;
//   - the key comes from the set of the issuer the token names only;
//   - jku, x5u, jwk and x5c headers are never used to find a key;
//   - a key is used only for its own published "alg" and key type; a key
//     published without "alg" only for the first configured algorithm of
//     its type, in [ValidatorOptions.Algorithms] order (with RS256 and
//     PS256 allowed, in that order, an RSA key without alg verifies RS256
//     only), so that one key never verifies two algorithms;
//   - the signature; only then are the claims decoded, so that a forged
//     token naming a trusted issuer (whose URL and key IDs are public)
//     costs a signature check, not the decoding of up to 16 KiB of JSON
//     (BenchmarkRefuseForgedToken16KB);
//   - claims JSON bounded as the header's, with no duplicate registered
//     claim names ("ISS", "\u0069ss" count); registered claims of the right
//     JSON types;
//   - "exp" is required; "nbf" and "iat" are checked when present; "aud"
//     must contain an accepted audience.
//
// Anything shaped like a JWT is a JWT: a token with two dots or more, or
// whose first segment decodes — even with padding or the standard alphabet
// — to a JSON object naming "alg", is verified as above or refused as
// malformed. It is never passed to [ValidatorOptions.Opaque], so an issuer
// endpoint that decodes leniently cannot vouch for a JWT padded with "="
// that is for another API, revoked, or of the wrong typ. Only a token of
// no such shape, or a compact JWE (five segments, a protected header with
// "enc" and a key-management "alg"), which tokenward does not decrypt, is
// opaque.
//
// A sender-constrained token (a "cnf" claim, RFC 7800; [Claims].Confirmation)
// is never accepted as a bearer token. [Guard.Check] accepts a
// certificate-bound one (cnf "x5t#S256", RFC 8705 §3) only when the request
// presents a client certificate whose SHA-256 thumbprint matches (compared
// in constant time), on every request, cache hits included: the cache keeps
// the token, never the proof. Without a certificate the reason is
// no_certificate, with another certificate_mismatch. A "jkt" binding is
// DPoP's (below). Every other binding — any other cnf member, an empty cnf —
// is refused (unsupported_binding); a cnf that is not an object of strings
// makes the token malformed, and two x5t#S256 (in any spelling
// encoding/json folds together) are refused as duplicates. The certificate
// is the TLS connection's ([Peer].Certificate), or, only when [Peer].Addr
// is one of [GuardOptions].TrustedProxies, the one that proxy names in
// Client-Cert (RFC 9440) or X-Forwarded-Client-Cert (the last element's
// Hash= or Cert=; both headers, or both keys, must agree); a trusted
// proxy's own TLS certificate is never taken for its client's. From any
// other peer those headers are ignored, and [New] removes them (every
// spelling) before the next handler. No proxy is trusted by default, and a
// prefix of every address is refused. [Validator.Validate] checks tokens,
// not requests: its callers must check a Confirmation themselves.
//
// DPoP (RFC 9449; [GuardOptions].DPoP). A token bound to a key (cnf.jkt,
// from a JWT or an introspection answer) is accepted only with the DPoP
// scheme, "Authorization: DPoP <token>", and exactly one DPoP header
// holding a proof that passes every check of RFC 9449 §4.3, in this order:
// its size (8 KiB by default) before anything is decoded; a compact JWS of
// strict base64url, each JSON object walked once for at most 24 members,
// none twice in any case and no escaped member name; typ "dpop+jwt"; alg
// from the allow-list (ES256 by default; ES384, RS256, PS256, EdDSA and
// its RFC 9864 name Ed25519 configurable; never none or HMAC, which
// [NewGuard] refuses to configure); no crit header; a jwk header that is a
// public key of alg's type (an EC point on the curve, an Ed25519 point not
// of small order, an RSA modulus of 2048–8192 bits), with no private or
// symmetric member (d, p, q, dp, dq, qi, oth, k); its RFC 7638 thumbprint
// equal to cnf.jkt (constant-time), before any signature work, so that a
// client cannot have a key of its choosing verified; the signature, with
// that key; htm equal to the method; htu equal to the request URL without query
// and fragment, both compared after RFC 3986 §6 normalization (scheme and
// host case, default port, percent-encoding, dot segments), the URL's
// scheme and authority being [DPoPOptions].PublicURL's when set, else
// [Request].Scheme and Host — which the middleware takes from
// X-Forwarded-Proto and X-Forwarded-Host only from a trusted proxy
// ([Guard.ForwardedFrom]), and the path the client sent (r.RequestURI:
// under http.StripPrefix, the full path, not the stripped one); iat within MaxAge back and MaxFuture ahead
// (60 s and 5 s, plus Leeway); jti present; ath equal to base64url(SHA-256
// of the token); the server nonce, when [DPoPOptions].Nonces is set
// (stateless, see package dpop); and last the replay store, keyed by the
// SHA-256 of thumbprint and jti, remembered until the proof is too old
// anyway, so that only proofs that passed everything else take room in it
// (the in-memory store, when full, refuses proofs as old as one it had to
// forget, rather than accept one again: dpop.MemoryStore).
// The proof is never cached: every request proves possession again, cache
// hits of the token included. A store that cannot answer refuses the
// request with 503 and Retry-After (dpop_store_unavailable), never an
// unchecked proof. Each check has its own reason (dpop_*). A cnf.jkt token
// sent as Bearer is refused in every mode (dpop_downgrade, RFC 9449 §7.2);
// the DPoP scheme with a token without cnf.jkt is refused (dpop_binding);
// the required mode refuses Bearer with the DPoP challenge alone
// (dpop_required); the disabled mode refuses the DPoP scheme
// (dpop_disabled). Refusal texts name the check, never the proof or the
// token.
//
// A realm must be printable ASCII without '"' or '\' ([CheckRealm]),
// checked once when a [Guard] is built, so that it sits unescaped in the
// challenge. So is a resource_metadata URL ([CheckResourceMetadata]: an
// absolute http(s) URL, printable ASCII without '"' or '\'), which
// [Guard.WriteError] adds to every challenge (RFC 9728 §5.1). It is fixed at
// construction, never built from the request's Host, so a client cannot
// make a challenge send others elsewhere. A 403 names in scope every scope
// the requirement mentions: all of an all-of, every alternative of an
// any-of (a token granted all of them passes).
//
// Errors shown to clients are fixed sentences; they never contain the token,
// a key or an internal error string. [Error.Detail] and [Error.Err] carry
// more for logs, never the token. A token failure is never a 500.
//
// Claims returned by this package share no memory with a caller's input
// ([ParseClaims] parses a copy), except that the claims of a cache hit keep
// the token's claims segment, an immutable string, for [Claims.Decode]: a
// hit has the SHA-256 of the token that was verified, so that segment is
// the JSON that was verified. Cache entries are immutable blocks, packed and
// read in one file (entry.go), whose round trip a fuzz target checks; they
// hold no claims JSON and never the token.
package middleware
