package ttlcache_test

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/ttlcache"
)

// val is a cached value that says its own cost.
type val struct {
	id   int
	cost int64
}

func valCost(v val) int64 { return v.cost }

func key(i int) ttlcache.Key { return sha256.Sum256([]byte(fmt.Sprint("token-", i))) }

// clock is a settable clock for a cache.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Unix(1_800_000_000, 0).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// The bounds hold however many goroutines Put at once, and the byte count
// is exactly the cost of the entries held.
func TestBoundsHoldUnderConcurrentPut(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxEntries int
		maxBytes   int64
	}{
		{"entries", 512, 1 << 40},
		{"bytes", 1 << 20, 40_000},
		{"small", 3, 1 << 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			c := ttlcache.New(tc.maxEntries, tc.maxBytes, valCost, clk.now)
			const workers, perWorker = 4, 2000
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range perWorker {
						id := w*perWorker + i
						k := key(id)
						c.Put(&k, val{id, int64(50 + id%100)}, clk.now().Add(time.Duration(1+id%7)*time.Minute))
						if i%3 == 0 {
							c.Get(&k)
						}
					}
				})
			}
			wg.Wait()
			s := c.Stats()
			if s.Entries > tc.maxEntries || s.Bytes > tc.maxBytes {
				t.Fatalf("stats %+v over the bounds %d entries, %d bytes", s, tc.maxEntries, tc.maxBytes)
			}
			if s.Evictions == 0 || s.Entries == 0 {
				t.Fatalf("stats %+v: want evictions and entries kept", s)
			}
			var held, bytes int64
			for id := range workers * perWorker {
				k := key(id)
				if v, _, ok := c.Get(&k); ok {
					if v.id != id {
						t.Fatalf("key %d holds the value of %d", id, v.id)
					}
					held++
					bytes += v.cost
				}
			}
			if held != int64(s.Entries) || bytes != s.Bytes || c.Len() != s.Entries {
				t.Fatalf("held %d entries of %d bytes, Len %d, stats %+v", held, bytes, c.Len(), s)
			}
			if uint64(workers*perWorker) != uint64(s.Entries)+s.Evictions {
				t.Fatalf("%d puts of distinct keys, stats %+v: every entry not held was evicted", workers*perWorker, s)
			}
		})
	}
}

// Over a bound, every expired entry goes before any live one, however many
// entries the shard holds (more than an eviction samples).
func TestExpiredEntriesGoFirst(t *testing.T) {
	clk := newClock()
	const n = 100
	c := ttlcache.New(n, 1<<40, valCost, clk.now)
	start := clk.now()
	for i := range n {
		k := key(i)
		ttl := time.Hour
		if i%10 == 0 {
			ttl = time.Second // ten of them expire
		}
		c.Put(&k, val{i, 1}, start.Add(ttl))
	}
	clk.advance(time.Minute)
	for i := n; i < n+10; i++ {
		k := key(i)
		c.Put(&k, val{i, 1}, clk.now().Add(time.Hour))
	}
	for i := range n + 10 {
		k := key(i)
		_, _, ok := c.Get(&k)
		if expired := i < n && i%10 == 0; ok == expired {
			t.Errorf("entry %d (expired %v) held %v", i, expired, ok)
		}
	}
	if s := c.Stats(); s.Entries != n || s.Evictions != 10 {
		t.Fatalf("stats %+v, want %d entries, 10 evictions", s, n)
	}
}

// With nothing expired, the entry that expires soonest goes (among the
// sampled ones: all of them in a cache this small), never the one stored.
func TestEvictsSoonestExpiry(t *testing.T) {
	clk := newClock()
	c := ttlcache.New(4, 1<<40, valCost, clk.now)
	now := clk.now()
	for i, ttl := range []time.Duration{4 * time.Hour, time.Hour, 3 * time.Hour, 2 * time.Hour} {
		k := key(i)
		c.Put(&k, val{i, 1}, now.Add(ttl))
	}
	k4 := key(4)
	c.Put(&k4, val{4, 1}, now.Add(time.Minute)) // the soonest of all, but just stored
	for i, want := range []bool{true, false, true, true, true} {
		k := key(i)
		if _, _, ok := c.Get(&k); ok != want {
			t.Errorf("entry %d held %v, want %v", i, ok, want)
		}
	}
}

// Get returns an entry past its expiry, with that expiry, until it is
// removed, replaced or evicted: whether to use it is the caller's rule.
func TestGetReturnsExpiredEntries(t *testing.T) {
	clk := newClock()
	c := ttlcache.New(10, 1<<40, valCost, clk.now)
	k := key(0)
	exp := clk.now().Add(time.Second)
	c.Put(&k, val{0, 1}, exp)
	clk.advance(time.Hour)
	v, got, ok := c.Get(&k)
	if !ok || v.id != 0 || !got.Equal(exp) {
		t.Fatalf("Get after expiry = %v, %v, %v; want the entry and its expiry %v", v, got, ok, exp)
	}
	later := clk.now().Add(time.Minute)
	c.Put(&k, val{1, 1}, later)
	if v, got, ok := c.Get(&k); !ok || v.id != 1 || !got.Equal(later) {
		t.Fatalf("Get after replacing = %v, %v, %v; want the new entry until %v", v, got, ok, later)
	}
	c.Remove(&k)
	if _, _, ok := c.Get(&k); ok {
		t.Fatal("entry held after Remove")
	}
	if s := c.Stats(); s.Entries != 0 || s.Bytes != 0 || s.Evictions != 0 {
		t.Fatalf("stats %+v: want empty, replacing and removing are no evictions", s)
	}
}

// An expiry past what Unix nanoseconds hold (a token with exp in year 9999)
// is kept as the latest of all, not wrapped into the past.
func TestFarExpiry(t *testing.T) {
	clk := newClock()
	c := ttlcache.New(2, 1<<40, valCost, clk.now)
	far, near := key(0), key(1)
	c.Put(&far, val{0, 1}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	c.Put(&near, val{1, 1}, clk.now().Add(time.Hour))
	if _, exp, _ := c.Get(&far); !exp.After(clk.now().Add(100 * 365 * 24 * time.Hour)) {
		t.Fatalf("far expiry read back as %v", exp)
	}
	k2 := key(2)
	c.Put(&k2, val{2, 1}, clk.now().Add(2*time.Hour))
	if _, _, ok := c.Get(&far); !ok {
		t.Fatal("the entry of the farthest expiry was evicted")
	}
	if _, _, ok := c.Get(&near); ok {
		t.Fatal("the entry of the nearest expiry was kept")
	}
}

// A value costing more than the byte bound is refused, and leaves the
// entry of its key as it was.
func TestPutRefusesOversized(t *testing.T) {
	clk := newClock()
	c := ttlcache.New(10, 1000, valCost, clk.now)
	k := key(0)
	if !c.Put(&k, val{0, 1000}, clk.now().Add(time.Hour)) {
		t.Fatal("a value of exactly the bound was refused")
	}
	if c.Put(&k, val{1, 1001}, clk.now().Add(time.Hour)) {
		t.Fatal("a value over the bound was stored")
	}
	if v, _, ok := c.Get(&k); !ok || v.id != 0 {
		t.Fatalf("Get = %v, %v; want the earlier entry", v, ok)
	}
}

// A hit needs all 256 bits of the key.
func TestWholeKeyCompared(t *testing.T) {
	clk := newClock()
	c := ttlcache.New(10, 1<<40, valCost, clk.now)
	var a, b ttlcache.Key
	b[31] = 1
	c.Put(&a, val{0, 1}, clk.now().Add(time.Hour))
	if _, _, ok := c.Get(&b); ok {
		t.Fatal("a key differing in its last byte hit")
	}
}

func TestCounters(t *testing.T) {
	clk := newClock()
	c := ttlcache.New(1, 1<<40, valCost, clk.now)
	k0, k1 := key(0), key(1)
	c.Hit(&k0)
	c.Hit(&k1)
	c.Miss(&k0)
	c.Put(&k0, val{0, 7}, clk.now().Add(time.Hour))
	c.Put(&k1, val{1, 5}, clk.now().Add(time.Hour)) // evicts k0
	want := ttlcache.Stats{Hits: 2, Misses: 1, Evictions: 1, Entries: 1, Bytes: 5}
	if s := c.Stats(); s != want {
		t.Fatalf("stats %+v, want %+v", s, want)
	}
}

// A hit allocates nothing.
func TestGetAllocs(t *testing.T) {
	clk := newClock()
	c := ttlcache.New(10, 1<<40, valCost, clk.now)
	k := key(0)
	c.Put(&k, val{0, 1}, clk.now().Add(time.Hour))
	if n := testing.AllocsPerRun(100, func() { c.Get(&k); c.Hit(&k) }); n != 0 {
		t.Fatalf("Get allocates %v times", n)
	}
}

func BenchmarkGet(b *testing.B) {
	clk := newClock()
	c := ttlcache.New(100_000, 1<<40, valCost, clk.now)
	keys := make([]ttlcache.Key, 1024)
	for i := range keys {
		keys[i] = key(i)
		c.Put(&keys[i], val{i, 1}, clk.now().Add(time.Hour))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Get(&keys[i&1023])
		i++
	}
}

func BenchmarkPutFull(b *testing.B) {
	clk := newClock()
	c := ttlcache.New(10_000, 1<<40, valCost, clk.now)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := key(i)
		c.Put(&k, val{i, 1}, clk.now().Add(time.Hour))
		i++
	}
}

// A cache whose expired entries are never used must not keep them until it
// is full: a trickle of short-lived entries (made-up opaque tokens, each
// refused once) would fill it to its entry bound with dead ones, its memory
// growing for as long as that takes (found with the soak of issue 15). With
// DropExpired a shard holds about twice its live entries at most; without
// it, expired entries stay until the bounds need the room, as before (the
// opaque checker's active answers are served past their expiry).
func TestDropExpired(t *testing.T) {
	const puts, live = 200_000, 100
	for _, drop := range []bool{true, false} {
		clk := newClock()
		c := ttlcache.New(1_000_000, 1<<40, valCost, clk.now)
		if drop {
			c.DropExpired()
		}
		for i := range puts {
			if i%live == 0 {
				clk.advance(time.Second) // the last batch has expired
			}
			k := key(i)
			c.Put(&k, val{cost: 1}, clk.now().Add(time.Second))
		}
		// 64 shards of at most about 2×max(live, 64) entries each.
		if n := c.Len(); drop && n > 64*2*64 {
			t.Errorf("DropExpired: %d entries after %d puts of which %d live, want at most %d", n, puts, live, 64*2*64)
		} else if !drop && n != puts {
			t.Errorf("without DropExpired: %d entries, want all %d (expired entries stay until the bounds need room)", n, puts)
		}
		// The live entries are all there.
		for i := puts - live; i < puts; i++ {
			k := key(i)
			if _, _, ok := c.Get(&k); !ok {
				t.Fatalf("drop %v: live entry %d gone", drop, i)
			}
		}
	}
}
