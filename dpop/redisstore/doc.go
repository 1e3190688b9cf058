// Package redisstore is a [dpop.Store] kept in Redis or Valkey, shared by
// every replica of an API, so that a DPoP proof (RFC 9449) is accepted once
// across all of them rather than once per replica.
//
// It lives in its own package so that a program that keeps its replay store
// in memory does not link a Redis client.
//
//	store, err := redisstore.Open("rediss://redis.internal:6380/0", redisstore.Options{
//		PasswordFile: "/run/secrets/redis-password",
//		RootCAsFile:  "/etc/tokenward/redis-ca.pem",
//	})
//
// Each [Store.Seen] is one round trip, SET key 1 NX PX ttl: the key is
// written only if it is absent, atomically on the server, so of two replicas
// asking about the same proof at the same instant exactly one is told it is
// new. Nothing is retried: a retried SET NX whose first reply was lost would
// find its own key and report a replay.
//
// # Security
//
//   - Fail closed. Every call is bounded by [Options.Timeout] (250 ms by
//     default): waiting for a pooled connection, dialing, TLS, AUTH and the
//     round trip all count. A Redis that is down, refuses the password, is
//     read-only, or does not answer in time makes Seen return an error, and
//     the caller refuses the proof (503 with Retry-After in tokenward), never
//     accepts it unchecked. [Store.Ping] reports the same state for a
//     readiness check. Recovery needs no restart: the connection pool dials
//     again once Redis is back.
//   - What Redis holds. The key is [Options.KeyPrefix] followed by the
//     base64url of the id the caller passes, which is a SHA-256 of the
//     proof key's thumbprint and the proof's jti; the value is "1"; the key
//     expires with the proof's acceptance window. No token, proof, key or
//     claim reaches Redis: someone who reads it learns how many proofs were
//     seen recently, nothing that can be replayed.
//   - Why a shared store. With several replicas behind a load balancer, a
//     per-process store ([dpop.MemoryStore]) stops a captured proof only at
//     the replica that saw it first; the same proof sent to another replica
//     within its window is accepted there. One Redis shared by the replicas
//     closes that gap.
//   - Transport. rediss:// speaks TLS 1.2 or later and verifies the
//     server's certificate against the system roots, or against
//     [Options.RootCAsFile] for a private CA; there is no switch to skip the
//     verification. TLS options given with a redis:// URL are an error,
//     never a silent fallback to plaintext. Use rediss:// whenever Redis is
//     not on the same host or pod network you trust: the password crosses
//     the network in the AUTH command.
//   - The password comes from the URL or, better, from [Options.PasswordFile]
//     (a mounted secret, kept out of the environment and the process list);
//     giving both is an error rather than a silent choice between them. No
//     error of this package contains the password: the URL is never echoed,
//     and errors from the client are scrubbed of it.
//   - Limits. A Redis restarted without persistence, or a failover to a
//     replica that had not yet received the latest writes, forgets the ids
//     of the proofs seen in the last window (60 s by default): those proofs
//     could be replayed once more until they expire. Run Redis with
//     append-only persistence if that matters.
//     Redis Cluster is not supported (a MOVED answer is an error, so it fails
//     closed); use one primary, behind Sentinel or a proxy if it must fail
//     over.
package redisstore
