package opaque

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/middleware"
)

// guard bounds how long a test waits for what should happen at once. It
// never paces a test.
const guard = 10 * time.Second

func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("%s: still waiting after %v", what, guard)
		panic("unreachable")
	}
}

type outcome struct {
	claims *middleware.Claims
	err    error
}

func TestFlightSurvivesOneWaitersCancellation(t *testing.T) {
	f := flight{slots: make(chan struct{}, 8)}
	k := tokenKey("token")
	started := make(chan context.Context, 1)
	release := make(chan struct{})
	want := &middleware.Claims{Subject: "sub"}
	fn := func(ctx context.Context) (*middleware.Claims, error) {
		started <- ctx
		select {
		case <-release:
			return want, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	ctxA, cancelA := context.WithCancel(context.Background())
	a := make(chan outcome, 1)
	go func() { c, err := f.do(ctxA, &k, time.Hour, fn); a <- outcome{c, err} }()
	callCtx := recv(t, "call start", started)

	// B joins the call A started: it must not start another.
	b := make(chan outcome, 1)
	go func() {
		c, err := f.do(context.Background(), &k, time.Hour, func(context.Context) (*middleware.Claims, error) {
			t.Error("second call started")
			return nil, nil
		})
		b <- outcome{c, err}
	}()
	waitWaiters(t, &f, &k, 2)

	cancelA()
	if o := recv(t, "A", a); !errors.Is(o.err, middleware.ErrIssuerUnavailable) || !errors.Is(o.err, context.Canceled) {
		t.Errorf("A after its cancellation: %v, want issuer_unavailable wrapping context.Canceled", o.err)
	}
	if callCtx.Err() != nil {
		t.Fatal("the call was cancelled with a waiter left")
	}
	close(release)
	if o := recv(t, "B", b); o.err != nil || o.claims != want {
		t.Errorf("B: %v %v, want the call's claims", o.claims, o.err)
	}
}

func TestFlightCancelledWhenAllWaitersLeave(t *testing.T) {
	f := flight{slots: make(chan struct{}, 8)}
	k := tokenKey("token")
	started := make(chan context.Context, 2)
	fn := func(ctx context.Context) (*middleware.Claims, error) {
		started <- ctx
		<-ctx.Done()
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan outcome, 1)
	go func() { c, err := f.do(ctx, &k, time.Hour, fn); done <- outcome{c, err} }()
	callCtx := recv(t, "call start", started)
	cancel()
	recv(t, "waiter", done)
	recv(t, "call cancelled", callCtx.Done())

	// The cancelled call is forgotten: a new check starts a new call.
	go func() { c, err := f.do(context.Background(), &k, time.Millisecond, fn); done <- outcome{c, err} }()
	recv(t, "second call start", started)
	if o := recv(t, "second waiter", done); !errors.Is(o.err, context.DeadlineExceeded) {
		t.Errorf("second call: %v, want its timeout", o.err)
	}
}

func TestFlightDoneContext(t *testing.T) {
	f := flight{slots: make(chan struct{}, 8)}
	k := tokenKey("token")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.do(ctx, &k, time.Hour, func(context.Context) (*middleware.Claims, error) {
		t.Error("call started for a done context")
		return nil, nil
	})
	if !errors.Is(err, middleware.ErrIssuerUnavailable) {
		t.Errorf("got %v, want issuer_unavailable", err)
	}
}

// waitWaiters blocks until the call for k has n waiters. The flight has no
// hook for it, so it polls the count under the lock, yielding in between;
// the wait is bounded by guard.
func waitWaiters(t *testing.T, f *flight, k *key, n int) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		c := f.calls[*k]
		got := 0
		if c != nil {
			got = c.waiters
		}
		f.mu.Unlock()
		if got >= n {
			return
		}
		runtime.Gosched()
	}
	t.Fatalf("call never had %d waiters", n)
}

func TestCacheBounds(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	k := func(i int) key { return tokenKey(fmt.Sprint("token-", i)) }
	pos := func(size int64) *entry { return &entry{claims: &middleware.Claims{}, size: size} }
	neg := func() *entry { return &entry{err: middleware.ErrInactive} }

	t.Run("entries", func(t *testing.T) {
		c := newCache(3, 1<<20, clock)
		for i := range 10 {
			kk := k(i)
			c.put(&kk, pos(1), now.Add(time.Duration(i+1)*time.Minute))
		}
		if n := c.len(); n != 3 {
			t.Errorf("%d entries, want 3", n)
		}
		last := k(9)
		if c.get(&last, now) == nil {
			t.Error("the entry just stored was evicted")
		}
	})
	t.Run("expired first", func(t *testing.T) {
		at := now
		c := newCache(2, 1<<20, func() time.Time { return at })
		k0, k1, k2 := k(0), k(1), k(2)
		c.put(&k0, pos(1), now.Add(time.Hour))
		c.put(&k1, pos(1), now.Add(time.Second))
		at = now.Add(time.Minute) // k1 has expired
		c.put(&k2, pos(1), at.Add(time.Hour))
		if c.get(&k0, at) == nil || c.get(&k2, at) == nil {
			t.Error("a live entry was evicted while an expired one was there")
		}
	})
	t.Run("bytes", func(t *testing.T) {
		c := newCache(100, 1000, clock)
		for i := range 10 {
			kk := k(i)
			c.put(&kk, pos(300), now.Add(time.Hour))
		}
		if n := c.len(); n != 3 {
			t.Errorf("%d entries of 300 bytes in 1000, want 3", n)
		}
		huge := k(99)
		c.put(&huge, pos(1001), now.Add(time.Hour))
		if c.get(&huge, now) != nil {
			t.Error("an entry over the whole byte bound was stored")
		}
	})
	t.Run("negative answers do not evict positive ones", func(t *testing.T) {
		c := newCache(2, 1<<20, clock)
		k0, k1 := k(0), k(1)
		c.put(&k0, pos(1), now.Add(time.Hour))
		c.put(&k1, pos(1), now.Add(time.Hour))
		for i := 100; i < 200; i++ {
			kk := k(i)
			c.put(&kk, neg(), now.Add(time.Minute))
		}
		if c.get(&k0, now) == nil || c.get(&k1, now) == nil {
			t.Error("a flood of negative answers evicted positive ones")
		}
		if n := c.len(); n != 4 {
			t.Errorf("%d entries, want 2 positive + 2 negative", n)
		}
	})
	t.Run("a new answer replaces the other kind", func(t *testing.T) {
		c := newCache(2, 1<<20, clock)
		k0 := k(0)
		c.put(&k0, neg(), now.Add(time.Minute))
		c.put(&k0, pos(1), now.Add(time.Hour))
		if e := c.get(&k0, now); e == nil || e.claims == nil {
			t.Errorf("got %+v, want the positive answer", e)
		}
		c.put(&k0, neg(), now.Add(time.Minute))
		if e := c.get(&k0, now); e == nil || e.claims != nil {
			t.Errorf("got %+v, want the negative answer", e)
		}
		if n := c.len(); n != 1 {
			t.Errorf("%d entries, want 1", n)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		c := newCache(2, 1<<20, clock)
		k0 := k(0)
		c.put(&k0, pos(1), now.Add(time.Minute))
		if c.get(&k0, now.Add(time.Minute)) != nil {
			t.Error("entry answered at its expiry")
		}
	})
}

func TestPlausible(t *testing.T) {
	for token, want := range map[string]bool{
		"abc-_~+/.":                     true,
		"abc==":                         true,
		"":                              false,
		"=abc":                          false,
		"ab=c":                          false,
		"abc\r\nX-Injected: 1":          false,
		"abc def":                       false,
		"ab%0d":                         false,
		strings.Repeat("a", maxToken):   true,
		strings.Repeat("a", maxToken+1): false,
	} {
		if got := plausible(token); got != want {
			t.Errorf("plausible(%.20q) = %v, want %v", token, got, want)
		}
	}
}

// FuzzParseIntrospection: whatever the issuer answers, parsing never panics,
// and claims come only from an answer whose "active" is the boolean true.
func FuzzParseIntrospection(f *testing.F) {
	for _, s := range []string{
		`{"active":true,"iss":"https://issuer.example.com/","aud":"api","exp":1900000000,"scope":"a b"}`,
		`{"active":false}`,
		`{"active":"true"}`,
		`{"active":true,"exp":"soon"}`,
		`{"active":true,"active":false}`,
		`{"active":true,"token_type":"refresh_token"}`,
		`{"active":true,"cnf":{"jkt":"x"}}`,
		`<html>`,
		`[]`,
		`null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := parseIntrospection(body, "https://issuer.example.com/")
		if (c == nil) == (err == nil) {
			t.Fatalf("claims %v and error %v", c, err)
		}
		if c != nil && !strings.Contains(string(body), "true") {
			t.Fatalf("claims from an answer without true: %q", body)
		}
		if c != nil && c.Issuer != "https://issuer.example.com/" {
			t.Fatalf("claims of issuer %q", c.Issuer)
		}
	})
}

// FuzzParseProfile: parsing a profile never panics, and the claims have the
// configured issuer and no audience or scopes.
func FuzzParseProfile(f *testing.F) {
	for _, s := range []string{
		`{"sub":"auth0|1","email":"a@example.com"}`,
		`{"sub":"auth0|1","aud":"api","scope":"admin","iss":"https://evil.example.com/"}`,
		`{"sub":1}`,
		`{}`,
		`eyJhbGciOi`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, _, err := parseProfile(body, "https://issuer.example.com/")
		if (c == nil) == (err == nil) {
			t.Fatalf("claims %v and error %v", c, err)
		}
		if c != nil && (c.Issuer != "https://issuer.example.com/" || len(c.Audience) != 0 || c.Scopes.Len() != 0 || c.Subject == "") {
			t.Fatalf("profile claims %+v", c)
		}
	})
}

// Refusals of made-up tokens, each refused once and cached for the negative
// TTL, must not pile up until the refusal bound (100,000 by default): at the
// mix of the soak of issue 15, a 20-minute run refuses about 50,000, and
// every one stayed, the process's memory growing all the while. Expired
// refusals are dropped as new ones come (expired active answers stay, for
// StaleIfBusy).
func TestExpiredRefusalsDoNotPileUp(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	c := newCache(100_000, 64<<20, clock)
	const made, perTTL = 50_000, 100 // 100 made-up tokens per negative TTL
	for i := range made {
		if i%perTTL == 0 {
			now = now.Add(10 * time.Second)
		}
		k := tokenKey(fmt.Sprint("made-up-", i))
		c.put(&k, &entry{err: middleware.ErrInactive}, now.Add(10*time.Second))
	}
	// A shard keeps up to about twice its live refusals (at least 64).
	if n := c.neg.Len(); n > 64*2*64 {
		t.Errorf("%d refusals cached after %d made-up tokens, %d of them unexpired: expired ones pile up", n, made, perTTL)
	}
	// An expired active answer stays for StaleIfBusy.
	active := tokenKey("real")
	c.put(&active, &entry{claims: &middleware.Claims{}, size: 100, staleUntil: now.Add(time.Hour)}, now.Add(time.Minute))
	now = now.Add(2 * time.Minute)
	for i := range 1000 {
		k := tokenKey(fmt.Sprint("later-", i))
		c.put(&k, &entry{err: middleware.ErrInactive}, now.Add(10*time.Second))
	}
	if e, fresh := c.lookup(&active, now); e == nil || fresh {
		t.Errorf("the expired active answer: %v (fresh %v), want it kept, not fresh", e, fresh)
	}
}
