package dpop_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenward/tokenward/dpop"
)

func id(i int) [32]byte {
	var b [32]byte
	b[0], b[1], b[2] = byte(i), byte(i>>8), byte(i>>16)
	return b
}

// clockedStore is a MemoryStore of max entries on a clock the test moves,
// and a shorthand for its Seen with id(i).
func clockedStore(t *testing.T, max int) (*dpop.MemoryStore, *atomic.Int64, func(i int, ttl time.Duration) bool) {
	clock := new(atomic.Int64)
	s := dpop.NewMemoryStore(dpop.MemoryOptions{MaxEntries: max, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	return s, clock, func(i int, ttl time.Duration) bool {
		t.Helper()
		r, err := s.Seen(context.Background(), id(i), ttl)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// TestMemoryStoreBounds: an id is a replay until its ttl passes; when full,
// the store forgets the id closest to expiry, never one with more time left;
// expired ids make room first; the bytes bound caps the entries too.
func TestMemoryStoreBounds(t *testing.T) {
	ctx := context.Background()
	s, clock, seen := clockedStore(t, 3)
	if seen(1, 10*time.Second) || !seen(1, 10*time.Second) {
		t.Fatal("id 1: not remembered")
	}
	seen(2, 30*time.Second)
	seen(3, 20*time.Second)
	// Full: 4 evicts 1 (closest to expiry), not 2 or 3.
	if seen(4, 40*time.Second) {
		t.Fatal("id 4 taken for a replay")
	}
	if s.Len() != 3 {
		t.Fatalf("Len %d, want 3", s.Len())
	}
	if !seen(2, time.Second) || !seen(3, time.Second) || !seen(4, time.Second) {
		t.Fatal("an id with more time left was forgotten")
	}
	// After its ttl, an id is new again, and expired ids make room.
	clock.Add(int64(25 * time.Second)) // 3 (20 s) expired
	if seen(3, 10*time.Second) {
		t.Fatal("id 3 still remembered after its ttl")
	}
	if !seen(2, time.Second) {
		t.Fatal("id 2 forgotten before its ttl")
	}
	// Bytes bound: 1 KiB holds fewer than 100 entries.
	small := dpop.NewMemoryStore(dpop.MemoryOptions{MaxEntries: 100, MaxBytes: 1024})
	if small.Cap() >= 100 || small.Cap() < 1 {
		t.Fatalf("Cap %d under a 1 KiB bound", small.Cap())
	}
	for i := range 1000 {
		small.Seen(ctx, id(i), time.Minute)
	}
	if small.Len() > small.Cap() {
		t.Fatalf("Len %d over Cap %d", small.Len(), small.Cap())
	}
	if d := dpop.NewMemoryStore(dpop.MemoryOptions{}); d.Cap() != dpop.DefaultMemoryEntries {
		t.Errorf("default Cap %d", d.Cap())
	}
}

// TestMemoryStoreFloor: an id the full store forgot before its ttl is
// still a replay when asked again with the same expiry (a flood cannot make
// a captured proof acceptable again), and so is any id expiring no later
// than FloorSlack after it; ids expiring later (fresh proofs) are accepted;
// ForgottenEarly counts the ids forgotten early.
func TestMemoryStoreFloor(t *testing.T) {
	s, clock, seen := clockedStore(t, 2)
	seen(1, 10*time.Second) // the victim's proof
	seen(2, 30*time.Second)
	if seen(3, 30*time.Second) || s.ForgottenEarly() != 1 { // forgets 1
		t.Fatalf("id 3 refused, or forgotten early %d, want 1", s.ForgottenEarly())
	}
	clock.Add(int64(2 * time.Second))
	if !seen(1, 8*time.Second) {
		t.Error("the forgotten id accepted again with its expiry")
	}
	if !seen(9, 8*time.Second+dpop.FloorSlack) {
		t.Error("an id expiring within FloorSlack of the forgotten one accepted")
	}
	if seen(10, 8*time.Second+dpop.FloorSlack+time.Millisecond) {
		t.Error("an id expiring after the floor refused")
	}
	if s.ForgottenEarly() != 2 {
		t.Errorf("forgotten early %d, want 2", s.ForgottenEarly())
	}
	// Once the forgotten ids would have expired anyway, nothing is lost.
	clock.Add(int64(time.Minute))
	if seen(1, 10*time.Second) {
		t.Error("id 1 refused a minute after its window")
	}
}

// TestMemoryStoreFloodRate: the documented limit of the floor. A client
// flooding a full store with proofs dated 5 s ahead (the most the middleware
// accepts) at rate R keeps the last max/R seconds of them; a fresh proof,
// which expires 5 s before the newest flood proof, passes while max/R is
// over 6 s (the 5 s and FloorSlack), and is refused as a replay past it.
func TestMemoryStoreFloodRate(t *testing.T) {
	const max = 1000
	const window = 60 * time.Second
	for _, tc := range []struct {
		rate    int // proofs a second
		refused bool
	}{{max / 6 * 9 / 10, false}, {max / 6 * 11 / 10, true}} {
		_, clock, seen := clockedStore(t, max)
		flood, fresh := 1<<20, 0
		refused := 0
		for sec := range 60 {
			for range tc.rate {
				clock.Add(int64(time.Second) / int64(tc.rate))
				flood++
				seen(flood, 5*time.Second+window+time.Second)
			}
			if sec >= 20 { // the store has been full for a while
				fresh++
				if seen(fresh, window+time.Second) {
					refused++
				}
			}
		}
		if got := refused > 0; got != tc.refused {
			t.Errorf("a flood of %d proofs/s into %d entries: %d of %d fresh proofs refused, want refused %v", tc.rate, max, refused, fresh, tc.refused)
		}
	}
}

// TestMemoryStoreConcurrent: of many calls with the same id at once,
// exactly one is not a replay.
func TestMemoryStoreConcurrent(t *testing.T) {
	s := dpop.NewMemoryStore(dpop.MemoryOptions{})
	var fresh atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if r, _ := s.Seen(context.Background(), id(7), time.Minute); !r {
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	if fresh.Load() != 1 {
		t.Fatalf("%d calls saw the id as new, want 1", fresh.Load())
	}
}

func TestNonces(t *testing.T) {
	secret := []byte(strings.Repeat("x", 32))
	n, err := dpop.NewNonces(secret, dpop.NonceOptions{Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_800_000_000, 0)
	cur := n.Current(t0)
	if !n.Valid(cur, t0) || !n.Valid(cur, t0.Add(time.Minute)) {
		t.Error("current or previous window's nonce refused")
	}
	if n.Valid(cur, t0.Add(2*time.Minute)) {
		t.Error("a nonce two windows old accepted")
	}
	if n.Current(t0.Add(time.Minute)) == cur {
		t.Error("the nonce did not rotate")
	}
	// Another replica with the same secret agrees; another secret does not.
	same, _ := dpop.NewNonces(secret, dpop.NonceOptions{Window: time.Minute})
	if !same.Valid(cur, t0) {
		t.Error("a replica sharing the secret refuses the nonce")
	}
	other, _ := dpop.NewNonces([]byte(strings.Repeat("y", 32)), dpop.NonceOptions{Window: time.Minute})
	if other.Valid(cur, t0) {
		t.Error("a nonce under another secret accepted")
	}
	for _, bad := range []string{"", "x", cur[:len(cur)-1] + "A", strings.Repeat("A", 22)} {
		if bad != cur && n.Valid(bad, t0) {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := dpop.NewNonces([]byte("short"), dpop.NonceOptions{}); err == nil {
		t.Error("a short secret accepted")
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b, err := dpop.ReadSecretFile(write("ok", strings.Repeat("s", 40)+"\n"))
	if err != nil || len(b) != 40 {
		t.Errorf("ReadSecretFile = %d bytes, %v", len(b), err)
	}
	for _, p := range []string{write("short", "abc\n"), write("huge", strings.Repeat("s", 5000)), filepath.Join(dir, "missing")} {
		if _, err := dpop.ReadSecretFile(p); err == nil {
			t.Errorf("%s accepted", p)
		}
	}
}
