// Package middleware validates OAuth 2.0 bearer access tokens (JWTs, RFC 7519
// and the RFC 9068 profile) and protects net/http handlers with them.
//
// A [Validator] turns a token string into verified [Claims] or an [*Error]
// that says why not. [New] wraps it as func(http.Handler) http.Handler
// middleware: it extracts the bearer token, validates it, enforces scopes,
// puts the claims in the request context ([ClaimsFrom]) and answers failures
// as RFC 6750 says ([WriteError]). [Require] adds per-route scopes.
//
// # Security
//
// The validator enforces, in this order (see [Validator.Validate]):
//
//   - a size limit before any parsing; compact serialization only, strict
//     base64url (no padding, no standard alphabet, no whitespace);
//   - header and claims JSON bounded: at most 1,000 members, nesting at most
//     32, no duplicate registered names, counting the other spellings
//     encoding/json reads as the same name ("ISS", "\u0069ss") — parsers
//     disagree on duplicates;
//   - an algorithm allow-list (RS256 by default). "none" and the HMAC
//     algorithms cannot be configured, so a token "signed" with a public key
//     as an HMAC secret has nothing to verify with;
//   - "typ", when present, must be JWT, at+jwt or application/at+jwt; an
//     option requires at+jwt. A "crit" header is refused: no extension is
//     implemented;
//   - "iss" must equal a trusted issuer exactly, checked before any key is
//     looked up, and the key comes from that issuer's set only;
//   - jku, x5u, jwk and x5c headers are never used to find a key;
//   - a key is used only for its own published "alg" and key type;
//   - "exp" is required; "nbf" and "iat" are checked when present; "aud"
//     must contain an accepted audience.
//
// Errors shown to clients are fixed sentences; they never contain the token,
// a key or an internal error string. [Error.Detail] and [Error.Err] carry
// more for logs, never the token. A token failure is never a 500.
//
// Claims returned by this package share no memory with a caller's input
// ([ParseClaims] parses a copy). Cache entries are immutable blocks, packed
// and read in one file (entry.go), whose round trip a fuzz target checks.
package middleware
