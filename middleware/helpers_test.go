package middleware_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
)

const (
	// audience is the API the tests protect.
	audience = "https://api.example.com"
	// tenant is the issuer of tests that need no HTTP: its keys are static.
	tenant = "https://tenant.example.com/"
	// waitLimit bounds every wait: a failure deadline, never a way to let
	// something happen.
	waitLimit = 15 * time.Second
)

// epoch is the clock of tests that inject one.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

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

// remoteFor returns iss's key set, loaded, closed when the test ends.
func remoteFor(t testing.TB, iss *jwkstest.Issuer, o jwks.RemoteOptions) *jwks.Remote {
	t.Helper()
	r := unloadedRemote(t, iss, o)
	if _, err := r.Key(testContext(t), iss.SigningKey().ID); err != nil {
		t.Fatalf("loading %s: %v", iss.JWKSURL(), err)
	}
	return r
}

// unloadedRemote is remoteFor without waiting for the keys.
func unloadedRemote(t testing.TB, iss *jwkstest.Issuer, o jwks.RemoteOptions) *jwks.Remote {
	t.Helper()
	r, err := jwks.NewRemote(iss.JWKSURL(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func newKey(t testing.TB, alg string) *jwkstest.Key {
	t.Helper()
	k, err := jwkstest.NewKey(alg)
	if err != nil {
		t.Fatal(err)
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

// jwksJSON encodes a JWK Set.
func jwksJSON(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// staticSet returns a key set publishing the given keys.
func staticSet(t testing.TB, keys ...*jwkstest.Key) *jwks.Static {
	t.Helper()
	set, err := jwkstest.JWKS(keys...)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwks.NewStatic(set)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newValidator(t testing.TB, issuers []middleware.Issuer, o middleware.ValidatorOptions) *middleware.Validator {
	t.Helper()
	v, err := middleware.NewValidator(issuers, []string{audience}, o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// staticFixture is a validator trusting tenant, whose only key is key, with
// the clock at epoch unless o says otherwise.
func staticFixture(t testing.TB, key *jwkstest.Key, o middleware.ValidatorOptions) *middleware.Validator {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return epoch }
	}
	return newValidator(t, []middleware.Issuer{{URL: tenant, Keys: staticSet(t, key)}}, o)
}

// claimsAt returns valid claims of issuer for audience at time now, with extra
// set over them (a nil value deletes a claim).
func claimsAt(issuer string, now time.Time, extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": issuer,
		"sub": "auth0|5f7c8ec7c33c6c004bbafe82",
		"aud": audience,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// sign signs claims with k, header merged over the default (see
// jwkstest.Key.Sign).
func sign(t testing.TB, k *jwkstest.Key, header, claims map[string]any) string {
	t.Helper()
	tok, err := k.Sign(header, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// mintFor mints a token of iss for audience with extra claims.
func mintFor(t testing.TB, iss *jwkstest.Issuer, extra map[string]any) string {
	t.Helper()
	tok, err := iss.Mint(iss.Claims(audience, extra))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signRaw signs exactly the given header and claims JSON (which may be
// anything, such as JSON with duplicate names).
func signRaw(t testing.TB, k *jwkstest.Key, header, claims string) string {
	t.Helper()
	return signedWithHeader(t, k, b64.EncodeToString([]byte(header)), b64.EncodeToString([]byte(claims)))
}

// signedWithHeader signs already encoded header and claims segments, as
// given.
func signedWithHeader(t testing.TB, k *jwkstest.Key, header, claims string) string {
	t.Helper()
	tok, err := k.SignSegments(header, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// segments splits a compact JWS.
func segments(t testing.TB, token string) (header, claims, sig string) {
	t.Helper()
	header, claims, sig, ok := cut3(token)
	if !ok {
		t.Fatalf("token has %d segments", strings.Count(token, ".")+1)
	}
	return header, claims, sig
}

// sentinels are every reason's sentinel error.
var sentinels = []*middleware.Error{
	middleware.ErrNoToken, middleware.ErrInvalidRequest, middleware.ErrTooLarge, middleware.ErrMalformed,
	middleware.ErrOpaque, middleware.ErrAlgorithm, middleware.ErrType, middleware.ErrUnsupported,
	middleware.ErrIssuer, middleware.ErrUnknownKey, middleware.ErrKeysUnavailable, middleware.ErrSignature,
	middleware.ErrExpired, middleware.ErrNotYetValid, middleware.ErrIssuedInFuture, middleware.ErrAudience,
	middleware.ErrRevoked, middleware.ErrInactive, middleware.ErrIssuerUnavailable, middleware.ErrIssuerBusy, middleware.ErrInsufficientScope,
}

// wantReason checks the error contracts of a refusal: errors.Is matches the
// reason's sentinel and no other, errors.As finds an *Error with that reason,
// and neither the message nor the client's description quotes the token.
func wantReason(t testing.TB, claims *middleware.Claims, err error, want *middleware.Error, token string) *middleware.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s (claims %+v)", want.Reason, claims)
	}
	if claims != nil {
		t.Errorf("claims returned with error %v", err)
	}
	var e *middleware.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.Reason != want.Reason {
		t.Fatalf("reason %q (%v), want %q", e.Reason, err, want.Reason)
	}
	for _, s := range sentinels {
		if got := errors.Is(err, s); got != (s.Reason == want.Reason) {
			t.Errorf("errors.Is(err, Err[%s]) = %v", s.Reason, got)
		}
	}
	if !strings.HasPrefix(err.Error(), "tokenward: ") {
		t.Errorf("error %q lacks the package prefix", err)
	}
	if len(token) >= 16 {
		if strings.Contains(err.Error(), token) || strings.Contains(e.ClientDescription(), token) {
			t.Errorf("error quotes the token: %q", err)
		}
		if _, _, sig, ok := cut3(token); ok && len(sig) >= 16 && strings.Contains(err.Error(), sig) {
			t.Errorf("error quotes the signature: %q", err)
		}
	}
	return e
}

func cut3(token string) (a, b, c string, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// stubKeys is a KeySet answering every lookup with err.
type stubKeys struct{ err error }

func (s stubKeys) Key(context.Context, string) (jwks.Key, error) { return jwks.Key{}, s.err }
