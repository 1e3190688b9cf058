package dpop

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// The default bounds of a [MemoryStore].
const (
	DefaultMemoryEntries = 100_000
	DefaultMemoryBytes   = 16 << 20
)

// memoryEntryBytes is what one remembered proof costs, counted against
// [MemoryOptions].MaxBytes: the id, its expiry, the heap slot and the map
// slot, rounded up.
const memoryEntryBytes = 128

// MemoryOptions bounds a [MemoryStore]. The zero value is
// [DefaultMemoryEntries] entries and [DefaultMemoryBytes] bytes.
type MemoryOptions struct {
	// MaxEntries bounds the proofs remembered. Zero means
	// DefaultMemoryEntries.
	MaxEntries int
	// MaxBytes bounds the memory they take. Zero means DefaultMemoryBytes.
	MaxBytes int64
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// MemoryStore is a [Store] in this process's memory: it stops a replay at
// the replica that saw the proof, not at the others (use package redisstore
// for that). Each id is remembered until its ttl passes.
//
// When full, it forgets the id closest to expiry — the oldest proof — and
// from then on reports as a replay every id whose expiry is not more than
// [FloorSlack] later than the latest one it forgot early: such a proof could
// be one it no longer remembers. A flood of proofs thus shortens the window
// in which a proof is accepted instead of making a forgotten proof
// acceptable again; fresh proofs still pass while the store holds more than
// the last 6 seconds of the flood (5 s of iat ahead and FloorSlack), and
// are refused past that: a flood that fast fails closed. This relies on the expiry of an id
// being the same each time it is asked about, as the middleware's is (the
// proof's iat plus the window). Safe for concurrent use.
type MemoryStore struct {
	max int
	now func() time.Time

	mu    sync.Mutex // guards ids, exp and floor
	ids   map[[32]byte]*memoryEntry
	exp   expiryHeap
	floor int64 // the latest expiry of an id forgotten before it (Unix ns); 0: none

	forgottenEarly atomic.Uint64
}

// FloorSlack is how much later than the latest id a full [MemoryStore]
// forgot early an id must expire to be accepted: the expiry a caller
// computes from a proof's iat varies by the time between its clock reading
// and the store's.
const FloorSlack = time.Second

type memoryEntry struct {
	id    [32]byte
	until int64 // Unix nanoseconds
	index int   // in exp
}

// NewMemoryStore returns an empty store.
func NewMemoryStore(opts MemoryOptions) *MemoryStore {
	n := opts.MaxEntries
	if n <= 0 {
		n = DefaultMemoryEntries
	}
	b := opts.MaxBytes
	if b <= 0 {
		b = DefaultMemoryBytes
	}
	n = int(min(int64(n), max(b/memoryEntryBytes, 1)))
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{max: n, now: now, ids: make(map[[32]byte]*memoryEntry)}
}

// Seen implements [Store]. It never fails.
func (s *MemoryStore) Seen(_ context.Context, id [32]byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, errors.New("dpop: non-positive ttl")
	}
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	// Forget what has expired.
	for len(s.exp) > 0 && s.exp[0].until <= now {
		e := heap.Pop(&s.exp).(*memoryEntry)
		delete(s.ids, e.id)
	}
	if _, ok := s.ids[id]; ok {
		return true, nil
	}
	until := now + int64(ttl)
	if s.floor != 0 && until <= s.floor+int64(FloorSlack) {
		return true, nil // it may be a proof forgotten early
	}
	if len(s.exp) >= s.max {
		e := heap.Pop(&s.exp).(*memoryEntry)
		delete(s.ids, e.id)
		s.floor = max(s.floor, e.until)
		s.forgottenEarly.Add(1)
	}
	e := &memoryEntry{id: id, until: until}
	heap.Push(&s.exp, e)
	s.ids[id] = e
	return false, nil
}

// Len returns how many ids the store holds, expired ones not yet forgotten
// included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.exp)
}

// ForgottenEarly returns how many ids the store has forgotten before their
// ttl because it was full. Each one raised the expiry below which proofs are
// refused as replays; a count that keeps rising means proofs arrive faster
// than the store's bound allows for the window, and older (but still valid)
// proofs are being refused.
func (s *MemoryStore) ForgottenEarly() uint64 { return s.forgottenEarly.Load() }

// Cap returns how many ids the store holds at most, from its bounds.
func (s *MemoryStore) Cap() int { return s.max }

// expiryHeap orders entries by expiry, soonest first.
type expiryHeap []*memoryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until < h[j].until }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*memoryEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
