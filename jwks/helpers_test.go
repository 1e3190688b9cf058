package jwks_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
)

// waitLimit bounds every wait of these tests: it is a failure deadline, never
// a way to let something happen.
const waitLimit = 15 * time.Second

// testContext is a context that ends at the failure deadline.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// startIssuer starts a jwkstest issuer that is closed when the test ends.
func startIssuer(t testing.TB, o jwkstest.Options) *jwkstest.Issuer {
	t.Helper()
	iss, err := jwkstest.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Close)
	return iss
}

// newKey returns a fresh key for alg.
func newKey(t testing.TB, alg string) *jwkstest.Key {
	t.Helper()
	k, err := jwkstest.NewKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// recorder keeps the RefreshEvents of a Remote, and lets a test wait for the
// n-th one. A NewRemote set makes exactly one JWKS request per event, so
// "request n has been answered" is "event n has been recorded".
type recorder struct {
	mu      sync.Mutex // guards events and changed
	events  []jwks.RefreshEvent
	changed chan struct{} // closed and replaced on every event
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) record(e jwks.RefreshEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	close(r.changed)
	r.changed = make(chan struct{})
}

// wait returns the events once there are at least n.
func (r *recorder) wait(t testing.TB, n int) []jwks.RefreshEvent {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		events, changed := append([]jwks.RefreshEvent(nil), r.events...), r.changed
		r.mu.Unlock()
		if len(events) >= n {
			return events
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%d refresh events after %v, want %d: %+v", len(events), waitLimit, n, events)
		}
	}
}

// waitFor returns the first event, at or after index from, that pred accepts.
func (r *recorder) waitFor(t testing.TB, from int, pred func(jwks.RefreshEvent) bool) (int, jwks.RefreshEvent) {
	t.Helper()
	for n := from + 1; ; n++ {
		events := r.wait(t, n)
		if e := events[n-1]; pred(e) {
			return n - 1, e
		}
	}
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// newRemote returns a Remote for url that is closed when the test ends, with
// its events going to the returned recorder.
func newRemote(t testing.TB, url string, o jwks.RemoteOptions) (*jwks.Remote, *recorder) {
	t.Helper()
	rec := newRecorder()
	o.OnRefresh = rec.record
	r, err := jwks.NewRemote(url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, rec
}

// mustKey looks kid up, waiting for a fetch under way, and fails the test if
// it is not found.
func mustKey(t testing.TB, s jwks.Set, kid string) jwks.Key {
	t.Helper()
	k, err := s.Key(testContext(t), kid)
	if err != nil {
		t.Fatalf("Key(%q): %v", kid, err)
	}
	return k
}

var b64 = base64.RawURLEncoding

// publicJWK returns the public JWK of k as a map, for a test to change.
func publicJWK(t testing.TB, k *jwkstest.Key) map[string]any {
	t.Helper()
	b, err := k.PublicJWK()
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// jwksJSON encodes a JWK Set of the given JWKs.
func jwksJSON(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeFile writes data to a new file in the test's temporary directory.
func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
