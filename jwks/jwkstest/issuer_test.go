package jwkstest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks/jwkstest"
)

// newIssuer starts an issuer for tests where the algorithm does not matter:
// ES256, because RSA key generation is slow.
func newIssuer(t *testing.T) *jwkstest.Issuer {
	t.Helper()
	iss := jwkstest.NewIssuerWithOptions(jwkstest.Options{Algorithm: "ES256"})
	t.Cleanup(iss.Close)
	return iss
}

// guard is how long a test waits for something that should happen at once
// before it declares a hang. It bounds failures; it never paces the test.
const guard = 10 * time.Second

type result struct {
	status int
	err    error
}

// goGet sends a GET in a goroutine and delivers its outcome.
func goGet(ctx context.Context, url string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			ch <- result{err: err}
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- result{err: err}
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ch <- result{status: resp.StatusCode}
	}()
	return ch
}

func await[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("%s: still waiting after %v", what, guard)
		panic("unreachable")
	}
}

func TestURLs(t *testing.T) {
	iss := newIssuer(t)
	u := iss.URL()
	if !strings.HasPrefix(u, "http://127.0.0.1:") || !strings.HasSuffix(u, "/") {
		t.Errorf("URL() = %q, want http://127.0.0.1:PORT/", u)
	}
	if got, want := iss.JWKSURL(), u+".well-known/jwks.json"; got != want {
		t.Errorf("JWKSURL() = %q, want %q", got, want)
	}
	if got, want := iss.DiscoveryURL(), u+".well-known/openid-configuration"; got != want {
		t.Errorf("DiscoveryURL() = %q, want %q", got, want)
	}
	if other := newIssuer(t); other.URL() == u {
		t.Error("two issuers share a URL")
	}
}

func TestDiscovery(t *testing.T) {
	iss := newIssuer(t)
	discover := func() map[string]any {
		t.Helper()
		status, header, body := get(t, iss.DiscoveryURL())
		if status != http.StatusOK || header.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d, Content-Type %q", status, header.Get("Content-Type"))
		}
		var d map[string]any
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := discover()
	for member, want := range map[string]string{
		"issuer":                 iss.URL(), // exactly: verifiers compare it to the configured issuer
		"jwks_uri":               iss.JWKSURL(),
		"userinfo_endpoint":      iss.URL() + "userinfo",
		"authorization_endpoint": iss.URL() + "authorize",
		"token_endpoint":         iss.URL() + "oauth/token",
	} {
		if d[member] != want {
			t.Errorf("%s = %v, want %q", member, d[member], want)
		}
	}
	algs := func(d map[string]any) string { return fmt.Sprint(d["id_token_signing_alg_values_supported"]) }
	if got := algs(d); got != "[ES256]" {
		t.Errorf("algs = %s, want [ES256]", got)
	}
	if _, err := iss.AddKey("EdDSA"); err != nil {
		t.Fatal(err)
	}
	if _, err := iss.AddKey("ES256"); err != nil {
		t.Fatal(err)
	}
	if got := algs(discover()); got != "[ES256 EdDSA]" {
		t.Errorf("algs after AddKey = %s, want [ES256 EdDSA]", got)
	}
}

func TestOptions(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	iss := jwkstest.NewIssuerWithOptions(jwkstest.Options{
		Algorithm: "EdDSA",
		KeyID:     "demo-key",
		Addr:      "localhost:0",
		Now:       func() time.Time { return now },
	})
	defer iss.Close()
	if k := iss.SigningKey(); k.ID != "demo-key" || k.Algorithm != "EdDSA" {
		t.Errorf("signing key %q %q, want demo-key EdDSA", k.ID, k.Algorithm)
	}
	if kids, _ := fetchJWKS(t, iss.JWKSURL()); !slices.Equal(kids, []string{"demo-key"}) {
		t.Errorf("JWKS kids %q", kids)
	}
	if c := iss.Claims("a", nil); c["iat"] != now.Unix() || c["exp"] != now.Add(time.Hour).Unix() {
		t.Errorf("claims %v: iat, exp not from Options.Now", c)
	}
}

func TestInvalidOptions(t *testing.T) {
	tests := []struct {
		name string
		o    jwkstest.Options
		want []string // in the error
	}{
		{"unknown alg", jwkstest.Options{Algorithm: "HS256"}, []string{`"HS256"`}},
		{"none", jwkstest.Options{Algorithm: "none"}, []string{`"none"`}},
		{"not loopback", jwkstest.Options{Addr: "0.0.0.0:0"}, []string{"loopback"}},
		{"host name", jwkstest.Options{Addr: "example.com:80"}, []string{"loopback"}},
		{"no port", jwkstest.Options{Addr: "127.0.0.1"}, []string{"127.0.0.1"}},
		{"all at once", jwkstest.Options{Algorithm: "HS256", Addr: "0.0.0.0:0"}, []string{`"HS256"`, "loopback"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, err := jwkstest.Start(tt.o)
			if err == nil {
				iss.Close()
				t.Fatal("Start: no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
			defer func() {
				if recover() == nil {
					t.Error("NewIssuerWithOptions did not panic")
				}
			}()
			jwkstest.NewIssuerWithOptions(tt.o).Close()
		})
	}
}

func TestClaims(t *testing.T) {
	iss := newIssuer(t)
	before := time.Now().Unix()
	base := iss.Claims("https://api.example.com", nil)
	after := time.Now().Unix()
	iat, _ := base["iat"].(int64)
	exp, _ := base["exp"].(int64)
	if iat < before || iat > after || exp != iat+3600 {
		t.Errorf("iat %v, exp %v: want now and now+1h", base["iat"], base["exp"])
	}
	tests := []struct {
		name  string
		extra map[string]any
		want  map[string]any
	}{
		{"defaults", nil, map[string]any{"iss": iss.URL(), "sub": "auth0|test-user", "aud": "https://api.example.com"}},
		{"added", map[string]any{"scope": "read:a"}, map[string]any{"iss": iss.URL(), "sub": "auth0|test-user", "aud": "https://api.example.com", "scope": "read:a"}},
		{"overridden", map[string]any{"sub": "other", "iss": "https://elsewhere/"}, map[string]any{"iss": "https://elsewhere/", "sub": "other", "aud": "https://api.example.com"}},
		{"deleted", map[string]any{"sub": nil, "aud": nil}, map[string]any{"iss": iss.URL()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := iss.Claims("https://api.example.com", tt.extra)
			delete(got, "iat")
			delete(got, "exp")
			if !maps.Equal(got, tt.want) {
				t.Errorf("Claims = %v, want %v", got, tt.want)
			}
		})
	}
	if c := iss.Claims("a", map[string]any{"exp": nil, "iat": int64(7)}); c["iat"] != int64(7) || c["exp"] != nil {
		t.Errorf("Claims = %v: iat not overridden or exp not deleted", c)
	}
}

func TestMintWithHeader(t *testing.T) {
	iss := newIssuer(t)
	kid := iss.SigningKey().ID
	tests := []struct {
		name   string
		header map[string]any
		want   map[string]any
	}{
		{"nil", nil, map[string]any{"alg": "ES256", "typ": "JWT", "kid": kid}},
		{"at+jwt", map[string]any{"typ": "at+jwt"}, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": kid}},
		{"foreign kid", map[string]any{"kid": "not-published"}, map[string]any{"alg": "ES256", "typ": "JWT", "kid": "not-published"}},
		{"jku", map[string]any{"jku": "http://evil.example/"}, map[string]any{"alg": "ES256", "typ": "JWT", "kid": kid, "jku": "http://evil.example/"}},
		{"no typ", map[string]any{"typ": nil}, map[string]any{"alg": "ES256", "kid": kid}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, err := iss.MintWithHeader(tt.header, iss.Claims("a", nil))
			if err != nil {
				t.Fatal(err)
			}
			header, _, err := verify(token, iss.SigningKey().Public(), "ES256")
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(header, tt.want) {
				t.Errorf("header = %v, want %v", header, tt.want)
			}
		})
	}
}

func TestKeyManagement(t *testing.T) {
	iss := newIssuer(t)
	kids := func() []string {
		t.Helper()
		k, _ := fetchJWKS(t, iss.JWKSURL())
		return k
	}
	mintedKID := func() string {
		t.Helper()
		token, err := iss.Mint(iss.Claims("a", nil))
		if err != nil {
			t.Fatal(err)
		}
		return decodeHeader(t, token)["kid"].(string)
	}
	first := iss.SigningKey()

	second, err := iss.AddKey("EdDSA")
	if err != nil {
		t.Fatal(err)
	}
	if got := kids(); !slices.Equal(got, []string{first.ID, second.ID}) {
		t.Errorf("after AddKey: kids %q", got)
	}
	if got := mintedKID(); got != first.ID {
		t.Errorf("AddKey changed the signing key to %q", got)
	}
	if got := iss.Keys(); len(got) != 2 || got[0] != first || got[1] != second {
		t.Errorf("Keys() = %v", got)
	}

	if err := iss.SetSigningKey("unknown"); err == nil {
		t.Error("SetSigningKey(unknown): no error")
	}
	if err := iss.SetSigningKey(second.ID); err != nil {
		t.Fatal(err)
	}
	if got := mintedKID(); got != second.ID {
		t.Errorf("after SetSigningKey: minted with %q, want %q", got, second.ID)
	}
	if iss.SigningKey() != second {
		t.Error("SigningKey() is not the key set")
	}

	if err := iss.RemoveKey(second.ID); err == nil {
		t.Error("RemoveKey(signing key): no error")
	}
	if err := iss.RemoveKey("unknown"); err == nil {
		t.Error("RemoveKey(unknown): no error")
	}
	if err := iss.RemoveKey(first.ID); err != nil {
		t.Fatal(err)
	}
	if got := kids(); !slices.Equal(got, []string{second.ID}) {
		t.Errorf("after RemoveKey: kids %q", got)
	}
	if err := iss.SetSigningKey(first.ID); err == nil {
		t.Error("SetSigningKey(removed key): no error")
	}

	if err := iss.PublishKey(second); err == nil {
		t.Error("PublishKey(published key): no error")
	}
	if err := iss.PublishKey(first); err != nil {
		t.Fatal(err)
	}
	if got := kids(); !slices.Equal(got, []string{second.ID, first.ID}) {
		t.Errorf("after PublishKey: kids %q", got)
	}

	if _, err := iss.Rotate("HS256"); err == nil {
		t.Error("Rotate(HS256): no error")
	}
	rotated, err := iss.Rotate("ES384")
	if err != nil {
		t.Fatal(err)
	}
	if got := kids(); !slices.Equal(got, []string{rotated.ID}) {
		t.Errorf("after Rotate: kids %q, want only %q", got, rotated.ID)
	}
	if got := mintedKID(); got != rotated.ID || iss.SigningKey() != rotated {
		t.Errorf("after Rotate: minted with %q, want %q", got, rotated.ID)
	}
	if _, err := iss.AddKey("nope"); err == nil {
		t.Error("AddKey(nope): no error")
	}
}

// TestSharedKey pins that one key may be published by two issuers, which
// tests of issuer-bound keys need.
func TestSharedKey(t *testing.T) {
	key, err := jwkstest.NewKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	a, b := newIssuer(t), newIssuer(t)
	for _, iss := range []*jwkstest.Issuer{a, b} {
		if err := iss.PublishKey(key); err != nil {
			t.Fatal(err)
		}
		if err := iss.SetSigningKey(key.ID); err != nil {
			t.Fatal(err)
		}
	}
	ta, _ := a.Mint(a.Claims("x", nil))
	tb, _ := b.Mint(b.Claims("x", nil))
	ha, ca, err1 := verify(ta, key.Public(), "ES256")
	hb, cb, err2 := verify(tb, key.Public(), "ES256")
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if ha["kid"] != hb["kid"] || ca["iss"] == cb["iss"] {
		t.Errorf("kids %v, %v; iss %v, %v: want same kid, different iss", ha["kid"], hb["kid"], ca["iss"], cb["iss"])
	}
}

func TestSetDown(t *testing.T) {
	iss := newIssuer(t)
	for _, url := range []string{iss.DiscoveryURL(), iss.JWKSURL()} {
		iss.SetDown(true)
		if status, _, _ := get(t, url); status != http.StatusServiceUnavailable {
			t.Errorf("down: GET %s: %d, want 503", url, status)
		}
		iss.SetDown(false)
		if status, _, _ := get(t, url); status != http.StatusOK {
			t.Errorf("up again: GET %s: %d, want 200", url, status)
		}
	}
}

func TestJWKSAnswers(t *testing.T) {
	iss := newIssuer(t)
	keysBody := func(body []byte) error {
		var set struct {
			Keys []rawJWK `json:"keys"`
		}
		if err := json.Unmarshal(body, &set); err != nil {
			return err
		}
		if len(set.Keys) != 1 || set.Keys[0].str("kid") != iss.SigningKey().ID {
			return fmt.Errorf("keys %v", set.Keys)
		}
		return nil
	}
	exactly := func(want string) func([]byte) error {
		return func(body []byte) error {
			if string(body) != want {
				return fmt.Errorf("body %q, want %q", body, want)
			}
			return nil
		}
	}
	tests := []struct {
		name         string
		setup        func()
		status       int
		contentType  string
		cacheControl string
		check        func([]byte) error
	}{
		{"keys", func() {}, 200, "application/json", "", keysBody},
		{"cache control", func() { iss.SetCacheControl("public, max-age=600") }, 200, "application/json", "public, max-age=600", keysBody},
		{"garbage", func() { iss.SetGarbage(true) }, 200, "text/html; charset=utf-8", "", func(body []byte) error {
			if keysBody(body) == nil || len(body) == 0 {
				return errors.New("garbage is a JWKS")
			}
			return nil
		}},
		{"empty set", func() { iss.SetJWKSBody([]byte(`{"keys":[]}`)) }, 200, "application/json", "", exactly(`{"keys":[]}`)},
		{"empty body", func() { iss.SetJWKSBody([]byte{}) }, 200, "application/json", "", exactly("")},
		{"body copied", func() {
			b := []byte(`{"keys":[]}`)
			iss.SetJWKSBody(b)
			copy(b, "XXXXX")
		}, 200, "application/json", "", exactly(`{"keys":[]}`)},
		{"body restored", func() { iss.SetJWKSBody([]byte("x")); iss.SetJWKSBody(nil) }, 200, "application/json", "", keysBody},
		{"garbage over body", func() { iss.SetJWKSBody([]byte(`{"keys":[]}`)); iss.SetGarbage(true) }, 200, "text/html; charset=utf-8", "", nil},
		{"down over garbage", func() { iss.SetGarbage(true); iss.SetDown(true) }, 503, "text/plain; charset=utf-8", "", nil},
		{"garbage cached", func() { iss.SetGarbage(true); iss.SetCacheControl("max-age=60") }, 200, "text/html; charset=utf-8", "max-age=60", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				iss.SetDown(false)
				iss.SetGarbage(false)
				iss.SetJWKSBody(nil)
				iss.SetCacheControl("")
			}()
			tt.setup()
			status, header, body := get(t, iss.JWKSURL())
			if status != tt.status {
				t.Errorf("status %d, want %d", status, tt.status)
			}
			if got := header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type %q, want %q", got, tt.contentType)
			}
			if got := header.Get("Cache-Control"); got != tt.cacheControl {
				t.Errorf("Cache-Control %q, want %q", got, tt.cacheControl)
			}
			if tt.check != nil {
				if err := tt.check(body); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestCounters(t *testing.T) {
	iss := newIssuer(t)
	if iss.JWKSRequests() != 0 || iss.DiscoveryRequests() != 0 {
		t.Fatal("counters do not start at 0")
	}
	get(t, iss.JWKSURL())
	get(t, iss.DiscoveryURL())
	iss.SetGarbage(true)
	get(t, iss.JWKSURL())
	iss.SetDown(true)
	get(t, iss.JWKSURL())
	get(t, iss.DiscoveryURL())
	get(t, iss.URL()+"unknown") // counted nowhere
	if got := iss.JWKSRequests(); got != 3 {
		t.Errorf("JWKSRequests() = %d, want 3", got)
	}
	if got := iss.DiscoveryRequests(); got != 2 {
		t.Errorf("DiscoveryRequests() = %d, want 2", got)
	}
}

func TestWaitRequests(t *testing.T) {
	t.Run("reached", func(t *testing.T) {
		iss := newIssuer(t)
		if err := iss.WaitJWKSRequests(context.Background(), 0); err != nil {
			t.Errorf("n=0: %v", err)
		}
		get(t, iss.JWKSURL())
		if err := iss.WaitJWKSRequests(context.Background(), 1); err != nil {
			t.Errorf("n=1 after one request: %v", err)
		}
	})
	t.Run("reached while waiting", func(t *testing.T) {
		iss := newIssuer(t)
		errc := make(chan error, 2)
		go func() { errc <- iss.WaitJWKSRequests(context.Background(), 2) }()
		go func() { errc <- iss.WaitDiscoveryRequests(context.Background(), 1) }()
		for _, url := range []string{iss.JWKSURL(), iss.JWKSURL(), iss.DiscoveryURL()} {
			await(t, "GET", goGet(context.Background(), url))
		}
		for range 2 {
			if err := await(t, "Wait", errc); err != nil {
				t.Error(err)
			}
		}
	})
	t.Run("context done", func(t *testing.T) {
		iss := newIssuer(t)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- iss.WaitJWKSRequests(ctx, 1) }()
		cancel()
		if err := await(t, "Wait", errc); !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		if err := iss.WaitJWKSRequests(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		iss := newIssuer(t)
		errc := make(chan error, 1)
		go func() { errc <- iss.WaitJWKSRequests(context.Background(), 1) }()
		iss.Close()
		if err := await(t, "Wait", errc); !errors.Is(err, jwkstest.ErrClosed) {
			t.Errorf("got %v, want ErrClosed", err)
		}
	})
}

func TestSetDelay(t *testing.T) {
	t.Run("delays", func(t *testing.T) {
		iss := newIssuer(t)
		const d = 50 * time.Millisecond
		iss.SetDelay(d)
		for _, url := range []string{iss.DiscoveryURL(), iss.JWKSURL()} {
			start := time.Now()
			get(t, url)
			if elapsed := time.Since(start); elapsed < d {
				t.Errorf("GET %s answered after %v, want >= %v", url, elapsed, d)
			}
		}
	})
	t.Run("released by lowering", func(t *testing.T) {
		iss := newIssuer(t)
		iss.SetDelay(time.Hour)
		res := goGet(context.Background(), iss.JWKSURL())
		if err := iss.WaitJWKSRequests(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		iss.SetDown(true) // decided when the wait ends, not when the request came
		iss.SetDelay(0)
		if r := await(t, "held request", res); r.err != nil || r.status != http.StatusServiceUnavailable {
			t.Errorf("got %d %v, want 503", r.status, r.err)
		}
	})
	t.Run("released by Close", func(t *testing.T) {
		iss := newIssuer(t)
		iss.SetDelay(time.Hour)
		res := goGet(context.Background(), iss.JWKSURL())
		res2 := goGet(context.Background(), iss.DiscoveryURL())
		if err := iss.WaitJWKSRequests(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		if err := iss.WaitDiscoveryRequests(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		closed := make(chan struct{})
		go func() { iss.Close(); close(closed) }()
		await(t, "Close", closed)
		for _, r := range []result{await(t, "held JWKS request", res), await(t, "held discovery request", res2)} {
			if r.err == nil {
				t.Errorf("held request answered %d after Close, want a connection error", r.status)
			}
		}
	})
	t.Run("client gone", func(t *testing.T) {
		iss := newIssuer(t)
		iss.SetDelay(time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		res := goGet(ctx, iss.JWKSURL())
		if err := iss.WaitJWKSRequests(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		cancel()
		if r := await(t, "cancelled request", res); !errors.Is(r.err, context.Canceled) {
			t.Errorf("got %d %v, want context.Canceled", r.status, r.err)
		}
		// That the server let go is pinned by TestHoldReleasedWhenClientGone.
	})
}

func TestCloseTwice(t *testing.T) {
	iss := newIssuer(t)
	iss.Close()
	iss.Close()
	// Everything but serving still works on a closed issuer.
	if _, err := iss.Mint(iss.Claims("a", nil)); err != nil {
		t.Error(err)
	}
	iss.SetDelay(time.Second)
}

// TestConcurrentUse runs every kind of call at once, for -race to judge.
func TestConcurrentUse(t *testing.T) {
	iss := newIssuer(t)
	const n = 20
	var wg sync.WaitGroup
	wg.Go(func() {
		for range n {
			if _, err := iss.Mint(iss.Claims("a", nil)); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Go(func() {
		for range n {
			k, err := iss.AddKey("ES256")
			if err != nil {
				t.Error(err)
				continue
			}
			iss.SetSigningKey(k.ID) // may fail if Rotate came between: fine
			iss.RemoveKey(k.ID)
			if _, err := iss.Rotate("ES256"); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Go(func() {
		for i := range n {
			iss.SetDown(i%4 == 1)
			iss.SetGarbage(i%4 == 2)
			iss.SetJWKSBody([]byte(fmt.Sprint(i)))
			iss.SetCacheControl(fmt.Sprint(i))
			iss.SetDelay(time.Duration(i%2) * time.Millisecond)
			iss.Keys()
			iss.SigningKey()
		}
	})
	for _, url := range []string{iss.JWKSURL(), iss.DiscoveryURL()} {
		wg.Go(func() {
			for range n {
				r := <-goGet(context.Background(), url)
				if r.err != nil {
					t.Error(r.err)
				}
			}
		})
	}
	wg.Wait()
	if got := iss.JWKSRequests() + iss.DiscoveryRequests(); got != 2*n {
		t.Errorf("%d requests counted, want %d", got, 2*n)
	}
}
