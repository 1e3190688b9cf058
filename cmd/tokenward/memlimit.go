package main

import (
	"fmt"
	"log/slog"
	"math"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/tokenward/tokenward/opaque"
)

// The binary gives the Go runtime a soft memory limit (what GOMEMLIMIT sets)
// unless the operator set GOMEMLIMIT. Without one, the collector lets the
// heap grow to twice what is live, a full verified-token cache (100,000
// entries, about 23 MiB) included. The limit is what the
// process may legitimately hold: the bounds of its caches, room for the
// collector, and an allowance for the rest; never more than a share of the
// container's memory limit, so that the collector works harder before the
// kernel kills the process. It is soft: past it the runtime spends at most
// about half the CPU on collection, and lets the heap grow rather than
// spiral.
const (
	// verifiedEntryBytes is the heap an entry of the verified-token cache
	// takes for an Auth0 access token whose audiences and scopes other
	// tokens share: about 235 bytes (middleware's TestCacheEntryBytes),
	// rounded up.
	// TestMemoryFiguresCoverTheCaches holds it above the cache's own
	// estimate. Larger entries only shrink the collector's room.
	verifiedEntryBytes = 256
	// activeEntryBytes is an opaque-token cache entry of an active answer:
	// opaque's 384-byte estimate of the entry and a claim set of a few
	// hundred bytes.
	activeEntryBytes = 1024
	// refusalEntryBytes is an opaque-token cache entry of a refusal: its
	// map slot, the entry and the error, about 200 bytes.
	refusalEntryBytes = 256
	// otherMemory is what the process holds besides its caches: the
	// runtime, key sets, metrics, and each connection and request in flight
	// (tens of KiB each).
	otherMemory = 16 << 20
	// gcRoomPercent is the collector's room beyond the caches' bound: a
	// full cache is marked at every cycle, so the room for the garbage
	// between two cycles grows with it, as GOGC=25 over the caches would.
	gcRoomPercent = 25
	// containerPercent is the part of the container's memory limit the
	// runtime may use: the rest is for what the kernel charges the
	// container besides (the binary's pages, socket buffers).
	containerPercent = 90
)

// cacheBounds returns the most memory the verified-token cache and the
// opaque-token cache may hold with this configuration. A cache's bound is
// its entry count at the cost of a typical entry, or its byte bound if lower
// (entries of larger tokens are bounded by bytes).
func (c *Config) cacheBounds() (verified, opaqueTokens int64) {
	if c.CacheSize > 0 {
		verified = min(c.CacheMaxBytes, mul(c.CacheSize, verifiedEntryBytes))
	}
	if c.OpaqueTokens == opaqueReject {
		return verified, 0 // no opaque-token cache at all
	}
	ttl, negativeTTL, entries := c.opaqueCache()
	if ttl > 0 {
		// The binary leaves the checker's byte bound at its default.
		opaqueTokens = min(opaque.DefaultCacheMaxBytes, mul(entries, activeEntryBytes))
	}
	if negativeTTL > 0 {
		// Refusals are bounded apart, by count only.
		opaqueTokens = add(opaqueTokens, mul(entries, refusalEntryBytes))
	}
	return verified, opaqueTokens
}

// softMemoryLimit is the limit for caches holding at most caches bytes, in
// a container limited to container bytes (0: none known). capped reports
// that the container's limit decided it.
func softMemoryLimit(caches, container int64) (limit int64, capped bool) {
	limit = add(otherMemory, add(caches, caches/100*gcRoomPercent))
	if container > 0 {
		if share := container / 100 * containerPercent; share < limit {
			return share, true
		}
	}
	return limit, false
}

// setMemoryLimit sets the soft memory limit for cfg, unless the GOMEMLIMIT
// of getenv is set (even to "off": the runtime has applied it), and logs the
// limit in force. readFile reads the cgroup files (os.ReadFile). It returns
// a function that restores the previous limit, for callers of run other
// than main.
func setMemoryLimit(cfg *Config, getenv func(string) string, readFile func(string) ([]byte, error), log *slog.Logger) (restore func()) {
	if v := getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit", "soft_limit", v, "from", "GOMEMLIMIT")
		return func() {}
	}
	verified, opaqueTokens := cfg.cacheBounds()
	container := containerMemoryLimit(readFile)
	limit, capped := softMemoryLimit(add(verified, opaqueTokens), container)
	prev := debug.SetMemoryLimit(limit)
	from := "cache bounds"
	if capped {
		from = fmt.Sprintf("%d%% of the container's limit", containerPercent)
	}
	containerAttr := "none"
	if container > 0 {
		containerAttr = mib(container)
	}
	log.Info("memory limit",
		"soft_limit", mib(limit),
		"from", from,
		"token_cache_bound", mib(verified),
		"opaque_cache_bound", mib(opaqueTokens),
		"container_limit", containerAttr,
		"override", "GOMEMLIMIT",
	)
	return func() { debug.SetMemoryLimit(prev) }
}

// containerMemoryLimit returns the memory limit of the cgroup the process
// runs in, or of an ancestor if lower, under cgroup v2 or v1; 0 if none is
// set or none can be read. A container usually sees its own cgroup at the
// root of the mount (a cgroup namespace, or the runtime's bind mount); with
// the whole hierarchy mounted, /proc/self/cgroup names the process's own.
func containerMemoryLimit(readFile func(string) ([]byte, error)) int64 {
	var own struct{ v2, v1 string }
	if b, err := readFile("/proc/self/cgroup"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			// hierarchy-ID:controller-list:cgroup-path
			id, rest, _ := strings.Cut(line, ":")
			controllers, dir, ok := strings.Cut(rest, ":")
			switch {
			case !ok:
			case id == "0" && controllers == "":
				own.v2 = dir
			case slices.Contains(strings.Split(controllers, ","), "memory"):
				own.v1 = dir
			}
		}
	}
	var limit int64
	for _, h := range []struct{ mount, file, own string }{
		{"/sys/fs/cgroup", "memory.max", own.v2},
		{"/sys/fs/cgroup/memory", "memory.limit_in_bytes", own.v1},
	} {
		// From the own cgroup up to the mount's root, which is always
		// read: a path that does not exist there is skipped.
		for dir := path.Clean("/" + h.own); ; dir = path.Dir(dir) {
			if b, err := readFile(path.Join(h.mount, dir, h.file)); err == nil {
				if n, ok := parseCgroupLimit(string(b)); ok && (limit == 0 || n < limit) {
					limit = n
				}
			}
			if dir == "/" {
				break
			}
		}
	}
	return limit
}

// parseCgroupLimit reads memory.max (v2: bytes, or "max") or
// memory.limit_in_bytes (v1: bytes, a number near 2^63 when unlimited).
func parseCgroupLimit(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0, false
	}
	return n, true
}

// mul is n×size, saturating: the variables are not bounded above.
func mul(n int, size int64) int64 {
	if int64(n) > math.MaxInt64/size {
		return math.MaxInt64
	}
	return int64(n) * size
}

// add is a+b, saturating.
func add(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
