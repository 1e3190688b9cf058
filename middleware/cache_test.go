package middleware_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
)

// cachedValidator returns a validator with a cache over iss's remote key set.
func cachedValidator(t testing.TB, iss *jwkstest.Issuer, opts middleware.ValidatorOptions) (*middleware.Validator, *jwks.Remote) {
	t.Helper()
	keys, err := jwks.NewRemote(iss.JWKSURL(), jwks.RemoteOptions{MinRefreshInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	if opts.CacheSize == 0 {
		opts.CacheSize = 1000
	}
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: iss.URL(), Keys: keys}}, []string{audience}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v, keys
}

// floodIssuer starts an EdDSA issuer for the tests that mint thousands of
// tokens to fill the cache: Ed25519 signs in microseconds, RSA-2048 in about
// a millisecond, and what these tests assert (bounds, entry sizes) does not
// depend on the signature, which entries never hold. The validator must
// accept EdDSA (floodAlgorithms).
func floodIssuer() *jwkstest.Issuer {
	return jwkstest.NewIssuerWithOptions(jwkstest.Options{Algorithm: "EdDSA"})
}

var floodAlgorithms = []string{"EdDSA"}

// auth0Extra are the claims of an Auth0-shaped access token of iss (see
// auth0Claims), over jwkstest's defaults.
func auth0Extra(iss *jwkstest.Issuer) map[string]any {
	return map[string]any{
		"sub":         "auth0|5f7c8ec7c33c6c004bbafe82",
		"aud":         []string{audience, iss.URL() + "userinfo"},
		"azp":         "pYwZ3hQe7rFqkXnC2LmV9sTd",
		"scope":       "openid profile read:contacts",
		"permissions": []string{"read:contacts", "write:contacts"},
	}
}

func TestCacheHitsOnlyTheSameToken(t *testing.T) {
	iss := jwkstest.NewIssuer()
	defer iss.Close()
	v, _ := cachedValidator(t, iss, middleware.ValidatorOptions{})
	ctx := context.Background()
	tok := mintFor(t, iss, nil)
	for range 3 {
		if _, err := v.Validate(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if s := v.CacheStats(); s.Hits != 2 || s.Misses != 1 || s.Entries != 1 {
		t.Fatalf("stats after 3 validations of one token = %+v, want 2 hits, 1 miss, 1 entry", s)
	}
	// Every one-byte change of the token, in every segment, must miss and be
	// verified again (and so fail), never answered from the cache.
	for i := 0; i < len(tok); i++ {
		if tok[i] == '.' {
			continue
		}
		b := []byte(tok)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		before := v.CacheStats().Hits
		if _, err := v.Validate(ctx, string(b)); err == nil {
			// Changing the last char of a segment may leave the decoded bytes
			// unchanged only if base64 were lax; it is strict, so any change fails.
			t.Fatalf("token changed at byte %d was accepted", i)
		}
		if v.CacheStats().Hits != before {
			t.Fatalf("token changed at byte %d was a cache hit", i)
		}
	}
}

func TestCacheRechecksExpiry(t *testing.T) {
	iss := jwkstest.NewIssuer()
	defer iss.Close()
	now := time.Now()
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	v, _ := cachedValidator(t, iss, middleware.ValidatorOptions{
		Leeway: -1,
		Now:    func() time.Time { return *clock.Load() },
	})
	tok := mintFor(t, iss, map[string]any{"exp": now.Add(time.Minute).Unix()})
	if _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	later := now.Add(2 * time.Minute)
	clock.Store(&later)
	_, err := v.Validate(context.Background(), tok)
	if !errors.Is(err, middleware.ErrExpired) {
		t.Fatalf("cached token after exp: err = %v, want expired", err)
	}
	if s := v.CacheStats(); s.Entries != 0 {
		t.Fatalf("expired entry still cached: %+v", s)
	}
}

func TestCacheDropsTokensOfRemovedKey(t *testing.T) {
	iss := jwkstest.NewIssuer()
	defer iss.Close()
	v, keys := cachedValidator(t, iss, middleware.ValidatorOptions{})
	ctx := context.Background()
	old := mintFor(t, iss, nil)
	if _, err := v.Validate(ctx, old); err != nil {
		t.Fatal(err)
	}
	newKey, err := iss.Rotate("RS256") // publishes a new key, removes the old one
	if err != nil {
		t.Fatal(err)
	}
	// A token signed with the new key makes the set refresh (unknown kid).
	fresh := mintFor(t, iss, nil)
	if _, err := v.Validate(ctx, fresh); err != nil {
		t.Fatalf("token of the new key %s: %v", newKey.ID, err)
	}
	if s := keys.Status(); s.Keys != 1 {
		t.Fatalf("key set after rotation has %d keys, want 1", s.Keys)
	}
	hits := v.CacheStats().Hits
	if _, err := v.Validate(ctx, old); !errors.Is(err, middleware.ErrUnknownKey) {
		t.Fatalf("cached token of a removed key: err = %v, want unknown_key", err)
	}
	if v.CacheStats().Hits != hits {
		t.Fatal("cached token of a removed key was a hit")
	}
}

func TestCacheConsultsRevocationOnHits(t *testing.T) {
	iss := jwkstest.NewIssuer()
	defer iss.Close()
	var denied sync.Map
	v, _ := cachedValidator(t, iss, middleware.ValidatorOptions{
		Revoked: func(c *middleware.Claims) bool { _, ok := denied.Load(c.ID); return ok },
	})
	tok := mintFor(t, iss, map[string]any{"jti": "token-1"})
	ctx := context.Background()
	if _, err := v.Validate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	denied.Store("token-1", true)
	if _, err := v.Validate(ctx, tok); !errors.Is(err, middleware.ErrRevoked) {
		t.Fatalf("revoked cached token: err = %v, want revoked", err)
	}
}

func TestCacheBoundHoldsUnderFlood(t *testing.T) {
	iss := floodIssuer()
	defer iss.Close()
	const size = 128
	v, _ := cachedValidator(t, iss, middleware.ValidatorOptions{Algorithms: floodAlgorithms, CacheSize: size})
	ctx := context.Background()
	tokens := make([]string, 10*size)
	for i := range tokens {
		tokens[i] = mintFor(t, iss, map[string]any{"jti": fmt.Sprint(i)})
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(tokens); i += 4 {
				if _, err := v.Validate(ctx, tokens[i]); err != nil {
					t.Error(err)
					return
				}
				// Hits on a few hot tokens while others are evicted.
				if _, err := v.Validate(ctx, tokens[w]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := v.CacheStats()
	if s.Entries > size {
		t.Fatalf("cache holds %d entries, bound %d", s.Entries, size)
	}
	if s.Evictions == 0 || s.Hits == 0 {
		t.Fatalf("stats %+v: want evictions and hits", s)
	}
}

func TestCacheByteBound(t *testing.T) {
	iss := floodIssuer()
	defer iss.Close()
	const maxBytes = 1 << 20 // 16 KiB a shard: two of these entries overflow one
	v, _ := cachedValidator(t, iss, middleware.ValidatorOptions{Algorithms: floodAlgorithms, CacheSize: 1 << 20, CacheMaxBytes: maxBytes})
	for i := range 500 {
		// An entry holds the token's own strings, not its claims JSON:
		// a subject of 8,000 bytes makes it large.
		tok := mintFor(t, iss, map[string]any{"jti": fmt.Sprint(i), "sub": fmt.Sprintf("%08000d", i)})
		if _, err := v.Validate(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	s := v.CacheStats()
	if s.Bytes > maxBytes {
		t.Fatalf("cache estimates %d bytes, bound %d", s.Bytes, maxBytes)
	}
	if s.Entries == 0 || s.Evictions == 0 {
		t.Fatalf("stats %+v: want entries kept and evictions", s)
	}
}

func TestCacheReturnsCopies(t *testing.T) {
	iss := jwkstest.NewIssuer()
	defer iss.Close()
	v, _ := cachedValidator(t, iss, middleware.ValidatorOptions{})
	tok := mintFor(t, iss, nil)
	c1, err := v.Validate(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	c1.Subject = "mallory"
	// Entries of a key share their audiences: a hit's list is its own.
	c1.Audience[0] = "https://other.example.com"
	c2, err := v.Validate(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Subject == "mallory" || c2.Audience[0] != audience {
		t.Fatal("a caller's change to its claims reached the cache")
	}
	c2.Audience[0] = "https://other.example.com"
	// Another token of the same key and shape, verified then a hit.
	other := mintFor(t, iss, map[string]any{"sub": "other"})
	for range 2 {
		if c, err := v.Validate(context.Background(), other); err != nil || c.Audience[0] != audience {
			t.Fatalf("a caller's change to a hit's audiences reached another token's: %v %v", c, err)
		}
	}
}

func BenchmarkValidateCached(b *testing.B) {
	iss := jwkstest.NewIssuer()
	defer iss.Close()
	v, _ := cachedValidator(b, iss, middleware.ValidatorOptions{CacheSize: 1000})
	tok := mintFor(b, iss, auth0Extra(iss))
	ctx := context.Background()
	if _, err := v.Validate(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Validate(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCacheEntryBytes keeps entryOverhead honest: the cache's estimate of
// its memory, which its byte bound relies on, must be within 20% of the heap
// an entry really costs. Auth0-shaped tokens, as in BenchmarkValidateCached:
// with the same scopes, which entries share, and with scopes of their own.
// They are signed with EdDSA (see floodIssuer), not Auth0's RS256: an entry
// holds the claims and a reference to the key shared by all entries of that
// key, never the token or its signature (8,000 RS256 tokens made this test
// take 6 to 40 s).
func TestCacheEntryBytes(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes the heap")
	}
	for _, tc := range []struct {
		name   string
		scopes func(i int) []string // permissions of token i
	}{
		{"shared scopes", func(int) []string { return []string{"read:contacts", "write:contacts"} }},
		{"own scopes", func(i int) []string { return []string{"read:contacts", "write:contacts", fmt.Sprintf("contact:%d", i)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss := floodIssuer()
			defer iss.Close()
			v, _ := cachedValidator(t, iss, middleware.ValidatorOptions{
				Algorithms: floodAlgorithms, CacheSize: 1 << 20, CacheMaxBytes: 1 << 30,
			})
			const n = 4000
			toks := make([]string, n)
			for i := range toks {
				extra := auth0Extra(iss)
				extra["jti"] = fmt.Sprint(i)
				extra["permissions"] = tc.scopes(i)
				toks[i] = mintFor(t, iss, extra)
			}
			ctx := context.Background()
			if _, err := v.Validate(ctx, mintFor(t, iss, nil)); err != nil { // the key set is fetched
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for _, tok := range toks {
				if _, err := v.Validate(ctx, tok); err != nil {
					t.Fatal(err)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			s := v.CacheStats()
			if s.Entries != n+1 {
				t.Fatalf("%d entries, want %d", s.Entries, n+1)
			}
			measured := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
			estimated := float64(s.Bytes) / float64(s.Entries)
			t.Logf("%d-byte tokens: heap growth %.0f bytes per entry, estimated %.0f", len(toks[0]), measured, estimated)
			if estimated < 0.8*measured || estimated > 1.2*measured {
				t.Errorf("estimate %.0f bytes per entry is not within 20%% of the measured %.0f: fix entryOverhead", estimated, measured)
			}
			// 100,000 cached tokens in 64 MiB of RSS (issue 15) needs
			// entries of this size: about 235 bytes measured.
			const most = 300
			if tc.name == "shared scopes" && measured > most {
				t.Errorf("an Auth0-shaped entry takes %.0f bytes of heap, more than %d", measured, most)
			}
			runtime.KeepAlive(toks)
		})
	}
}

// Entries share scope sets: a token must still get exactly its own scopes,
// however close another token's are (a scope with a space, a prefix, the
// same scopes split differently), and past the number of sets shared.
func TestCacheSharedScopesAreExact(t *testing.T) {
	iss := jwkstest.NewIssuer()
	defer iss.Close()
	v, _ := cachedValidator(t, iss, middleware.ValidatorOptions{})
	long := make([]string, 40)
	for i := range long {
		long[i] = fmt.Sprintf("long:scope:%02d", i) // over the size of a shared set
	}
	type shape struct {
		extra map[string]any
		want  []string
	}
	shapes := []shape{
		{map[string]any{"scope": "a b"}, []string{"a", "b"}},
		{map[string]any{"scope": nil, "permissions": []string{"a b"}}, []string{"a b"}},
		{map[string]any{"scope": "b", "permissions": []string{"a"}}, []string{"a", "b"}},
		{map[string]any{"scope": "ab"}, []string{"ab"}},
		{map[string]any{"scope": "a"}, []string{"a"}},
		{map[string]any{"scope": nil, "permissions": []string{"a\x01b"}}, []string{"a\x01b"}},
		{map[string]any{"scope": nil, "permissions": []string{"\x01a\x01b"}}, []string{"\x01a\x01b"}},
		{map[string]any{"scope": nil, "permissions": []string{"\x01ab"}}, []string{"\x01ab"}},
		{map[string]any{"scope": "", "permissions": long}, long},
		{map[string]any{"scope": nil}, nil},
	}
	for i := range 80 { // more distinct sets than a key shares
		shapes = append(shapes, shape{map[string]any{"scope": fmt.Sprintf("s:%d read", i)}, []string{"read", fmt.Sprintf("s:%d", i)}})
	}
	ctx := context.Background()
	toks := make([]string, 2*len(shapes)) // two tokens of each shape
	for i := range toks {
		extra := map[string]any{"jti": fmt.Sprint(i)}
		for k, val := range shapes[i/2].extra {
			extra[k] = val
		}
		toks[i] = mintFor(t, iss, extra)
	}
	check := func(round string) {
		t.Helper()
		for i, tok := range toks {
			c, err := v.Validate(ctx, tok)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := c.Scopes.List(), shapes[i/2].want; !slices.Equal(got, want) && len(got)+len(want) > 0 {
				t.Errorf("%s: token %d: scopes %q, want %q", round, i, got, want)
			}
		}
	}
	check("verified")
	hits := v.CacheStats().Hits
	check("cached")
	if s := v.CacheStats(); s.Hits != hits+uint64(len(toks)) {
		t.Fatalf("stats %+v: the second round was not all hits", s)
	}
}

// A hit allocates only the returned Claims (with room for two audiences):
// its scopes are the entry's.
func TestValidateCachedAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	iss := jwkstest.NewIssuer()
	defer iss.Close()
	v, _ := cachedValidator(t, iss, middleware.ValidatorOptions{})
	tok := mintFor(t, iss, map[string]any{
		"aud":         []string{audience, iss.URL() + "userinfo"},
		"scope":       "openid profile read:contacts",
		"permissions": []string{"read:contacts", "write:contacts"},
	})
	ctx := context.Background()
	if _, err := v.Validate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	const budget = 1
	if n := testing.AllocsPerRun(100, func() { v.Validate(ctx, tok) }); n > budget {
		t.Errorf("a cache hit allocates %v times, budget %d", n, budget)
	}
	if s := v.CacheStats(); s.Hits < 100 {
		t.Fatalf("stats %+v: the runs were not hits", s)
	}
}

// BenchmarkTokenSHA256 is the floor of a cache hit: hashing the token of
// BenchmarkValidateCached, which every hit must do.
func BenchmarkTokenSHA256(b *testing.B) {
	iss := jwkstest.NewIssuer()
	defer iss.Close()
	tok := mintFor(b, iss, auth0Extra(iss))
	in := []byte(tok)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		sinkSum = sha256.Sum256(in)
	}
}

var sinkSum [sha256.Size]byte

// A hit rebuilds the claims from the cache's compact entry: they must be
// exactly those the verification returned, whatever the claims' shape.
func TestCacheHitEqualsVerification(t *testing.T) {
	iss := jwkstest.NewIssuer()
	defer iss.Close()
	v, _ := cachedValidator(t, iss, middleware.ValidatorOptions{})
	now := time.Now()
	many := make([]string, 40)
	for i := range many {
		many[i] = fmt.Sprintf("scope:%02d", 39-i)
	}
	for name, extra := range map[string]map[string]any{
		"auth0": {"aud": []string{audience, iss.URL() + "userinfo"}, "azp": "client", "scope": "openid profile read:contacts",
			"permissions": []string{"read:contacts", "write:contacts"}, "jti": "j1"},
		"aud string, client_id":  {"aud": audience, "client_id": "c", "azp": "other", "scp": []string{"b", "a", "a"}},
		"three audiences":        {"aud": []string{"x", audience, "y"}, "scope": "  a  b "},
		"fractional times":       {"exp": float64(now.Add(time.Hour).Unix()) + 0.25, "nbf": float64(now.Unix()-10) + 0.5, "iat": float64(now.Unix()-20) + 0.75},
		"no iat":                 {"iat": nil},
		"escapes":                {"sub": "a\"b\\c\u00e9", "jti": "\u2603", "scope": "caf\u00e9 read\tall", "aud": []string{audience, "\u00e9"}},
		"many scopes":            {"permissions": many},
		"scope with a space":     {"permissions": []string{"a b", "c"}},
		"no scopes":              {"scope": nil},
		"custom claims":          {"https://example.com/roles": []string{"admin"}, "n": 1},
		"empty strings":          {"sub": "", "jti": "", "scope": ""},
		"aud with empty element": {"aud": []string{"", audience}},
	} {
		t.Run(name, func(t *testing.T) {
			tok := mintFor(t, iss, extra)
			hits := v.CacheStats().Hits
			cold, err := v.Validate(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			hit, err := v.Validate(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if v.CacheStats().Hits != hits+1 {
				t.Fatal("the second validation was not a hit")
			}
			if !sameExportedClaims(cold, hit) {
				t.Fatalf("hit differs from verification:\ncold %+v\nhit  %+v", cold, hit)
			}
			var a, b map[string]any
			if cold.Decode(&a) != nil || hit.Decode(&b) != nil || !reflect.DeepEqual(a, b) || string(cold.JSON()) != string(hit.JSON()) {
				t.Fatal("the claims JSON differs")
			}
		})
	}
}

// switchableKeys publishes one key whose metadata a test can change.
type switchableKeys struct {
	mu  sync.Mutex // guards key
	key jwks.Key
}

func (s *switchableKeys) Key(context.Context, string) (jwks.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key, nil
}

func TestCacheRechecksKeyAlgorithm(t *testing.T) {
	iss := jwkstest.NewIssuer()
	defer iss.Close()
	signer := iss.SigningKey()
	keys := &switchableKeys{key: jwks.Key{ID: signer.ID, Algorithm: "RS256", Public: signer.Public()}}
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: iss.URL(), Keys: keys}}, []string{audience},
		middleware.ValidatorOptions{CacheSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	tok := mintFor(t, iss, nil)
	if _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	// The issuer now publishes the same key material for PS256 only: an
	// RS256 token must not be answered from the cache.
	keys.mu.Lock()
	keys.key.Algorithm = "PS256"
	keys.mu.Unlock()
	if _, err := v.Validate(context.Background(), tok); !errors.Is(err, middleware.ErrAlgorithm) {
		t.Fatalf("cached token after its key's alg changed: err = %v, want algorithm", err)
	}
}

// sameExportedClaims compares every exported field of two Claims: a hit
// carries its claims JSON otherwise than a verification (compared through
// JSON and Decode).
func sameExportedClaims(a, b *middleware.Claims) bool {
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	for i := range va.NumField() {
		if va.Type().Field(i).IsExported() && !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			return false
		}
	}
	return true
}
