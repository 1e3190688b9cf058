package middleware_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenward/tokenward/middleware"
)

// fakeUserInfo is a fake of a lenient issuer endpoint (/userinfo or
// introspection), written for these tests: it vouches for every token it is
// asked about and records each one, so a test can see whether the validator
// asked at all.
type fakeUserInfo struct {
	mu     sync.Mutex // guards asked
	asked  []string
	claims middleware.Claims
}

func (f *fakeUserInfo) CheckOpaque(_ context.Context, token string) (*middleware.Claims, error) {
	f.mu.Lock()
	f.asked = append(f.asked, token)
	f.mu.Unlock()
	c := f.claims
	return &c, nil
}

func (f *fakeUserInfo) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.asked)
}

// Anything shaped like a JWT is verified locally or refused as malformed; it
// is never sent to the issuer's /userinfo or introspection endpoint, where a
// lenient decoder would vouch for a JWT that is for another API, revoked, or
// of the wrong type once it is padded or re-encoded (issue 9, finding 3).
func TestJWTNeverLaunderedThroughOpaqueChecker(t *testing.T) {
	key := newKey(t, "RS256")
	set := staticSet(t, key)
	newFixture := func(t *testing.T, requireAT bool) (*middleware.Validator, *fakeUserInfo) {
		t.Helper()
		fake := &fakeUserInfo{claims: middleware.Claims{Issuer: tenant, Subject: "auth0|victim", Kind: middleware.KindUserInfo}}
		v := newValidator(t, []middleware.Issuer{{URL: tenant, Keys: set}}, middleware.ValidatorOptions{
			Now:          func() time.Time { return epoch },
			Opaque:       fake,
			RequireATJWT: requireAT,
			Revoked:      func(c *middleware.Claims) bool { return c.ID == "revoked-jti" },
		})
		return v, fake
	}
	atJWT := map[string]any{"typ": "at+jwt"}
	valid := sign(t, key, atJWT, claimsAt(tenant, epoch, nil))
	otherAPI := sign(t, key, atJWT, claimsAt(tenant, epoch, map[string]any{"aud": []string{"https://other.example.com", tenant + "userinfo"}}))
	revoked := sign(t, key, atJWT, claimsAt(tenant, epoch, map[string]any{"jti": "revoked-jti"}))
	typJWT := sign(t, key, map[string]any{"typ": "JWT"}, claimsAt(tenant, epoch, nil))
	// A signature of 256 random bytes has a '-' or '_' but for a chance of
	// about 2^-22: find a token that has one, for the standard alphabet.
	std := valid
	for i := 0; !strings.ContainsAny(std, "-_"); i++ {
		std = sign(t, key, atJWT, claimsAt(tenant, epoch, map[string]any{"jti": i}))
	}
	std = strings.NewReplacer("-", "+", "_", "/").Replace(std)
	h, c, s := segments(t, valid)

	for _, tt := range []struct {
		name      string
		token     string
		requireAT bool
	}{
		{"padded", valid + "==", false},
		{"standard alphabet", std, false},
		{"for another API, padded", otherAPI + "==", false},
		{"revoked, padded", revoked + "=", false},
		{"typ JWT under RequireATJWT, padded", typJWT + "==", true},
		{"padding inside", h + "=." + c + "." + s, false},
		{"five segments with a JWS header", valid + ".AAAA.AAAA", false},
		{"four segments", valid + ".AAAA", false},
		{"dots replaced", h + "~" + c + "~" + s, false},
		{"header alone, padded", h + "==", false},
		{"header and claims", h + "." + c, false},
		{"header in the standard alphabet, no dots", strings.NewReplacer("-", "+", "_", "/").Replace(h) + "=", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, fake := newFixture(t, tt.requireAT)
			claims, err := v.Validate(testContext(t), tt.token)
			wantReason(t, claims, err, middleware.ErrMalformed, tt.token)
			if n := fake.calls(); n != 0 {
				t.Fatalf("the JWT-shaped token was sent to the issuer (%d calls)", n)
			}
		})
	}

	// Through the middleware: 401 invalid_token, and still no call.
	t.Run("HTTP", func(t *testing.T) {
		v, fake := newFixture(t, false)
		mw, err := middleware.New(v, middleware.Options{})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
		defer srv.Close()
		a := do(t, http.MethodGet, srv.URL+"/", http.Header{"Authorization": {"Bearer " + otherAPI + "=="}})
		if a.status != http.StatusUnauthorized || !strings.Contains(a.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("status %d, challenge %q", a.status, a.header.Get("WWW-Authenticate"))
		}
		if n := fake.calls(); n != 0 {
			t.Fatalf("the JWT-shaped token was sent to the issuer (%d calls)", n)
		}
	})

	// The fake does vouch: an opaque token, and a JWE (Auth0's opaque
	// access tokens are JWEs with "alg":"dir"), are still asked about, and
	// a JWT untouched is verified locally.
	jwe := b64.EncodeToString([]byte(`{"alg":"dir","enc":"A256GCM","iss":"`+tenant+`"}`)) + "..MtTp8gXxEDbTGGtC.QbhOZtHz7lWvdBJ4tQsp.Y2zK6dnWW2sx4Q3p0vnDQg"
	for _, tt := range []struct {
		name, token string
		asked       int
	}{
		{"opaque", "2YotnFZFEjr1zCsicMWpAA", 1},
		{"JWE", jwe, 1},
		{"JWT", valid, 0},
	} {
		t.Run("control: "+tt.name, func(t *testing.T) {
			v, fake := newFixture(t, false)
			if _, err := v.Validate(testContext(t), tt.token); err != nil {
				t.Fatal(err)
			}
			if n := fake.calls(); n != tt.asked {
				t.Fatalf("%d calls to the issuer, want %d", n, tt.asked)
			}
		})
	}
}

// FuzzNoJWTToOpaqueChecker: whatever the token, the opaque checker is asked
// only about one that no lenient JWS parser could read: fewer than two dots
// (or a JWE's four) and a first segment that does not decode, in either
// base64 alphabet with or without padding, to a JSON object naming "alg".
func FuzzNoJWTToOpaqueChecker(f *testing.F) {
	key := newKey(f, "RS256")
	valid := sign(f, key, nil, claimsAt(tenant, epoch, nil))
	h, _, _ := segments(f, valid)
	for _, seed := range []string{
		valid, valid + "==", h, h + "=", h + ".x", "2YotnFZFEjr1zCsicMWpAA", "a.b", "a.b.c.d.e",
		b64.EncodeToString([]byte(`{"alg":"dir","enc":"A256GCM"}`)) + "..a.b.c",
	} {
		f.Add(seed)
	}
	fake := &fakeUserInfo{claims: middleware.Claims{Issuer: tenant, Kind: middleware.KindUserInfo}}
	v := newValidator(f, []middleware.Issuer{{URL: tenant, Keys: staticSet(f, key)}}, middleware.ValidatorOptions{
		Now: func() time.Time { return epoch }, Opaque: fake,
	})
	f.Fuzz(func(t *testing.T, token string) {
		before := fake.calls()
		v.Validate(context.Background(), token)
		if fake.calls() == before {
			return
		}
		if n := strings.Count(token, "."); n >= 2 && n != 4 {
			t.Fatalf("a token with %d dots was sent to the issuer", n)
		}
		first := token
		if i := strings.IndexFunc(token, func(r rune) bool {
			return !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/", r)
		}); i >= 0 {
			first = token[:i]
		}
		first = strings.NewReplacer("-", "+", "_", "/").Replace(first)
		first = first[:len(first)/4*4+min(len(first)%4, 3)] // whole bytes only
		if len(first)%4 == 1 {
			first = first[:len(first)-1]
		}
		for len(first)%4 != 0 {
			first += "="
		}
		if b, err := base64.StdEncoding.DecodeString(first); err == nil && strings.HasPrefix(strings.TrimLeft(string(b), " \t\r\n"), "{") &&
			strings.Contains(string(b), `"alg"`) && strings.Count(token, ".") != 4 {
			t.Fatalf("a token whose first segment decodes to %q was sent to the issuer", b)
		}
	})
}
