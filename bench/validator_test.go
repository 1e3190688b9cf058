// Package bench compares tokenward's validator with bare crypto/rsa and with
// the peers, on the same Auth0-shaped RS256 tokens (see package fixture).
// The benchmarks are never timed tests: CI runs them with -benchtime=1x.
// run.sh runs them with -count=5 and computes the ratios to the floor.
package bench

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	jwtmw "github.com/auth0/go-jwt-middleware/v2/validator"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenward/tokenward/bench/internal/fixture"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/middleware"
)

// distinct is how many different tokens the "new token" benchmarks cycle
// through: enough that no verifier can profit from having seen a token.
const distinct = 1000

var (
	setupOnce sync.Once
	fix       *fixture.Fixture
	tokens    []string // distinct valid tokens
	setupErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fix != nil {
		fix.Close()
	}
	os.Exit(code)
}

// setup starts the issuer and mints the tokens once per test binary.
func setup(tb testing.TB) {
	tb.Helper()
	setupOnce.Do(func() {
		fix, setupErr = fixture.New()
		if setupErr != nil {
			return
		}
		tokens, setupErr = fix.Mint(0, distinct)
	})
	if setupErr != nil {
		tb.Fatal(setupErr)
	}
}

// verifier is one contestant: it returns nil for a valid token.
type verifier func(token string) error

func tokenward(tb testing.TB, opts middleware.ValidatorOptions) verifier {
	tb.Helper()
	keys, err := jwks.NewStatic(fix.JWKS())
	if err != nil {
		tb.Fatal(err)
	}
	v, err := middleware.NewValidator(
		[]middleware.Issuer{{URL: fix.Issuer(), Keys: keys}},
		[]string{fixture.API}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	return func(token string) error {
		_, err := v.Validate(ctx, token)
		return err
	}
}

func goJWTMiddlewareV2(tb testing.TB) verifier {
	tb.Helper()
	pub := fix.Public()
	keyFunc := func(context.Context) (any, error) { return pub, nil }
	v, err := jwtmw.New(keyFunc, jwtmw.RS256, fix.Issuer(), []string{fixture.API})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	return func(token string) error {
		_, err := v.ValidateToken(ctx, token)
		return err
	}
}

func golangJWTv5(tb testing.TB) verifier {
	pub := fix.Public()
	keyFunc := func(*jwt.Token) (any, error) { return pub, nil }
	iss := fix.Issuer()
	return func(token string) error {
		_, err := jwt.Parse(token, keyFunc,
			jwt.WithValidMethods([]string{"RS256"}),
			jwt.WithIssuer(iss),
			jwt.WithAudience(fixture.API),
			jwt.WithExpirationRequired())
		return err
	}
}

// auth0Claims is how a careful golang-jwt user decodes these tokens: typed,
// not into a map.
type auth0Claims struct {
	jwt.RegisteredClaims
	Azp         string   `json:"azp"`
	Scope       string   `json:"scope"`
	Permissions []string `json:"permissions"`
}

func golangJWTv5Typed(tb testing.TB) verifier {
	pub := fix.Public()
	keyFunc := func(*jwt.Token) (any, error) { return pub, nil }
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(fix.Issuer()),
		jwt.WithAudience(fixture.API),
		jwt.WithExpirationRequired())
	return func(token string) error {
		var c auth0Claims
		_, err := p.ParseWithClaims(token, &c, keyFunc)
		return err
	}
}

// floor is the signature check alone: SHA-256 of the signing input and
// rsa.VerifyPKCS1v15, with the signature decoded beforehand.
type floor struct {
	pub    *rsa.PublicKey
	inputs [][]byte
	sigs   [][]byte
}

func newFloor(tb testing.TB) *floor {
	f := &floor{pub: fix.Public()}
	for _, t := range tokens {
		dot := strings.LastIndexByte(t, '.')
		sig, err := base64.RawURLEncoding.DecodeString(t[dot+1:])
		if err != nil {
			tb.Fatal(err)
		}
		f.inputs = append(f.inputs, []byte(t[:dot]))
		f.sigs = append(f.sigs, sig)
	}
	return f
}

func (f *floor) verify(i int) error {
	h := sha256.Sum256(f.inputs[i])
	return rsa.VerifyPKCS1v15(f.pub, crypto.SHA256, h[:], f.sigs[i])
}

// contestants are the verifiers of new tokens, by benchmark name.
func contestants(tb testing.TB) []struct {
	name string
	v    verifier
} {
	return []struct {
		name string
		v    verifier
	}{
		{"tokenward", tokenward(tb, middleware.ValidatorOptions{})},
		{"go-jwt-middleware-v2", goJWTMiddlewareV2(tb)},
		{"golang-jwt-v5", golangJWTv5(tb)},
		{"golang-jwt-v5-typed", golangJWTv5Typed(tb)},
	}
}

// TestVerifiersAgree pins that the benchmarks compare like with like: every
// verifier accepts the tokens and refuses the same forgeries.
func TestVerifiersAgree(t *testing.T) {
	setup(t)
	f := newFloor(t)
	for i := range 3 {
		if err := f.verify(i); err != nil {
			t.Fatalf("floor refuses token %d: %v", i, err)
		}
	}
	bad := map[string]map[string]any{
		"wrong audience": {"aud": []string{"https://other.example"}},
		"wrong issuer":   {"iss": "https://evil.example/"},
		"expired":        {"exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix()},
		"no expiry":      {"exp": nil},
	}
	// Known gaps of the peers, logged rather than failed: go-jose v2's
	// claim validation skips exp when the token has none.
	gaps := map[string]bool{"go-jwt-middleware-v2/no expiry": true}
	for _, c := range contestants(t) {
		for i := range 3 {
			if err := c.v(tokens[i]); err != nil {
				t.Errorf("%s refuses valid token %d: %v", c.name, i, err)
			}
		}
		tampered := tokens[0][:len(tokens[0])-4] + "AAAA"
		if c.v(tampered) == nil {
			t.Errorf("%s accepts a bad signature", c.name)
		}
		for what, extra := range bad {
			tok, err := fix.Token(fix.Claims(0, extra))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case c.v(tok) != nil:
			case gaps[c.name+"/"+what]:
				t.Logf("known gap: %s accepts a token with %s", c.name, what)
			default:
				t.Errorf("%s accepts a token with %s", c.name, what)
			}
		}
	}
}

// TestTokenShape logs the size of the tokens, reported in BENCHMARKS.md.
func TestTokenShape(t *testing.T) {
	setup(t)
	dot := strings.IndexByte(tokens[0], '.')
	dot2 := strings.LastIndexByte(tokens[0], '.')
	claims, _ := base64.RawURLEncoding.DecodeString(tokens[0][dot+1 : dot2])
	t.Logf("token: %d bytes; claims JSON: %d bytes: %s", len(tokens[0]), len(claims), claims)
}

// BenchmarkFloorRSA is the floor: what every verifier of a new RS256 token
// must at least spend.
func BenchmarkFloorRSA(b *testing.B) {
	setup(b)
	f := newFloor(b)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if err := f.verify(i); err != nil {
			b.Fatal(err)
		}
		i = (i + 1) % distinct
	}
}

// benchNew verifies a different token each iteration.
func benchNew(b *testing.B, v verifier) {
	setup(b)
	for _, t := range tokens { // every token is valid for this verifier
		if err := v(t); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if err := v(tokens[i]); err != nil {
			b.Fatal(err)
		}
		i = (i + 1) % distinct
	}
}

// BenchmarkTokenwardCold is tokenward's validator without a cache, on a new
// token every iteration.
func BenchmarkTokenwardCold(b *testing.B) {
	setup(b)
	benchNew(b, tokenward(b, middleware.ValidatorOptions{}))
}

// BenchmarkTokenwardCached is tokenward's validator with its verified-token
// cache, on the same token every iteration: what a client holding one
// access token costs from its second request on.
func BenchmarkTokenwardCached(b *testing.B) {
	setup(b)
	v := tokenward(b, middleware.ValidatorOptions{CacheSize: 100000})
	token := tokens[0]
	if err := v(token); err != nil { // the miss that fills the cache
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := v(token); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGoJWTMiddlewareV2(b *testing.B) {
	setup(b)
	benchNew(b, goJWTMiddlewareV2(b))
}

func BenchmarkGolangJWTv5(b *testing.B) {
	setup(b)
	benchNew(b, golangJWTv5(b))
}

func BenchmarkGolangJWTv5Typed(b *testing.B) {
	setup(b)
	benchNew(b, golangJWTv5Typed(b))
}
