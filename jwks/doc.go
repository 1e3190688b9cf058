// Package jwks is where tokenward finds the keys that verify access tokens.
//
// An issuer publishes its public signing keys as a JSON Web Key Set (RFC 7517)
// at its jwks_uri, which OpenID Connect discovery names. [Remote] keeps one such
// set cached in memory, refreshes it in the background and, rate limited, when a
// token names a key it does not know. [Static] holds a fixed set read from bytes
// or a file, for air-gapped deployments and tests. [Registry] binds each trusted
// issuer to its own set.
//
// Both [Remote] and [Static] answer [Remote.Key] lookups from an immutable
// snapshot, so a lookup on the request path takes no lock and never waits on the
// network while the key is cached.
//
// # Security
//
//   - Keys are bound to their issuer: a [Registry] gives each issuer its own set,
//     and nothing in this package merges sets.
//   - A refresh replaces the whole set, so a key the issuer removed stops
//     verifying (revocation). A refresh that fails — network error, timeout,
//     status other than 200, a body that is not a key set, a set with no usable
//     signing key, a body over the size limit — keeps the last good set.
//   - An unknown key ID triggers at most one fetch per [RemoteOptions.MinRefreshInterval];
//     concurrent lookups share one fetch. A flood of random key IDs cannot
//     amplify traffic to the issuer.
//   - Only public signature keys are kept: symmetric ("oct") keys, keys with
//     "use" other than "sig", keys with "key_ops" that lacks "verify" (a key
//     published for encryption, with or without "use"), private key material,
//     RSA keys under 2048 bits and RSA keys with the ROCA weakness
//     (CVE-2017-15361: Infineon RSALib moduli, which can be factored; found by
//     the subgroup test of Nemec et al., which a random key passes with
//     negligible probability) are dropped. Each dropped key is logged with its reason
//     ([RemoteOptions.Logger]) and listed in [RefreshEvent.Dropped] or
//     [Static.Dropped]; never its key material. x5u URLs are never followed.
//   - A key keeps the "alg" it was published with, so that a verifier can refuse
//     to use it for any other algorithm.
//   - Every fetch has a timeout and a body size limit and checks the status code.
//     Errors and logs name URLs and reasons, never key material.
package jwks
