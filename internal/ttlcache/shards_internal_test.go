package ttlcache

import (
	"testing"
	"time"
)

// A large cache is split so that concurrent requests rarely share a lock; a
// small one keeps its bound exactly in one shard.
func TestShards(t *testing.T) {
	for _, tc := range []struct {
		maxEntries int
		maxBytes   int64
		want       int
	}{
		{3, 1 << 20, 1},
		{127, 1 << 20, 1},
		{128, 1 << 20, 2},
		{100_000, 64 << 20, maxShards},
		{100_000, 16, 16},
	} {
		c := New(tc.maxEntries, tc.maxBytes, func(int) int64 { return 1 }, time.Now)
		if len(c.shards) != tc.want || c.maxEntries*len(c.shards) > tc.maxEntries || c.maxBytes*int64(len(c.shards)) > tc.maxBytes {
			t.Errorf("New(%d, %d): %d shards of %d entries, %d bytes; want %d shards within the bounds",
				tc.maxEntries, tc.maxBytes, len(c.shards), c.maxEntries, c.maxBytes, tc.want)
		}
	}
}
