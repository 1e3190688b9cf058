package main

import (
	"errors"

	"github.com/tokenward/tokenward/dpop"
)

// openReplayStore opens the DPoP replay store: memory unless
// TOKENWARD_DPOP_REPLAY_STORE names Redis. close is nil for memory.
func openReplayStore(c *Config) (s dpop.Store, close func() error, err error) {
	if c.dpop.redisURL == "" {
		return dpop.NewMemoryStore(dpop.MemoryOptions{}), nil, nil
	}
	return nil, nil, errors.New("redis: not built yet")
}
