package middleware_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
)

// Many goroutines validate while the issuer rotates its key and flaps up
// and down. Every answer is a success or an unknown key (a token of a key
// the cache has not fetched yet, or of one already revoked); the keys are
// never lost; and the issuer sees a number of JWKS requests bounded by the
// rate limit, however many lookups miss.
func TestValidateWhileKeysRotateAndIssuerFlaps(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	const (
		minInterval     = 20 * time.Millisecond
		refreshInterval = 50 * time.Millisecond
		chaos           = 300 * time.Millisecond
		workers         = 8
	)
	start := time.Now()
	remote := remoteFor(t, iss, jwks.RemoteOptions{RefreshInterval: refreshInterval, MinRefreshInterval: minInterval})
	v := newValidator(t, []middleware.Issuer{{URL: iss.URL(), Keys: remote}}, middleware.ValidatorOptions{Algorithms: []string{"ES256"}})
	first := mintFor(t, iss, nil) // of the first key, which the first rotation revokes

	ctx, cancel := context.WithTimeout(context.Background(), chaos)
	defer cancel()
	var (
		wg                     sync.WaitGroup
		ok, unknown, rotations atomic.Int64
	)
	// The issuer misbehaves on a schedule: this paces the chaos, it
	// synchronises nothing.
	wg.Go(func() {
		tick := time.NewTicker(7 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				iss.SetDown(false)
				return
			case <-tick.C:
			}
			iss.SetDown(i%4 == 1 || i%4 == 2)
			if i%5 == 0 {
				if _, err := iss.Rotate("ES256"); err != nil {
					t.Errorf("Rotate: %v", err)
					return
				}
				rotations.Add(1)
			}
		}
	})
	for w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				token := first
				if w%4 != 0 {
					var err error
					if token, err = iss.Mint(iss.Claims(audience, nil)); err != nil {
						t.Errorf("Mint: %v", err)
						return
					}
				}
				_ = remote.Status()
				claims, err := v.Validate(context.Background(), token)
				switch {
				case err == nil && claims.Subject == "auth0|test-user":
					ok.Add(1)
				case errors.Is(err, middleware.ErrUnknownKey):
					unknown.Add(1)
				default:
					t.Errorf("Validate: %v, %+v; want success or unknown key", err, claims)
					return
				}
			}
		})
	}
	wg.Wait()
	remote.Close() // no fetch after this
	elapsed := time.Since(start)

	// Lookups of an unknown kid start a fetch at most once per
	// MinRefreshInterval after the previous attempt, and the background
	// loop waits at least MinRefreshInterval after each fetch; one more of
	// each may start at the edges, and one is the first load.
	perInterval := int64(elapsed/minInterval) + 1
	bound := 1 + perInterval + perInterval
	got := iss.JWKSRequests()
	t.Logf("%v: %d valid, %d unknown key, %d rotations, %d JWKS requests (bound %d)",
		elapsed, ok.Load(), unknown.Load(), rotations.Load(), got, bound)
	if got > bound {
		t.Errorf("%d JWKS requests in %v, want at most %d", got, elapsed, bound)
	}
	if ok.Load() == 0 || rotations.Load() < 2 {
		t.Errorf("the test exercised nothing: %d valid, %d rotations", ok.Load(), rotations.Load())
	}
	if got < 3 {
		t.Errorf("%d JWKS requests: the set was never refreshed during the chaos", got)
	}
	// The keys survived every outage: the current set is loaded.
	if s := remote.Status(); !s.Loaded || s.Keys == 0 {
		t.Errorf("Status() = %+v", s)
	}
}
