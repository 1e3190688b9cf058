package opaque_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/opaque"
)

// flooded is an introspector whose MaxConcurrency (2) calls are all held by
// made-up tokens, after it cached an active answer for user, on a clock the
// test moves.
type flooded struct {
	in   *opaque.Introspector
	iss  *heldIssuer
	clk  *clock
	user string
}

// newFlooded caches user's active answer (exp in an hour), then, with flood,
// takes every slot with made-up tokens that the issuer holds until the test
// ends.
func newFlooded(t *testing.T, opts opaque.IntrospectorOptions, flood bool) *flooded {
	t.Helper()
	f := &flooded{user: randomToken(t), clk: newClock()}
	f.iss = newHeldIssuer(t, f.user)
	opts.ClientID, opts.ClientSecret, opts.Issuer = clientID, clientSecret, f.iss.URL
	opts.Timeout = time.Hour // only Release ends a held call
	opts.MaxConcurrency = 2
	opts.Now = f.clk.Now
	var err error
	if f.in, err = opaque.NewIntrospector(f.iss.URL, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := f.in.CheckOpaque(context.Background(), f.user); err != nil {
		t.Fatal(err)
	}
	if flood {
		f.flood(t)
	}
	return f
}

// flood takes every slot with made-up tokens, held until the test ends.
func (f *flooded) flood(t *testing.T) {
	t.Helper()
	for range 2 {
		go f.in.CheckOpaque(context.Background(), randomToken(t))
		recv(t, "held call", f.iss.arrived)
	}
	if _, err := f.in.CheckOpaque(context.Background(), randomToken(t)); !errors.Is(err, middleware.ErrIssuerBusy) {
		t.Fatalf("a made-up token with every slot taken: %v, want issuer_busy", err)
	}
}

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

// TestCachedTokenOutlivesItsTTLDuringFlood: a real user's token, cached
// before a flood of made-up tokens took every slot, is still accepted after
// its cached answer's CacheTTL (5 min) while the token is valid and the flood
// goes on (it used to get 503 issuer_busy for as long as the flood lasted).
// Made-up tokens are refused as before, the deny list still applies, and the
// stale answers are counted.
func TestCachedTokenOutlivesItsTTLDuringFlood(t *testing.T) {
	f := newFlooded(t, opaque.IntrospectorOptions{}, true)
	var denied atomic.Bool
	v := newValidator(t, f.iss.URL, f.in, middleware.ValidatorOptions{
		Revoked: func(c *middleware.Claims) bool { return denied.Load() && c.Subject == "auth0|real-user" },
	})
	api := newAPI(t, v)

	f.clk.Advance(opaque.DefaultCacheTTL + time.Second) // the token itself is valid for an hour
	if a := call(t, api.URL+"/contacts", f.user); a.status != http.StatusOK || !strings.HasPrefix(a.body, "auth0|real-user ") {
		t.Errorf("real token past its cache TTL, flood on: %d %s, want 200 for auth0|real-user", a.status, a.body)
	}
	if a := call(t, api.URL+"/contacts", randomToken(t)); a.status != http.StatusServiceUnavailable || a.retryAfter == "" {
		t.Errorf("made-up token, flood on: %d %q, want 503 with Retry-After", a.status, a.retryAfter)
	}
	denied.Store(true)
	if a := call(t, api.URL+"/contacts", f.user); a.status != http.StatusUnauthorized || a.desc != "token revoked" {
		t.Errorf("real token on the deny list, answered stale: %d %s, want 401 token revoked", a.status, a.body)
	}
	if s := f.in.Stats(); s.Stale != 2 || s.Busy != 2 || s.Calls != 3 {
		t.Errorf("Stats %+v, want Stale 2, Busy 2 (made-up tokens), Calls 3 (the user's and the two held)", s)
	}
}

// TestStaleIfBusyBounds: an active answer past its CacheTTL is used while
// every slot is taken only within StaleIfBusy and before the token's exp.
func TestStaleIfBusyBounds(t *testing.T) {
	const ttl = opaque.DefaultCacheTTL
	for _, tc := range []struct {
		name        string
		staleIfBusy time.Duration
		served      time.Duration // since the answer was cached: still accepted
		refused     time.Duration // since the answer was cached: issuer_busy
		stale       uint64        // answers counted in Stats.Stale
	}{
		{"default is one more CacheTTL", 0, 2*ttl - time.Second, 2 * ttl, 1},
		{"one minute", time.Minute, ttl + 59*time.Second, ttl + time.Minute, 1},
		{"negative is never", -1, ttl - time.Second, ttl, 0},
		// The held issuer's token expires an hour after the answer.
		{"never past exp", 2 * time.Hour, 58 * time.Minute, time.Hour + time.Second, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlooded(t, opaque.IntrospectorOptions{StaleIfBusy: tc.staleIfBusy}, true)
			ctx := context.Background()
			f.clk.Advance(tc.served)
			if c, err := f.in.CheckOpaque(ctx, f.user); err != nil || c.Subject != "auth0|real-user" {
				t.Errorf("%v after the answer: %v %v, want the user's claims", tc.served, c, err)
			}
			f.clk.Advance(tc.refused - tc.served)
			if _, err := f.in.CheckOpaque(ctx, f.user); !errors.Is(err, middleware.ErrIssuerBusy) {
				t.Errorf("%v after the answer: %v, want issuer_busy", tc.refused, err)
			}
			if s := f.in.Stats(); s.Stale != tc.stale {
				t.Errorf("Stats.Stale %d, want %d", s.Stale, tc.stale)
			}
		})
	}
}

// TestRefusalNeverServedStale: once the issuer says a token is no longer
// active, the active answer it replaced is never used again, even while every
// slot is taken and that answer would still be within StaleIfBusy.
func TestRefusalNeverServedStale(t *testing.T) {
	f := newFlooded(t, opaque.IntrospectorOptions{}, false)
	ctx := context.Background()
	f.clk.Advance(opaque.DefaultCacheTTL)
	f.iss.revoked.Store(true)
	if _, err := f.in.CheckOpaque(ctx, f.user); !errors.Is(err, middleware.ErrInactive) {
		t.Fatalf("revoked at the issuer, after the TTL: %v, want inactive", err)
	}
	f.flood(t)
	if _, err := f.in.CheckOpaque(ctx, f.user); !errors.Is(err, middleware.ErrInactive) {
		t.Errorf("within NegativeTTL, flood on: %v, want inactive (cached)", err)
	}
	f.clk.Advance(opaque.DefaultNegativeTTL)
	if c, err := f.in.CheckOpaque(ctx, f.user); !errors.Is(err, middleware.ErrIssuerBusy) {
		t.Errorf("past NegativeTTL, flood on: %v %v, want issuer_busy", c, err)
	}
	if s := f.in.Stats(); s.Stale != 0 {
		t.Errorf("Stats.Stale %d, want 0", s.Stale)
	}
}

// TestFailureNeverServedStale: an issuer that fails the re-check of a token
// past its CacheTTL gives issuer_unavailable: the old active answer is used
// only for want of a slot, never in place of a failure.
func TestFailureNeverServedStale(t *testing.T) {
	f := newFlooded(t, opaque.IntrospectorOptions{}, false)
	f.clk.Advance(opaque.DefaultCacheTTL)
	f.iss.failing.Store(true)
	if c, err := f.in.CheckOpaque(context.Background(), f.user); !errors.Is(err, middleware.ErrIssuerUnavailable) {
		t.Errorf("issuer failing, after the TTL: %v %v, want issuer_unavailable", c, err)
	}
	if s := f.in.Stats(); s.Stale != 0 {
		t.Errorf("Stats.Stale %d, want 0", s.Stale)
	}
}
