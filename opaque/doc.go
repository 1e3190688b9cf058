// Package opaque checks opaque access tokens — tokens that are not JWTs and
// so cannot be verified locally — by asking their issuer, and caches the
// answers.
//
// Two checkers implement [middleware.OpaqueChecker], for
// [middleware.ValidatorOptions.Opaque]:
//
//   - an [Introspector] POSTs the token to an RFC 7662 introspection
//     endpoint, authenticating with client_secret_basic; the answer's
//     active, scope, aud, iss, exp, sub and client_id become the claims, and
//     the validator enforces them as it does a JWT's (issuer, audience,
//     expiry, deny list), and the middleware the scopes;
//   - a [UserInfo] checker calls the OpenID Connect /userinfo endpoint with
//     the token, as Auth0 requires for the opaque tokens it issues when no
//     API audience is requested: 200 means valid and the profile (sub,
//     email, ...) becomes the claims, 401 means invalid. Such a token has no
//     scopes, so a route that requires scopes refuses it (403
//     insufficient_scope).
//
// [Discover] finds both endpoints in the issuer's discovery document.
//
// # Caching
//
// Answers are cached by the SHA-256 of the token: an active answer until the
// earlier of the token's exp and CacheTTL (default 5 minutes), an inactive
// one for NegativeTTL (default 10 seconds). Failures to ask the issuer are not
// cached. The cache is bounded by entry count and estimated bytes, active and
// inactive answers apart; when full it evicts every expired entry first, then
// the entry that expires soonest among a random sample (the bounded cache of
// the verified-token cache too). Concurrent checks of a token that is
// not cached share one call to the issuer; a check whose request is cancelled
// stops waiting, and the call goes on for the others. At most MaxConcurrency
// calls are in progress at once; while that many are, an active answer past
// its CacheTTL is still used for up to StaleIfBusy (default: one more
// CacheTTL), never past the token's exp (see Security).
//
// # Security
//
//   - The token is never a map key, a log field or a metric label: the
//     cache and the single-flight are keyed by its SHA-256, logs name the
//     endpoint and the failure, and [IntrospectorOptions.OnCheck] reports
//     one of three fixed results.
//   - The client secret is a [Secret], which prints, logs and marshals as
//     "[REDACTED]"; it only ever goes into the Authorization header of a
//     request to the introspection endpoint.
//   - Endpoints must be https (http only on a loopback host), and redirects
//     are not followed, so neither a token nor the secret is sent elsewhere.
//     Answers are read through a 1 MiB limit.
//   - Fail closed: a slow issuer is abandoned after the timeout (default
//     5 seconds) with reason issuer_unavailable (503 with Retry-After); an
//     error status, a body that is not a JSON object ("garbage" from a proxy
//     in front of the issuer) or malformed claims is issuer_unavailable too,
//     never an accepted token.
//   - "active" must be the JSON boolean true. An answer for a refresh token
//     ("token_type"/"token_use") is refused. A sender-constrained token's
//     "cnf" becomes [middleware.Claims].Confirmation: the answer may be
//     cached, the proof is not — [middleware.Guard.Check] requires the
//     client certificate of a certificate-bound token (RFC 8705), and the
//     DPoP proof of a key-bound one (cnf.jkt, RFC 9449), on every request,
//     and refuses any other binding. An answer's "iss" must
//     be the configured issuer; a profile's "iss", "aud", scopes and time
//     claims are dropped, as a profile vouches for none of them.
//   - Tokens with characters or a size no access token has are refused
//     without asking the issuer, so they cannot break the request they
//     would be sent in.
//   - Revocation at the issuer takes effect when the cached answer expires:
//     CacheTTL is the longest a revoked token stays accepted, or, while
//     MaxConcurrency calls are in progress, CacheTTL plus StaleIfBusy (set
//     it negative to keep CacheTTL the bound, and refuse such checks with
//     issuer_busy instead).
//   - A flood of made-up tokens is bounded: at most MaxConcurrency (default
//     32) calls to the issuer are in progress at once, and, with the default
//     HTTP client, at most as many connections to it
//     (http.Transport.MaxConnsPerHost). A check that would need one more
//     call is refused at once with reason issuer_busy (503 with
//     Retry-After), neither queued nor cached, so the flood holds a few
//     goroutines per client, not per token. The cache answers before the
//     bound is consulted, and a check of a token already being checked
//     joins that call: tokens of real users already cached keep working.
//     So do they once their CacheTTL has passed, while the bound is full:
//     the active answer is used for up to StaleIfBusy more (counted in
//     [Stats].Stale), never past the token's exp, and never in place of an
//     inactive answer (which replaces the active one in the cache) or a
//     failure to ask the issuer; the validator still applies the deny list
//     and exp to it. Made-up tokens have no active answer, so they are
//     bounded as before. Each made-up token that gets a call costs one
//     (then a cached negative answer), and cannot evict cached active
//     answers.
package opaque
