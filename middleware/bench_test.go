package middleware_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/middleware"
)

// auth0Claims is the claim set of a typical Auth0 access token for an API
// with RBAC (testdata/auth0-claims.json: two audiences, the API and
// /userinfo; three scopes, three permissions), issued at now for 24 hours.
func auth0Claims(t testing.TB, now time.Time) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "auth0-claims.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	if c["iss"] != tenant || !slices.Contains(c["aud"].([]any), any(audience)) {
		t.Fatalf("testdata/auth0-claims.json is not for %s and %s", tenant, audience)
	}
	c["iat"], c["exp"] = now.Unix(), now.Add(24*time.Hour).Unix()
	return c
}

// BenchmarkValidateRS256 is the request path without a cache: parse, look up
// the key, verify, check the claims.
func BenchmarkValidateRS256(b *testing.B) {
	key := newKey(b, "RS256")
	v := staticFixture(b, key, middleware.ValidatorOptions{})
	token := sign(b, key, nil, auth0Claims(b, epoch))
	ctx := context.Background()
	if _, err := v.Validate(ctx, token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Validate(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
	_, payload, _ := segments(b, token)
	raw, _ := b64.DecodeString(payload)
	b.ReportMetric(float64(len(raw)), "claims-bytes")
	b.ReportMetric(float64(len(token)), "token-bytes")
}

// BenchmarkVerifyRS256Bare is the floor: hashing the same signing input and
// verifying the signature, nothing else.
func BenchmarkVerifyRS256Bare(b *testing.B) {
	key := newKey(b, "RS256")
	token := sign(b, key, nil, auth0Claims(b, epoch))
	dot := strings.LastIndexByte(token, '.')
	input := []byte(token[:dot])
	sig, err := b64.DecodeString(token[dot+1:])
	if err != nil {
		b.Fatal(err)
	}
	pub := key.Public().(*rsa.PublicKey)
	b.ReportAllocs()
	for b.Loop() {
		digest := sha256.Sum256(input)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}

// The allocation budget of the request path: the floor (bare crypto/rsa
// verification) allocates 9 times.
func TestValidateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	token := sign(t, key, nil, auth0Claims(t, epoch))
	ctx := context.Background()
	if _, err := v.Validate(ctx, token); err != nil {
		t.Fatal(err)
	}
	const budget = 16
	if n := testing.AllocsPerRun(50, func() { v.Validate(ctx, token) }); n > budget {
		t.Errorf("Validate allocates %v times, budget %d", n, budget)
	}
}

// BenchmarkValidateRS256OverBare times the validator and the bare floor of
// BenchmarkVerifyRS256Bare alternately, one call each per iteration, and
// reports the ratio of their total times: on a shared machine a burst of
// load from elsewhere then slows both alike. The target of issue 5 is 1.15.
func BenchmarkValidateRS256OverBare(b *testing.B) {
	key := newKey(b, "RS256")
	v := staticFixture(b, key, middleware.ValidatorOptions{})
	token := sign(b, key, nil, auth0Claims(b, epoch))
	dot := strings.LastIndexByte(token, '.')
	input := []byte(token[:dot])
	sig, err := b64.DecodeString(token[dot+1:])
	if err != nil {
		b.Fatal(err)
	}
	pub := key.Public().(*rsa.PublicKey)
	ctx := context.Background()
	if _, err := v.Validate(ctx, token); err != nil {
		b.Fatal(err)
	}
	var validate, bare time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		if _, err := v.Validate(ctx, token); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		digest := sha256.Sum256(input)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			b.Fatal(err)
		}
		validate += t1.Sub(t0)
		bare += time.Since(t1)
	}
	b.ReportMetric(float64(validate)/float64(bare), "x-floor")
}

// BenchmarkExtractBearer is the header check every request pays before
// validation, for an Auth0-sized token.
func BenchmarkExtractBearer(b *testing.B) {
	key := newKey(b, "RS256")
	token := sign(b, key, nil, auth0Claims(b, epoch))
	h := http.Header{"Authorization": {"Bearer " + token}}
	b.ReportAllocs()
	b.SetBytes(int64(len(token)))
	for b.Loop() {
		if got, err := middleware.ExtractBearer(h); err != nil || got != token {
			b.Fatal(got, err)
		}
	}
}
