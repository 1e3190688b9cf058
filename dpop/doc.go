// Package dpop holds the parts of DPoP (RFC 9449, proof of possession for
// access tokens) that outlive one request: the store that remembers which
// proofs were seen (replay detection) and the server nonces.
package dpop
