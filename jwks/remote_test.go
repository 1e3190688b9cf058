package jwks_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/syncbuf"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
)

// longInterval keeps the background refresh out of a test's way.
const longInterval = time.Hour

func TestRemoteLoads(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{})
	es, err := iss.AddKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	r, rec := newRemote(t, iss.JWKSURL(), jwks.RemoteOptions{RefreshInterval: longInterval})

	k := mustKey(t, r, iss.SigningKey().ID)
	if k.ID != iss.SigningKey().ID || k.Algorithm != "RS256" {
		t.Errorf("key = %q %q, want %q RS256", k.ID, k.Algorithm, iss.SigningKey().ID)
	}
	pub, ok := k.Public.(*rsa.PublicKey)
	if !ok || !pub.Equal(iss.SigningKey().Public()) {
		t.Errorf("public key is %T, not the issuer's", k.Public)
	}
	if k := mustKey(t, r, es.ID); k.Algorithm != "ES256" {
		t.Errorf("ES256 key has alg %q", k.Algorithm)
	}

	events := rec.wait(t, 1)
	if e := events[0]; e.Err != nil || e.Keys != 2 || e.URL != iss.JWKSURL() {
		t.Errorf("event = %+v, want success with 2 keys from %s", e, iss.JWKSURL())
	}
	s := r.Status()
	if !s.Loaded || s.Keys != 2 || s.URL != iss.JWKSURL() || s.LastError != "" || s.Failures != 0 ||
		s.LastRefresh.IsZero() || s.LastAttempt.IsZero() {
		t.Errorf("Status() = %+v", s)
	}
	if got := r.String(); got != "jwks.Remote("+iss.JWKSURL()+")" {
		t.Errorf("String() = %q", got)
	}
	if n := iss.JWKSRequests(); n != 1 {
		t.Errorf("%d JWKS requests, want 1", n)
	}
}

func TestNewRemoteRefusesURL(t *testing.T) {
	for _, u := range []string{
		"http://example.com/.well-known/jwks.json",
		"ftp://127.0.0.1/jwks.json",
		"/.well-known/jwks.json",
		"https://user:pass@example.com/jwks.json",
	} {
		if r, err := jwks.NewRemote(u, jwks.RemoteOptions{}); err == nil {
			r.Close()
			t.Errorf("NewRemote(%q) succeeded", u)
		}
		if r, err := jwks.NewDiscovered(u, jwks.RemoteOptions{}); err == nil {
			r.Close()
			t.Errorf("NewDiscovered(%q) succeeded", u)
		}
	}
}

func TestDiscovery(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	rec := newRecorder()
	r, err := jwks.NewDiscovered(iss.URL(), jwks.RemoteOptions{RefreshInterval: longInterval, OnRefresh: rec.record})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)

	mustKey(t, r, iss.SigningKey().ID)
	if s := r.Status(); s.URL != iss.JWKSURL() || !s.Loaded {
		t.Errorf("Status() = %+v, want the discovered URL %s", s, iss.JWKSURL())
	}
	if d, j := iss.DiscoveryRequests(), iss.JWKSRequests(); d != 1 || j != 1 {
		t.Errorf("%d discovery and %d JWKS requests, want 1 and 1", d, j)
	}
}

// discoveryServer serves a discovery document naming issuer and jwksURI.
func discoveryServer(t *testing.T, issuer, jwksURI func(self string) string) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, issuer(srv.URL+"/"), jwksURI(srv.URL+"/"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestDiscoveryRefused(t *testing.T) {
	keys := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	tests := []struct {
		name    string
		issuer  func(self string) string
		jwksURI func(self string) string
		wantErr string
	}{
		{
			name:    "issuer mismatch",
			issuer:  func(string) string { return "https://evil.example.com/" },
			jwksURI: func(string) string { return keys.JWKSURL() },
			wantErr: `names issuer "https://evil.example.com/"`,
		},
		{
			name:    "issuer without trailing slash",
			issuer:  func(self string) string { return strings.TrimSuffix(self, "/") },
			jwksURI: func(string) string { return keys.JWKSURL() },
			wantErr: "names issuer",
		},
		{
			name:    "jwks_uri plain http off loopback",
			issuer:  func(self string) string { return self },
			jwksURI: func(string) string { return "http://keys.example.com/jwks.json" },
			wantErr: "must use https",
		},
		{
			name:    "no jwks_uri",
			issuer:  func(self string) string { return self },
			jwksURI: func(string) string { return "" },
			wantErr: "has no jwks_uri",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := discoveryServer(t, tt.issuer, tt.jwksURI)
			before := keys.JWKSRequests()
			rec := newRecorder()
			r, err := jwks.NewDiscovered(srv.URL+"/", jwks.RemoteOptions{RefreshInterval: longInterval, OnRefresh: rec.record})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()

			e := rec.wait(t, 1)[0]
			if e.Err == nil || !strings.Contains(e.Err.Error(), tt.wantErr) {
				t.Errorf("refresh error = %v, want one containing %q", e.Err, tt.wantErr)
			}
			if e.URL != srv.URL+"/" {
				t.Errorf("event URL = %q, want the issuer while discovery fails", e.URL)
			}
			if _, err := r.Key(testContext(t), keys.SigningKey().ID); !errors.Is(err, jwks.ErrUnavailable) {
				t.Errorf("Key() error = %v, want ErrUnavailable", err)
			}
			s := r.Status()
			if s.Loaded || s.URL != "" || s.Failures == 0 || !strings.Contains(s.LastError, tt.wantErr) {
				t.Errorf("Status() = %+v", s)
			}
			if !strings.Contains(r.String(), "discovery of "+srv.URL) {
				t.Errorf("String() = %q", r.String())
			}
			if n := keys.JWKSRequests(); n != before {
				t.Errorf("the refused key set was fetched %d times", n-before)
			}
		})
	}
}

func TestRefreshOnInterval(t *testing.T) {
	t.Parallel()
	iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	_, rec := newRemote(t, iss.JWKSURL(), jwks.RemoteOptions{
		RefreshInterval:    20 * time.Millisecond,
		MinRefreshInterval: 10 * time.Millisecond,
	})
	start := time.Now()
	events := rec.wait(t, 4)
	// Three intervals passed between the first and fourth fetch; timers never
	// fire early.
	if elapsed := time.Since(start); elapsed < 3*20*time.Millisecond {
		t.Errorf("4 fetches in %v, want at least 60ms at a 20ms interval", elapsed)
	}
	for _, e := range events {
		if e.Err != nil {
			t.Errorf("refresh failed: %v", e.Err)
		}
	}
}

// The background refresh follows the issuer's Cache-Control max-age, within
// [MinRefreshInterval, RefreshInterval].
func TestRefreshFollowsMaxAge(t *testing.T) {
	t.Parallel() // waits on the wall clock: overlap it with the rest
	tests := []struct {
		name         string
		cacheControl string
		opts         jwks.RemoteOptions
		want         time.Duration // at least this long between the two fetches
	}{
		{"max-age shortens the interval", "public, max-age=1",
			jwks.RemoteOptions{RefreshInterval: longInterval, MinRefreshInterval: 10 * time.Millisecond}, time.Second},
		{"not below MinRefreshInterval", "max-age=1",
			jwks.RemoteOptions{RefreshInterval: longInterval, MinRefreshInterval: 1200 * time.Millisecond}, 1200 * time.Millisecond},
		{"not above RefreshInterval", "max-age=86400",
			jwks.RemoteOptions{RefreshInterval: 100 * time.Millisecond, MinRefreshInterval: 10 * time.Millisecond}, 100 * time.Millisecond},
		{"max-age=0 means the interval", "max-age=0",
			jwks.RemoteOptions{RefreshInterval: 100 * time.Millisecond, MinRefreshInterval: 10 * time.Millisecond}, 100 * time.Millisecond},
	}
	// The cases only wait: they run at once, outside t.Parallel's limit of
	// GOMAXPROCS tests, which is for tests that use the CPU.
	var cases sync.WaitGroup
	defer cases.Wait()
	for _, tt := range tests {
		cases.Go(func() {
			t.Run(tt.name, func(t *testing.T) {
				iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
				iss.SetCacheControl(tt.cacheControl)
				var times []time.Time
				var mu sync.Mutex
				rec := newRecorder()
				tt.opts.OnRefresh = func(e jwks.RefreshEvent) {
					mu.Lock()
					times = append(times, time.Now())
					mu.Unlock()
					rec.record(e)
				}
				r, err := jwks.NewRemote(iss.JWKSURL(), tt.opts)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				rec.wait(t, 2)
				mu.Lock()
				gap := times[1].Sub(times[0])
				mu.Unlock()
				if gap < tt.want {
					t.Errorf("second fetch %v after the first, want at least %v", gap, tt.want)
				}
			})
		})
	}
}

// A thousand concurrent lookups of a kid the cache does not have share one
// fetch: exactly one JWKS request beyond the first.
func TestUnknownKIDStampede(t *testing.T) {
	t.Parallel() // waits on the wall clock: overlap it with the rest
	iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	const minInterval = time.Second
	r, rec := newRemote(t, iss.JWKSURL(), jwks.RemoteOptions{RefreshInterval: longInterval, MinRefreshInterval: minInterval})
	mustKey(t, r, iss.SigningKey().ID)
	loaded := r.Status().LastAttempt

	fresh, err := iss.AddKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Key(testContext(t), fresh.ID); !errors.Is(err, jwks.ErrKeyNotFound) {
		t.Fatalf("unknown kid inside MinRefreshInterval: %v, want ErrKeyNotFound without a fetch", err)
	}
	if n := iss.JWKSRequests(); n != 1 {
		t.Fatalf("%d JWKS requests, want 1: an unknown kid inside MinRefreshInterval must not fetch", n)
	}

	// MinRefreshInterval is measured on the wall clock, which jwks.Remote
	// does not let a test replace: wait out the window (this orders nothing).
	<-time.After(time.Until(loaded.Add(minInterval)))
	// Hold the fetch so that every goroutine arrives while it is under way.
	iss.SetDelay(100 * time.Millisecond)

	const n = 1000
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		fails atomic.Int64
		ctx   = testContext(t)
	)
	for range n {
		wg.Go(func() {
			<-start
			if _, err := r.Key(ctx, fresh.ID); err != nil {
				fails.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if f := fails.Load(); f != 0 {
		t.Errorf("%d of %d lookups of the new kid failed", f, n)
	}
	if got := iss.JWKSRequests(); got != 2 {
		t.Errorf("%d JWKS requests, want exactly 2 (the first and one for the new kid)", got)
	}
	if got := rec.len(); got != 2 {
		t.Errorf("%d fetches, want 2", got)
	}
}

// Random kids, as fast as the lookups can go, fetch at most once per
// MinRefreshInterval.
func TestUnknownKIDFloodBounded(t *testing.T) {
	t.Parallel()
	iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	const minInterval = 50 * time.Millisecond
	start := time.Now()
	r, _ := newRemote(t, iss.JWKSURL(), jwks.RemoteOptions{RefreshInterval: longInterval, MinRefreshInterval: minInterval})
	mustKey(t, r, iss.SigningKey().ID)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var (
		wg      sync.WaitGroup
		lookups atomic.Int64
	)
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				kid := fmt.Sprintf("random-%d", rand.Int64())
				if _, err := r.Key(ctx, kid); !errors.Is(err, jwks.ErrKeyNotFound) {
					t.Errorf("Key(%q) = %v, want ErrKeyNotFound", kid, err)
					return
				}
				lookups.Add(1)
			}
		})
	}
	wg.Wait()
	r.Close()
	elapsed := time.Since(start)
	// One initial fetch, then at most one per MinRefreshInterval started
	// within the elapsed time.
	bound := 1 + int64(elapsed/minInterval) + 1
	got := iss.JWKSRequests()
	if got > bound {
		t.Errorf("%d JWKS requests for %d random kids in %v, want at most %d", got, lookups.Load(), elapsed, bound)
	}
	if got < 2 {
		t.Errorf("%d JWKS requests: unknown kids never refreshed the set", got)
	}
	t.Logf("%d lookups of random kids, %d JWKS requests in %v", lookups.Load(), got, elapsed)
}

// A refresh that fails in any way keeps the last good keys, and the set
// recovers when the issuer does.
func TestLastGoodKeysKept(t *testing.T) {
	stranger := newKey(t, "ES256")
	private := publicJWK(t, stranger)
	private["d"] = "AAAA"
	tests := []struct {
		name    string
		maxBody int64
		break_  func(iss *jwkstest.Issuer)
		wantErr string
	}{
		{name: "issuer down", break_: func(iss *jwkstest.Issuer) { iss.SetDown(true) }, wantErr: "status 503"},
		{name: "garbage", break_: func(iss *jwkstest.Issuer) { iss.SetGarbage(true) }, wantErr: "not a JSON Web Key Set"},
		{name: "empty set", break_: func(iss *jwkstest.Issuer) { iss.SetJWKSBody([]byte(`{"keys":[]}`)) }, wantErr: "no usable signature key"},
		{name: "no keys member", break_: func(iss *jwkstest.Issuer) { iss.SetJWKSBody([]byte(`{}`)) }, wantErr: `no "keys" array`},
		{name: "empty body", break_: func(iss *jwkstest.Issuer) { iss.SetJWKSBody([]byte{}) }, wantErr: "not a JSON Web Key Set"},
		{
			name:    "oversize body, chunked",
			maxBody: 4096,
			break_: func(iss *jwkstest.Issuer) {
				iss.SetJWKSBody([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", 64<<10) + `"}`))
			},
			wantErr: "exceeds the size limit",
		},
		{
			name:    "oversize body, with Content-Length",
			maxBody: 1000,
			break_: func(iss *jwkstest.Issuer) {
				iss.SetJWKSBody([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", 1200) + `"}`))
			},
			wantErr: "exceeds the size limit",
		},
		{
			name:    "private keys only",
			break_:  func(iss *jwkstest.Issuer) { iss.SetJWKSBody(jwksJSON(t, private)) },
			wantErr: "no usable signature key",
		},
		{
			name: "oct keys only",
			break_: func(iss *jwkstest.Issuer) {
				iss.SetJWKSBody([]byte(`{"keys":[{"kty":"oct","kid":"hmac","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQ"}]}`))
			},
			wantErr: "no usable signature key",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
			kid := iss.SigningKey().ID
			r, rec := newRemote(t, iss.JWKSURL(), jwks.RemoteOptions{
				RefreshInterval:    20 * time.Millisecond,
				MinRefreshInterval: 10 * time.Millisecond,
				MaxBodyBytes:       tt.maxBody,
			})
			mustKey(t, r, kid)

			tt.break_(iss)
			from := int(iss.JWKSRequests())
			n, e := rec.waitFor(t, from, func(e jwks.RefreshEvent) bool { return e.Err != nil })
			if !strings.Contains(e.Err.Error(), tt.wantErr) {
				t.Errorf("refresh error = %q, want it to contain %q", e.Err, tt.wantErr)
			}
			if strings.Contains(e.Err.Error(), "AAAA") || strings.Contains(e.Err.Error(), "c2VjcmV0") {
				t.Errorf("refresh error quotes key material: %q", e.Err)
			}
			if e.Keys != 1 {
				t.Errorf("event after failure reports %d keys kept, want 1", e.Keys)
			}
			if k, err := r.Key(testContext(t), kid); err != nil || k.ID != kid {
				t.Errorf("after a failed refresh Key(%q) = %v, %v; want the last good key", kid, k.ID, err)
			}
			s := r.Status()
			if !s.Loaded || s.Keys != 1 || s.Failures == 0 || !strings.Contains(s.LastError, tt.wantErr) {
				t.Errorf("Status() after failure = %+v", s)
			}

			// Recovery.
			iss.SetDown(false)
			iss.SetGarbage(false)
			iss.SetJWKSBody(nil)
			rec.waitFor(t, n+1, func(e jwks.RefreshEvent) bool { return e.Err == nil })
			if s := r.Status(); s.Failures != 0 || s.LastError != "" {
				t.Errorf("Status() after recovery = %+v", s)
			}
		})
	}
}

// A key the issuer no longer publishes stops verifying once the set is
// refreshed: a refresh replaces the whole set.
func TestRevokedKeyRemoved(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	old := iss.SigningKey()
	r, rec := newRemote(t, iss.JWKSURL(), jwks.RemoteOptions{
		RefreshInterval:    20 * time.Millisecond,
		MinRefreshInterval: 10 * time.Millisecond,
	})
	mustKey(t, r, old.ID)

	fresh, err := iss.AddKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	if err := iss.SetSigningKey(fresh.ID); err != nil {
		t.Fatal(err)
	}
	if err := iss.RemoveKey(old.ID); err != nil {
		t.Fatal(err)
	}
	// Every request from now on sees the new set; wait for the answer to
	// the next one.
	rec.wait(t, int(iss.JWKSRequests())+1)

	if _, err := r.Key(testContext(t), old.ID); !errors.Is(err, jwks.ErrKeyNotFound) {
		t.Errorf("removed key: Key() error = %v, want ErrKeyNotFound", err)
	}
	mustKey(t, r, fresh.ID)
	if s := r.Status(); s.Keys != 1 {
		t.Errorf("Status().Keys = %d, want 1", s.Keys)
	}
}

func TestNeverLoaded(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	iss.SetDown(true)
	r, rec := newRemote(t, iss.JWKSURL(), jwks.RemoteOptions{RefreshInterval: longInterval})
	rec.wait(t, 1)
	if _, err := r.Key(testContext(t), iss.SigningKey().ID); !errors.Is(err, jwks.ErrUnavailable) {
		t.Errorf("Key() = %v, want ErrUnavailable", err)
	}
	if _, err := r.Key(testContext(t), ""); !errors.Is(err, jwks.ErrUnavailable) {
		t.Errorf("Key(\"\") = %v, want ErrUnavailable", err)
	}
	if s := r.Status(); s.Loaded || s.Keys != 0 || s.Failures != 1 || !s.LastRefresh.IsZero() {
		t.Errorf("Status() = %+v", s)
	}
}

// A cached key is answered at once, even while a fetch hangs; an unknown kid
// waits for that fetch only as long as its context allows; Close ends the
// hung fetch.
func TestCachedKeyNeverWaits(t *testing.T) {
	t.Parallel()
	iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	const minInterval = 100 * time.Millisecond
	r, err := jwks.NewRemote(iss.JWKSURL(), jwks.RemoteOptions{RefreshInterval: longInterval, MinRefreshInterval: minInterval})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	kid := iss.SigningKey().ID
	mustKey(t, r, kid)
	loaded := r.Status().LastAttempt

	iss.SetDelay(time.Hour)
	<-time.After(time.Until(loaded.Add(minInterval))) // wall-clock rate limit; see TestUnknownKIDStampede
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Key(ctx, "not-there"); !errors.Is(err, jwks.ErrKeyNotFound) {
		t.Errorf("unknown kid with a hung fetch: %v, want ErrKeyNotFound once the context ends", err)
	}
	if err := iss.WaitJWKSRequests(testContext(t), 2); err != nil {
		t.Fatal(err)
	}

	// The fetch is hung now. A cached key must not wait for it.
	done := make(chan error, 1)
	go func() {
		_, err := r.Key(context.Background(), kid)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("cached key during a hung fetch: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("a cached key waited on the issuer")
	}

	closed := make(chan struct{})
	go func() {
		r.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(waitLimit):
		t.Fatal("Close hung on a fetch under way")
	}
	mustKey(t, r, kid) // lookups still answer after Close
}

// Close may race the background timer; it must neither panic nor hang.
// (It once dereferenced a nil fetch when the timer fired as Close ran.)
func TestCloseWhileRefreshing(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	for range 200 {
		rec := newRecorder()
		r, err := jwks.NewRemote(iss.JWKSURL(), jwks.RemoteOptions{
			RefreshInterval:    time.Microsecond,
			MinRefreshInterval: time.Microsecond,
			OnRefresh:          rec.record,
		})
		if err != nil {
			t.Fatal(err)
		}
		rec.wait(t, 3)
		r.Close()
		r.Close() // idempotent
	}
}

// Redirects are followed only to URLs CheckURL accepts.
func TestRedirectOffLoopbackRefused(t *testing.T) {
	srv := httptest.NewServer(http.RedirectHandler("http://keys.example.com/jwks.json", http.StatusFound))
	defer srv.Close()
	r, rec := newRemote(t, srv.URL+"/jwks.json", jwks.RemoteOptions{RefreshInterval: longInterval})
	e := rec.wait(t, 1)[0]
	if e.Err == nil || !strings.Contains(e.Err.Error(), "must use https") {
		t.Errorf("refresh error = %v, want the redirect refused", e.Err)
	}
	if r.Status().Loaded {
		t.Error("keys loaded through a refused redirect")
	}
}

func TestRedirectToLoopbackFollowed(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	srv := httptest.NewServer(http.RedirectHandler(iss.JWKSURL(), http.StatusFound))
	defer srv.Close()
	r, _ := newRemote(t, srv.URL+"/jwks.json", jwks.RemoteOptions{RefreshInterval: longInterval})
	mustKey(t, r, iss.SigningKey().ID)
}

func TestClientOption(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	var used atomic.Int64
	client := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		used.Add(1)
		return http.DefaultTransport.RoundTrip(req)
	})}
	r, _ := newRemote(t, iss.JWKSURL(), jwks.RemoteOptions{Client: client, RefreshInterval: longInterval})
	mustKey(t, r, iss.SigningKey().ID)
	if used.Load() == 0 {
		t.Error("RemoteOptions.Client was not used")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The logger hears about dropped keys and failed refreshes, by reason, never
// with key material.
func TestLogger(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{Algorithm: "ES256"})
	good := publicJWK(t, iss.SigningKey())
	leaked := publicJWK(t, newKey(t, "ES256"))
	leaked["d"] = "UFJJVkFURS1LRVktTUFURVJJQUw"
	iss.SetJWKSBody(jwksJSON(t, good, leaked))

	var logs syncbuf.Buffer
	r, rec := newRemote(t, iss.JWKSURL(), jwks.RemoteOptions{
		RefreshInterval:    20 * time.Millisecond,
		MinRefreshInterval: 10 * time.Millisecond,
		Logger:             slog.New(slog.NewTextHandler(&logs, nil)),
	})
	mustKey(t, r, iss.SigningKey().ID)
	if s := r.Status(); s.Keys != 1 {
		t.Errorf("%d keys loaded, want the public one only", s.Keys)
	}
	iss.SetDown(true)
	rec.waitFor(t, int(iss.JWKSRequests()), func(e jwks.RefreshEvent) bool { return e.Err != nil })
	r.Close() // no more writes to logs

	out := logs.String()
	for _, want := range []string{"jwks: key dropped", "private or symmetric key material", "refresh failed; keeping the last good keys", "status 503"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "UFJJVkFURS1LRVktTUFURVJJQUw") || strings.Contains(out, good["x"].(string)) {
		t.Errorf("log contains key material:\n%s", out)
	}
}
