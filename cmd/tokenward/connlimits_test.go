package main

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/proxy"
)

// TestMaxConnections: the default bound is proxy's, fewer in a container
// too small to hold that many idle connections beside the caches; a value
// set is kept (0: no bound), a negative one is a configuration error.
func TestMaxConnections(t *testing.T) {
	const mib = 1 << 20
	base := map[string]string{
		"TOKENWARD_ISSUERS":   "https://tenant.auth0.com/",
		"TOKENWARD_AUDIENCES": "https://api.example.com",
		"TOKENWARD_UPSTREAM":  "http://127.0.0.1:3000",
	}
	for _, tc := range []struct {
		name      string
		set       string
		container int64
		nofile    uint64
		want      int
		from      string
	}{
		{"no container limit", "", 0, 0, proxy.DefaultMaxConnections, "default"},
		{"a container of 1 GiB", "", 1024 * mib, 1 << 20, proxy.DefaultMaxConnections, "default"},
		// 90% of 128 MiB, less the caches' bound and their 25%.
		{"a container of 128 MiB", "", 128 * mib, 0, int((128*mib/100*containerPercent - 100000*verifiedEntryBytes*125/100) / connectionBytes), "container memory limit"},
		// The soft limit is capped: the connections get its allowance for the rest.
		{"a container of 32 MiB", "", 32 * mib, 0, otherMemory / connectionBytes, "container memory limit"},
		// Half of what the reserve leaves: each proxied request needs an upstream connection too.
		{"ulimit -n 4096", "", 0, 4096, (4096 - descriptorsReserved) / 2, "descriptor limit (ulimit -n)"},
		{"ulimit -n 4096 in a container of 32 MiB", "", 32 * mib, 4096, otherMemory / connectionBytes, "container memory limit"},
		{"ulimit -n 256", "", 0, 256, 1, "descriptor limit (ulimit -n)"},
		{"set", "50", 32 * mib, 64, 50, "TOKENWARD_MAX_CONNECTIONS"},
		{"no bound", "0", 0, 64, 0, "TOKENWARD_MAX_CONNECTIONS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := withDefaults(map[string]string{"TOKENWARD_MAX_CONNECTIONS": tc.set}, base)
			cfg, err := loadConfig(mapGetenv(env), forServing)
			if err != nil {
				t.Fatal(err)
			}
			verified, opaqueTokens := cfg.cacheBounds()
			n, from := cfg.maxConnections(verified+opaqueTokens, tc.container, tc.nofile)
			if n != tc.want || from != tc.from {
				t.Errorf("%d from %s, want %d from %s", n, from, tc.want, tc.from)
			}
		})
	}
	env := withDefaults(map[string]string{
		"TOKENWARD_MAX_CONNECTIONS": "-1", "TOKENWARD_SEND_TIMEOUT": "-1s", "TOKENWARD_READ_HEADER_TIMEOUT": "-1s",
		"TOKENWARD_GRPC_MAX_CONNECTIONS": "-1",
	}, base)
	_, err := loadConfig(mapGetenv(env), forServing)
	var ce *configError
	if !errors.As(err, &ce) || len(ce.problems) != 4 {
		t.Fatalf("negative bounds: %v, want 4 problems", err)
	}
	for _, p := range ce.problems {
		if !strings.Contains(p, "negative") {
			t.Errorf("problem %q", p)
		}
	}
}

func TestLimitWithConnections(t *testing.T) {
	const base = 40 << 20
	for _, tc := range []struct {
		open, ceiling, want int64
	}{
		{0, math.MaxInt64, base},
		{connectionStep - 1, math.MaxInt64, base},
		{connectionStep, math.MaxInt64, base + connectionStep*connectionBytes},
		{10000, math.MaxInt64, base + 10000/connectionStep*connectionStep*connectionBytes},
		{10000, 100 << 20, 100 << 20},
	} {
		if got := limitWithConnections(base, tc.ceiling, tc.open); got != tc.want {
			t.Errorf("%d connections, ceiling %d: %d, want %d", tc.open, tc.ceiling, got, tc.want)
		}
	}
}
