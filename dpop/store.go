package dpop

import (
	"context"
	"time"
)

// Store remembers the proofs it has been asked about, so that a proof is
// accepted once (RFC 9449 §11.1). A store shared by every replica of an API
// (package redisstore) is what stops a proof captured on its way to one
// replica from being replayed against another; a per-process store
// ([MemoryStore]) stops it only at the replica that saw it.
//
// A Store is safe for concurrent use.
type Store interface {
	// Seen records id for ttl and reports whether it was already recorded
	// and not yet expired: true means a replay. id is the SHA-256 of the
	// proof's key thumbprint and jti, so that two keys' jti never collide
	// and the store holds no proof material. Of two calls with the same
	// id at the same instant, exactly one reports false.
	//
	// An error means the store could not answer (unreachable, timed out).
	// The caller refuses the proof (fail closed: 503), never accepts it
	// unchecked.
	Seen(ctx context.Context, id [32]byte, ttl time.Duration) (replay bool, err error)
}

// Pinger is implemented by a Store that can be unreachable (a network
// store). The binary's /readyz and its metrics report the store's state with
// it.
type Pinger interface {
	Ping(ctx context.Context) error
}
