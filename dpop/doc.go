// Package dpop holds the parts of DPoP (RFC 9449, proof of possession for
// access tokens) that do not depend on a request's HTTP handling: the proof
// parser ([Verifier]), the RFC 7638 [Thumbprint], the htu normalization
// ([NormalizeURL]), the store that remembers which proofs were seen
// (replay detection: [Store], [MemoryStore]) and the server nonces
// ([Nonces]). Package middleware's Guard checks a request with them.
//
// # Security
//
//   - [Verifier.Parse] bounds its work before decoding anything: the
//     proof's length (8 KiB by default), then strict base64url, then one
//     walk of each JSON object (header, claims, jwk) refusing more than 24
//     members, a member twice in any case (encoding/json matches names
//     case-insensitively) and escaped member names, then one decode.
//   - alg comes from an allow-list of asymmetric algorithms fixed at
//     construction; none and HMAC cannot be configured. The key is the jwk
//     header, which must be a public key of alg's type: an EC point is
//     checked to be on the curve, an Ed25519 point of small order (under
//     which a signature verifies without any private key) is refused, an
//     RSA modulus is 2048–8192 bits with an
//     odd exponent, and a jwk with any private or symmetric member (d, p,
//     q, dp, dq, qi, oth, k) is refused as a leaked key. A header with
//     "crit" is refused: no JWS extension is understood (RFC 7515
//     §4.1.11), so none can change what the signature covers.
//   - The thumbprint is computed from the parsed key's canonical members
//     (RFC 7638), never from the jwk's text. [Verifier.ParseFor] compares
//     it with the token's cnf.jkt before verifying the signature: a client
//     cannot have a key of its choosing (an RSA-8192 one, say) verified.
//   - Errors name the check and may quote short header values, never the
//     proof.
//   - [MemoryStore] is bounded by entries and bytes; when full it forgets
//     the id closest to expiry, never one while there is room, and then
//     refuses as a replay every id expiring no later than [FloorSlack]
//     after the one it forgot: a flood of proofs cannot make a forgotten
//     proof acceptable again, it only shortens the window in which a proof
//     is accepted. It stops a replay only at the process that saw the
//     proof: with several replicas, share a network store (package
//     dpop/redisstore).
//   - [Nonces] are an HMAC-SHA256 (128 bits kept) of the time window under
//     a secret of at least 32 bytes, compared in constant time; the current
//     and the previous window's nonce are accepted.
package dpop
