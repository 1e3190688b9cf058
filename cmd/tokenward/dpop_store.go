package main

import (
	"fmt"

	"github.com/tokenward/tokenward/dpop"
	"github.com/tokenward/tokenward/dpop/redisstore"
)

// openReplayStore opens the DPoP replay store: memory unless
// TOKENWARD_DPOP_REPLAY_STORE names Redis. close is nil for memory. Opening
// Redis does not dial it: a Redis down at start makes DPoP requests 503 and
// /readyz not ready until it answers, as an outage later would.
func openReplayStore(c *Config) (s dpop.Store, close func() error, err error) {
	if c.dpop.redisURL == "" {
		return dpop.NewMemoryStore(dpop.MemoryOptions{}), nil, nil
	}
	rs, err := redisstore.Open(c.dpop.redisURL, redisstore.Options{
		PasswordFile: c.DPoPReplayPasswordFile,
		Timeout:      c.DPoPReplayTimeout,
		RootCAsFile:  c.DPoPReplayCAFile,
	})
	if err != nil {
		// Its errors never hold the password.
		return nil, nil, &configError{problems: []string{fmt.Sprintf("TOKENWARD_DPOP_REPLAY_STORE: %v", err)}}
	}
	return rs, rs.Close, nil
}
