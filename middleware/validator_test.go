package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
)

// Every reason Validate can give, with the errors.Is / errors.As contracts.
func TestValidateReasons(t *testing.T) {
	key, stranger := newKey(t, "RS256"), newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	token := func(header, extra map[string]any) func() string {
		return func() string { return sign(t, key, header, claimsAt(tenant, epoch, extra)) }
	}
	validClaims := b64.EncodeToString([]byte(fmt.Sprintf(`{"iss":%q,"aud":%q,"exp":%d}`, tenant, audience, epoch.Add(time.Hour).Unix())))
	unavailable := newValidator(t, []middleware.Issuer{{URL: tenant, Keys: stubKeys{fmt.Errorf("remote: %w", jwks.ErrUnavailable)}}},
		middleware.ValidatorOptions{Now: func() time.Time { return epoch }})
	denying := staticFixture(t, key, middleware.ValidatorOptions{Revoked: func(c *middleware.Claims) bool { return c.ID == "stolen" }})
	inactive := staticFixture(t, key, middleware.ValidatorOptions{Opaque: opaqueStub{err: middleware.ErrInactive}})
	unreachable := staticFixture(t, key, middleware.ValidatorOptions{Opaque: opaqueStub{err: fmt.Errorf("introspection: %w", middleware.ErrIssuerUnavailable)}})

	tests := []struct {
		name     string
		v        *middleware.Validator // nil: v
		token    func() string
		want     *middleware.Error // nil: valid
		wantDesc string            // "" : the reason's default description
		wantWrap error             // an error errors.Is must also find
	}{
		{name: "valid", token: token(nil, nil)},
		{name: "valid, typ at+jwt", token: token(map[string]any{"typ": "at+jwt"}, nil)},
		{name: "valid, no typ", token: token(map[string]any{"typ": nil}, nil)},
		{name: "too large", token: func() string { return strings.Repeat("a", middleware.DefaultMaxTokenBytes+1) },
			want: middleware.ErrTooLarge, wantDesc: "token too large"},
		{name: "empty", token: func() string { return "" }, want: middleware.ErrMalformed, wantDesc: "empty token"},
		{name: "opaque", token: func() string { return "8f2c0a3e5b1d4f6a9c7e" }, want: middleware.ErrOpaque,
			wantDesc: "opaque tokens are not accepted here"},
		{name: "header not JSON", token: func() string { return b64.EncodeToString([]byte("not json")) + "." + validClaims + ".c2ln" },
			want: middleware.ErrMalformed, wantDesc: "token header is not a valid JSON object"},
		{name: "header a JSON array", token: func() string { return b64.EncodeToString([]byte(`["alg"]`)) + "." + validClaims + ".c2ln" },
			want: middleware.ErrMalformed, wantDesc: "token header is not a valid JSON object"},
		{name: "claims not JSON", token: func() string { return b64.EncodeToString([]byte(`{"alg":"RS256"}`)) + ".bm90IGpzb24.c2ln" },
			want: middleware.ErrMalformed, wantDesc: "token claims are not a valid JSON object"},
		{name: "aud a number", token: token(nil, map[string]any{"aud": 5}), want: middleware.ErrMalformed, wantDesc: "token claims are not valid"},
		{name: "sub a number", token: token(nil, map[string]any{"sub": 5}), want: middleware.ErrMalformed, wantDesc: "token claims are not valid"},
		{name: "scope an object", token: token(nil, map[string]any{"scope": map[string]any{}}), want: middleware.ErrMalformed},
		{name: "alg HS256", token: token(map[string]any{"alg": "HS256"}, nil), want: middleware.ErrAlgorithm,
			wantDesc: "signing algorithm not accepted"},
		{name: "alg RS512 (supported, not allowed)", token: token(map[string]any{"alg": "RS512"}, nil), want: middleware.ErrAlgorithm},
		{name: "alg missing", token: token(map[string]any{"alg": nil}, nil), want: middleware.ErrAlgorithm},
		{name: "alg lower case", token: token(map[string]any{"alg": "rs256"}, nil), want: middleware.ErrAlgorithm},
		{name: "typ dpop+jwt", token: token(map[string]any{"typ": "dpop+jwt"}, nil), want: middleware.ErrType,
			wantDesc: "token type not accepted"},
		{name: "typ logout+jwt", token: token(map[string]any{"typ": "logout+jwt"}, nil), want: middleware.ErrType},
		{name: "typ secevent+jwt", token: token(map[string]any{"typ": "secevent+jwt"}, nil), want: middleware.ErrType},
		{name: "typ empty", token: token(map[string]any{"typ": ""}, nil), want: middleware.ErrType},
		{name: "typ not a string", token: token(map[string]any{"typ": 1}, nil), want: middleware.ErrMalformed},
		{name: "crit", token: token(map[string]any{"crit": []string{"exp"}, "exp": 1}, nil), want: middleware.ErrUnsupported,
			wantDesc: "critical header parameter not supported"},
		{name: "crit empty", token: token(map[string]any{"crit": []string{}}, nil), want: middleware.ErrUnsupported},
		{name: "crit b64", token: token(map[string]any{"crit": []string{"b64"}, "b64": false}, nil), want: middleware.ErrUnsupported},
		{name: "iss untrusted", token: token(nil, map[string]any{"iss": "https://evil.example.com/"}), want: middleware.ErrIssuer,
			wantDesc: "issuer not trusted"},
		{name: "iss missing", token: token(nil, map[string]any{"iss": nil}), want: middleware.ErrIssuer},
		{name: "unknown kid", token: func() string { return sign(t, stranger, nil, claimsAt(tenant, epoch, nil)) },
			want: middleware.ErrUnknownKey, wantDesc: "signing key not found", wantWrap: jwks.ErrKeyNotFound},
		{name: "keys unavailable", v: unavailable, token: token(nil, nil), want: middleware.ErrKeysUnavailable,
			wantDesc: "issuer keys unavailable", wantWrap: jwks.ErrUnavailable},
		{name: "bad signature (stolen kid)", token: func() string {
			return sign(t, stranger, map[string]any{"kid": key.ID}, claimsAt(tenant, epoch, nil))
		}, want: middleware.ErrSignature, wantDesc: "signature invalid"},
		{name: "expired", token: token(nil, map[string]any{"exp": epoch.Add(-time.Hour).Unix()}), want: middleware.ErrExpired,
			wantDesc: "token expired"},
		{name: "no exp", token: token(nil, map[string]any{"exp": nil}), want: middleware.ErrExpired, wantDesc: "token has no expiry"},
		{name: "exp null", token: token(nil, map[string]any{"exp": jsonNull{}}), want: middleware.ErrExpired},
		{name: "nbf in the future", token: token(nil, map[string]any{"nbf": epoch.Add(time.Hour).Unix()}), want: middleware.ErrNotYetValid,
			wantDesc: "token not yet valid"},
		{name: "iat in the future", token: token(nil, map[string]any{"iat": epoch.Add(time.Hour).Unix()}), want: middleware.ErrIssuedInFuture,
			wantDesc: "token issued in the future"},
		{name: "other audience", token: token(nil, map[string]any{"aud": "https://other.example.com"}), want: middleware.ErrAudience,
			wantDesc: "audience not accepted"},
		{name: "no aud", token: token(nil, map[string]any{"aud": nil}), want: middleware.ErrAudience},
		{name: "aud empty array", token: token(nil, map[string]any{"aud": []string{}}), want: middleware.ErrAudience},
		{name: "aud differs in case", token: token(nil, map[string]any{"aud": strings.ToUpper(audience)}), want: middleware.ErrAudience},
		{name: "aud with trailing slash", token: token(nil, map[string]any{"aud": audience + "/"}), want: middleware.ErrAudience},
		{name: "revoked", v: denying, token: token(nil, map[string]any{"jti": "stolen"}), want: middleware.ErrRevoked,
			wantDesc: "token revoked"},
		{name: "not revoked", v: denying, token: token(nil, map[string]any{"jti": "fine"})},
		{name: "opaque, inactive", v: inactive, token: func() string { return "2YotnFZFEjr1zCsicMWpAA" }, want: middleware.ErrInactive,
			wantDesc: "token not active"},
		{name: "opaque, issuer unavailable", v: unreachable, token: func() string { return "2YotnFZFEjr1zCsicMWpAA" },
			want: middleware.ErrIssuerUnavailable, wantDesc: "issuer unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			val := v
			if tt.v != nil {
				val = tt.v
			}
			tok := tt.token()
			claims, err := val.Validate(testContext(t), tok)
			if tt.want == nil {
				if err != nil || claims == nil {
					t.Fatalf("Validate() = %v, %v; want claims", claims, err)
				}
				return
			}
			e := wantReason(t, claims, err, tt.want, tok)
			if tt.wantDesc != "" && e.ClientDescription() != tt.wantDesc {
				t.Errorf("description %q, want %q", e.ClientDescription(), tt.wantDesc)
			}
			if tt.wantWrap != nil && !errors.Is(err, tt.wantWrap) {
				t.Errorf("errors.Is(err, %v) = false; err = %v", tt.wantWrap, err)
			}
			if s := e.Status(); s != 401 && s != 503 {
				t.Errorf("status %d for a token failure", s)
			}
		})
	}
}

// jsonNull marshals as JSON null, to put an explicit null in a claim.
type jsonNull struct{}

func (jsonNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

// Each reason maps to one HTTP answer, decided in one place.
func TestErrorAnswers(t *testing.T) {
	tests := []struct {
		err    *middleware.Error
		status int
		code   string
		desc   string
	}{
		{middleware.ErrNoToken, 401, "", "no bearer token"},
		{middleware.ErrInvalidRequest, 400, "invalid_request", "malformed Authorization header"},
		{middleware.ErrTooLarge, 401, "invalid_token", "token too large"},
		{middleware.ErrMalformed, 401, "invalid_token", "token malformed"},
		{middleware.ErrOpaque, 401, "invalid_token", "opaque tokens are not accepted here"},
		{middleware.ErrAlgorithm, 401, "invalid_token", "signing algorithm not accepted"},
		{middleware.ErrType, 401, "invalid_token", "token type not accepted"},
		{middleware.ErrUnsupported, 401, "invalid_token", "critical header parameter not supported"},
		{middleware.ErrIssuer, 401, "invalid_token", "issuer not trusted"},
		{middleware.ErrUnknownKey, 401, "invalid_token", "signing key not found"},
		{middleware.ErrKeysUnavailable, 503, "", "issuer keys unavailable"},
		{middleware.ErrSignature, 401, "invalid_token", "signature invalid"},
		{middleware.ErrExpired, 401, "invalid_token", "token expired"},
		{middleware.ErrNotYetValid, 401, "invalid_token", "token not yet valid"},
		{middleware.ErrIssuedInFuture, 401, "invalid_token", "token issued in the future"},
		{middleware.ErrAudience, 401, "invalid_token", "audience not accepted"},
		{middleware.ErrRevoked, 401, "invalid_token", "token revoked"},
		{middleware.ErrInactive, 401, "invalid_token", "token not active"},
		{middleware.ErrIssuerUnavailable, 503, "", "issuer unavailable"},
		{middleware.ErrIssuerBusy, 503, "", "issuer busy"},
		{middleware.ErrInsufficientScope, 403, "insufficient_scope", "insufficient scope"},
		// A reason the table does not know fails closed as an invalid token.
		{&middleware.Error{Reason: "made_up"}, 401, "invalid_token", "token invalid"},
	}
	if len(tests)-1 != len(sentinels) {
		t.Fatalf("%d sentinels, %d rows: a reason is missing here", len(sentinels), len(tests)-1)
	}
	for _, tt := range tests {
		if tt.err.Status() != tt.status || tt.err.Code() != tt.code || tt.err.ClientDescription() != tt.desc {
			t.Errorf("%s: %d %q %q, want %d %q %q", tt.err.Reason,
				tt.err.Status(), tt.err.Code(), tt.err.ClientDescription(), tt.status, tt.code, tt.desc)
		}
		if tt.err.Status() == 500 {
			t.Errorf("%s answers 500", tt.err.Reason)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	cause := errors.New("boom")
	e := &middleware.Error{Reason: middleware.ReasonExpired, Description: "custom", Detail: "expired 2s ago", Err: cause}
	if got, want := e.Error(), "tokenward: custom (expired 2s ago): boom"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, cause) || !errors.Is(e, middleware.ErrExpired) || errors.Is(e, middleware.ErrAudience) {
		t.Error("errors.Is does not follow Unwrap and Reason")
	}
	if e.ClientDescription() != "custom" {
		t.Errorf("ClientDescription() = %q", e.ClientDescription())
	}
	if got := middleware.ErrExpired.Error(); got != "tokenward: token expired" {
		t.Errorf("sentinel Error() = %q", got)
	}
	// errors.Is matches by reason, not identity; a plain error never matches.
	if errors.Is(errors.New("tokenward: token expired"), middleware.ErrExpired) {
		t.Error("a plain error matched a sentinel")
	}
	wrapped := fmt.Errorf("proxy: %w", e)
	var got *middleware.Error
	if !errors.As(wrapped, &got) || got != e || !errors.Is(wrapped, middleware.ErrExpired) {
		t.Error("a wrapped *Error is not found")
	}
}

// The leeway applies exactly at the boundary of exp, nbf and iat, by the
// injected clock.
func TestLeewayBoundary(t *testing.T) {
	key := newKey(t, "RS256")
	set := staticSet(t, key)
	at := epoch // the instant every claim under test names
	tok := func(extra map[string]any) string {
		c := claimsAt(tenant, at.Add(-time.Hour), map[string]any{"exp": at.Add(time.Hour).Unix()})
		for k, v := range extra {
			c[k] = v
		}
		return sign(t, key, nil, c)
	}
	const ns = time.Nanosecond
	tests := []struct {
		name   string
		leeway time.Duration
		now    time.Time
		token  string
		want   *middleware.Error
	}{
		{"exp: inside the default leeway", 0, at.Add(middleware.DefaultLeeway - ns), tok(map[string]any{"exp": at.Unix()}), nil},
		{"exp: at the end of the default leeway", 0, at.Add(middleware.DefaultLeeway), tok(map[string]any{"exp": at.Unix()}), middleware.ErrExpired},
		{"exp: custom leeway, inside", 5 * time.Second, at.Add(5*time.Second - ns), tok(map[string]any{"exp": at.Unix()}), nil},
		{"exp: custom leeway, at the end", 5 * time.Second, at.Add(5 * time.Second), tok(map[string]any{"exp": at.Unix()}), middleware.ErrExpired},
		{"exp: no leeway, just before", -1, at.Add(-ns), tok(map[string]any{"exp": at.Unix()}), nil},
		{"exp: no leeway, at exp", -1, at, tok(map[string]any{"exp": at.Unix()}), middleware.ErrExpired},
		{"exp: fractional", -1, at.Add(500 * time.Millisecond), tok(map[string]any{"exp": float64(at.Unix()) + 0.5}), middleware.ErrExpired},
		{"exp: fractional, before", -1, at.Add(499 * time.Millisecond), tok(map[string]any{"exp": float64(at.Unix()) + 0.5}), nil},
		{"nbf: at the start of the leeway", 0, at.Add(-middleware.DefaultLeeway), tok(map[string]any{"nbf": at.Unix()}), nil},
		{"nbf: before the leeway", 0, at.Add(-middleware.DefaultLeeway - ns), tok(map[string]any{"nbf": at.Unix()}), middleware.ErrNotYetValid},
		{"nbf: no leeway, at nbf", -1, at, tok(map[string]any{"nbf": at.Unix()}), nil},
		{"nbf: no leeway, just before", -1, at.Add(-ns), tok(map[string]any{"nbf": at.Unix()}), middleware.ErrNotYetValid},
		{"iat: at the start of the leeway", 0, at.Add(-middleware.DefaultLeeway), tok(map[string]any{"iat": at.Unix()}), nil},
		{"iat: before the leeway", 0, at.Add(-middleware.DefaultLeeway - ns), tok(map[string]any{"iat": at.Unix()}), middleware.ErrIssuedInFuture},
		{"iat: custom leeway", 2 * time.Minute, at.Add(-2 * time.Minute), tok(map[string]any{"iat": at.Unix()}), nil},
		{"iat: custom leeway, before", 2 * time.Minute, at.Add(-2*time.Minute - ns), tok(map[string]any{"iat": at.Unix()}), middleware.ErrIssuedInFuture},
		{"exp as a string", 0, at, tok(map[string]any{"exp": fmt.Sprint(at.Add(time.Hour).Unix())}), middleware.ErrMalformed},
		{"nbf as a string", 0, at, tok(map[string]any{"nbf": "0"}), middleware.ErrMalformed},
		{"exp absurdly far", 0, at, tok(map[string]any{"exp": 1e300}), middleware.ErrMalformed},
		{"exp a boolean", 0, at, tok(map[string]any{"exp": true}), middleware.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			v := newValidator(t, []middleware.Issuer{{URL: tenant, Keys: set}}, middleware.ValidatorOptions{
				Leeway: tt.leeway,
				Now:    func() time.Time { return now },
			})
			claims, err := v.Validate(testContext(t), tt.token)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() at %v: %v", now.Sub(at), err)
				}
				return
			}
			wantReason(t, claims, err, tt.want, tt.token)
		})
	}
}

func TestAudience(t *testing.T) {
	key := newKey(t, "RS256")
	set := staticSet(t, key)
	now := func() time.Time { return epoch }
	one := newValidator(t, []middleware.Issuer{{URL: tenant, Keys: set}}, middleware.ValidatorOptions{Now: now})
	two, err := middleware.NewValidator([]middleware.Issuer{{URL: tenant, Keys: set}},
		[]string{"https://billing.example.com", audience}, middleware.ValidatorOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	auth0 := []string{audience, tenant + "userinfo"}
	tests := []struct {
		name string
		v    *middleware.Validator
		aud  any
		want []string // nil: refused
	}{
		{"string", one, audience, []string{audience}},
		{"Auth0 array", one, auth0, auth0},
		{"array, ours second", one, []string{tenant + "userinfo", audience}, []string{tenant + "userinfo", audience}},
		{"array of one", one, []string{audience}, []string{audience}},
		{"array, none ours", one, []string{tenant + "userinfo", "https://other.example.com"}, nil},
		{"second configured audience", two, "https://billing.example.com", []string{"https://billing.example.com"}},
		{"Auth0 array, two configured", two, auth0, auth0},
		{"empty string", one, "", nil},
		{"array with a number", one, []any{audience, 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"aud": tt.aud}))
			claims, err := tt.v.Validate(testContext(t), tok)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("aud %v accepted", tt.aud)
				}
				if !errors.Is(err, middleware.ErrAudience) && !errors.Is(err, middleware.ErrMalformed) {
					t.Errorf("aud %v: %v, want audience or malformed", tt.aud, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("aud %v: %v", tt.aud, err)
			}
			if !slices.Equal(claims.Audience, tt.want) {
				t.Errorf("Audience = %q, want %q", claims.Audience, tt.want)
			}
		})
	}
}

func TestScopes(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	tests := []struct {
		name  string
		extra map[string]any
		want  []string // nil: no scopes
	}{
		{"none", nil, nil},
		{"scope", map[string]any{"scope": "openid read:contacts write:contacts"}, []string{"openid", "read:contacts", "write:contacts"}},
		{"scope with extra spaces", map[string]any{"scope": " read:contacts  openid "}, []string{"openid", "read:contacts"}},
		{"scp string", map[string]any{"scp": "read:contacts openid"}, []string{"openid", "read:contacts"}},
		{"scp array", map[string]any{"scp": []string{"read:contacts", "openid"}}, []string{"openid", "read:contacts"}},
		{"permissions", map[string]any{"permissions": []string{"read:contacts", "delete:contacts"}}, []string{"delete:contacts", "read:contacts"}},
		{"Auth0 RBAC: scope and permissions", map[string]any{
			"scope":       "openid profile read:contacts",
			"permissions": []string{"read:contacts", "write:contacts"},
		}, []string{"openid", "profile", "read:contacts", "write:contacts"}},
		{"all three", map[string]any{"scope": "a", "scp": []string{"b"}, "permissions": []string{"c"}}, []string{"a", "b", "c"}},
		{"empty permissions", map[string]any{"permissions": []string{}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims, err := v.Validate(testContext(t), sign(t, key, nil, claimsAt(tenant, epoch, tt.extra)))
			if err != nil {
				t.Fatal(err)
			}
			if got := claims.Scopes.List(); !slices.Equal(got, tt.want) {
				t.Errorf("Scopes = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestScopeClaimTypes(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	for _, extra := range []map[string]any{
		{"scp": 1},
		{"scope": []any{"a", 1}},
		{"permissions": map[string]any{"read": true}},
		{"scope": true},
	} {
		tok := sign(t, key, nil, claimsAt(tenant, epoch, extra))
		claims, err := v.Validate(testContext(t), tok)
		wantReason(t, claims, err, middleware.ErrMalformed, tok)
	}
}

func TestClaimsFields(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	tok := sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{
		"aud":       []string{audience, tenant + "userinfo"},
		"nbf":       epoch.Add(-time.Minute).Unix(),
		"jti":       "c1f1b5c0",
		"azp":       "azp-client",
		"client_id": "the-client",
		"scope":     "read:contacts",
	}))
	c, err := v.Validate(testContext(t), tok)
	if err != nil {
		t.Fatal(err)
	}
	want := middleware.Claims{
		Issuer:    tenant,
		Subject:   "auth0|5f7c8ec7c33c6c004bbafe82",
		Audience:  []string{audience, tenant + "userinfo"},
		ExpiresAt: epoch.Add(time.Hour),
		NotBefore: epoch.Add(-time.Minute),
		IssuedAt:  epoch,
		ID:        "c1f1b5c0",
		ClientID:  "the-client",
	}
	if c.Issuer != want.Issuer || c.Subject != want.Subject || !slices.Equal(c.Audience, want.Audience) ||
		!c.ExpiresAt.Equal(want.ExpiresAt) || !c.NotBefore.Equal(want.NotBefore) || !c.IssuedAt.Equal(want.IssuedAt) ||
		c.ID != want.ID || c.ClientID != want.ClientID || !c.Scopes.Has("read:contacts") {
		t.Errorf("claims = %+v\nwant %+v", c, want)
	}

	// client_id (RFC 9068) wins; azp is the fallback; absent nbf is zero.
	c, err = v.Validate(testContext(t), sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"azp": "azp-client"})))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientID != "azp-client" || !c.NotBefore.IsZero() || c.ID != "" {
		t.Errorf("ClientID %q NotBefore %v ID %q", c.ClientID, c.NotBefore, c.ID)
	}

	// JSON is a copy: changing it changes nothing.
	j := c.JSON()
	_, payload, _ := segments(t, sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"azp": "azp-client"})))
	if want, _ := b64.DecodeString(payload); string(j) != string(want) {
		t.Errorf("JSON() = %s, want %s", j, want)
	}
	for i := range j {
		j[i] = 'x'
	}
	var again struct{ Sub string }
	if err := c.Decode(&again); err != nil || again.Sub != "auth0|5f7c8ec7c33c6c004bbafe82" {
		t.Errorf("Decode after changing JSON(): %q, %v", again.Sub, err)
	}
}

// Custom claims are read with Claims.Decode, namespaced as Auth0 requires.
func TestClaimsDecode(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	tok := sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{
		"https://example.com/roles":  []string{"admin", "editor"},
		"https://example.com/tenant": map[string]any{"id": 42, "plan": "gold"},
	}))
	c, err := v.Validate(testContext(t), tok)
	if err != nil {
		t.Fatal(err)
	}
	var custom struct {
		Roles  []string `json:"https://example.com/roles"`
		Tenant struct {
			ID   int    `json:"id"`
			Plan string `json:"plan"`
		} `json:"https://example.com/tenant"`
		Subject string `json:"sub"`
	}
	if err := c.Decode(&custom); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(custom.Roles, []string{"admin", "editor"}) || custom.Tenant.ID != 42 || custom.Tenant.Plan != "gold" ||
		custom.Subject != c.Subject {
		t.Errorf("decoded %+v", custom)
	}
	// A claim of the wrong type is the caller's decode error, not a panic.
	var wrong struct {
		Roles string `json:"https://example.com/roles"`
	}
	if err := c.Decode(&wrong); err == nil {
		t.Error("decoding an array into a string succeeded")
	}
	var nilClaims *middleware.Claims
	if err := nilClaims.Decode(&custom); err == nil {
		t.Error("Decode on nil claims succeeded")
	}
	if err := (&middleware.Claims{}).Decode(&custom); err == nil {
		t.Error("Decode on empty claims succeeded")
	}
	if nilClaims.JSON() != nil {
		t.Error("JSON() on nil claims is not nil")
	}
}

func TestRequireATJWT(t *testing.T) {
	key := newKey(t, "RS256")
	strict := staticFixture(t, key, middleware.ValidatorOptions{RequireATJWT: true})
	loose := staticFixture(t, key, middleware.ValidatorOptions{})
	tests := []struct {
		typ         any // nil: absent
		strict, lax bool
	}{
		{"at+jwt", true, true},
		{"AT+JWT", true, true},
		{"application/at+jwt", true, true},
		{"JWT", false, true},
		{"jwt", false, true},
		{nil, false, true},
		{"dpop+jwt", false, false},
		{"logout+jwt", false, false},
		{"at+jwt+dpop", false, false},
		{"application/jwt", false, false},
	}
	for _, tt := range tests {
		tok := sign(t, key, map[string]any{"typ": tt.typ}, claimsAt(tenant, epoch, nil))
		for _, c := range []struct {
			name string
			v    *middleware.Validator
			ok   bool
		}{{"RequireATJWT", strict, tt.strict}, {"default", loose, tt.lax}} {
			claims, err := c.v.Validate(testContext(t), tok)
			if c.ok {
				if err != nil {
					t.Errorf("%s, typ %v: %v", c.name, tt.typ, err)
				}
				continue
			}
			e := wantReason(t, claims, err, middleware.ErrType, tok)
			if c.v == strict && e.ClientDescription() != "token type must be at+jwt" {
				t.Errorf("%s, typ %v: description %q", c.name, tt.typ, e.ClientDescription())
			}
		}
	}
}

// A rejected issuer says, in Detail, what probably went wrong, and Detail
// never reaches the client.
func TestIssuerHints(t *testing.T) {
	key := newKey(t, "RS256")
	const custom = "https://login.northwind.com/"
	v := newValidator(t, []middleware.Issuer{{URL: custom, Keys: staticSet(t, key)}},
		middleware.ValidatorOptions{Now: func() time.Time { return epoch }})
	tests := []struct {
		iss  any
		want string
	}{
		{"https://login.northwind.com", "only by a trailing slash"},
		{"http://login.northwind.com/", "only by its scheme"},
		{"https://LOGIN.northwind.com/", "only in letter case"},
		{"https://northwind.auth0.com/", "is an Auth0 tenant domain, but only a custom domain is trusted"},
		{"https://northwind.eu.auth0.com/", "is an Auth0 tenant domain"},
		{nil, "token has no iss claim"},
		{"https://evil.example.com/", `is not a trusted issuer ["https://login.northwind.com/"]`},
	}
	for _, tt := range tests {
		tok := sign(t, key, nil, claimsAt(custom, epoch, map[string]any{"iss": tt.iss}))
		claims, err := v.Validate(testContext(t), tok)
		e := wantReason(t, claims, err, middleware.ErrIssuer, tok)
		if !strings.Contains(e.Detail, tt.want) {
			t.Errorf("iss %v: Detail %q, want %q", tt.iss, e.Detail, tt.want)
		}
		rec := httptest.NewRecorder()
		middleware.WriteError(rec, "api", e)
		if strings.Contains(rec.Body.String(), e.Detail) || strings.Contains(rec.Header().Get("WWW-Authenticate"), e.Detail) ||
			(tt.iss != nil && strings.Contains(rec.Body.String(), tt.iss.(string))) {
			t.Errorf("iss %v: the answer shows the detail: %v %s", tt.iss, rec.Header(), rec.Body)
		}
	}
	// A long iss is shortened in the hint.
	long := "https://" + strings.Repeat("a", 5000) + ".example.com/"
	tok := sign(t, key, nil, claimsAt(custom, epoch, map[string]any{"iss": long}))
	claims, err := v.Validate(testContext(t), tok)
	if e := wantReason(t, claims, err, middleware.ErrIssuer, tok); len(e.Detail) > 400 {
		t.Errorf("Detail is %d bytes", len(e.Detail))
	}
}

// Several issuers: each token is verified with the keys of the issuer it
// names, and only those.
func TestIssuersBoundToTheirKeys(t *testing.T) {
	a, b := startIssuer(t, jwkstest.Options{}), startIssuer(t, jwkstest.Options{})
	v := newValidator(t, []middleware.Issuer{
		{URL: a.URL(), Keys: remoteFor(t, a, jwks.RemoteOptions{RefreshInterval: time.Hour})},
		{URL: b.URL(), Keys: remoteFor(t, b, jwks.RemoteOptions{RefreshInterval: time.Hour})},
	}, middleware.ValidatorOptions{})
	for _, iss := range []*jwkstest.Issuer{a, b} {
		c, err := v.Validate(testContext(t), mintFor(t, iss, nil))
		if err != nil || c.Issuer != iss.URL() {
			t.Errorf("token of %s: %v, %v", iss.URL(), c, err)
		}
	}
	// B's key, B's kid, A's iss: A's set does not have the kid.
	tok, err := b.Mint(b.Claims(audience, map[string]any{"iss": a.URL()}))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Validate(testContext(t), tok)
	wantReason(t, claims, err, middleware.ErrUnknownKey, tok)
	// B's key, A's kid, A's iss: A's key does not verify it.
	tok, err = b.MintWithHeader(map[string]any{"kid": a.SigningKey().ID}, b.Claims(audience, map[string]any{"iss": a.URL()}))
	if err != nil {
		t.Fatal(err)
	}
	claims, err = v.Validate(testContext(t), tok)
	wantReason(t, claims, err, middleware.ErrSignature, tok)
}

func TestMaxTokenBytes(t *testing.T) {
	key := newKey(t, "RS256")
	tok := sign(t, key, nil, claimsAt(tenant, epoch, nil))
	exact := staticFixture(t, key, middleware.ValidatorOptions{MaxTokenBytes: len(tok)})
	if exact.MaxTokenBytes() != len(tok) {
		t.Errorf("MaxTokenBytes() = %d", exact.MaxTokenBytes())
	}
	if _, err := exact.Validate(testContext(t), tok); err != nil {
		t.Errorf("token of exactly MaxTokenBytes: %v", err)
	}
	short := staticFixture(t, key, middleware.ValidatorOptions{MaxTokenBytes: len(tok) - 1})
	claims, err := short.Validate(testContext(t), tok)
	wantReason(t, claims, err, middleware.ErrTooLarge, tok)
	if d := staticFixture(t, key, middleware.ValidatorOptions{}); d.MaxTokenBytes() != middleware.DefaultMaxTokenBytes {
		t.Errorf("default MaxTokenBytes() = %d", d.MaxTokenBytes())
	}
}

// Other algorithms verify with keys of their own kind.
func TestAlgorithms(t *testing.T) {
	for _, alg := range []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			key := newKey(t, alg)
			v := staticFixture(t, key, middleware.ValidatorOptions{Algorithms: []string{alg}})
			tok := sign(t, key, nil, claimsAt(tenant, epoch, nil))
			if _, err := v.Validate(testContext(t), tok); err != nil {
				t.Fatalf("%s token: %v", alg, err)
			}
			h, c, s := segments(t, tok)
			sig, _ := b64.DecodeString(s)
			sig[len(sig)/2] ^= 1
			bad := h + "." + c + "." + b64.EncodeToString(sig)
			claims, err := v.Validate(testContext(t), bad)
			wantReason(t, claims, err, middleware.ErrSignature, bad)
			// Not on the allow-list: refused before any key work.
			if alg != "RS256" {
				claims, err = staticFixture(t, key, middleware.ValidatorOptions{}).Validate(testContext(t), tok)
				wantReason(t, claims, err, middleware.ErrAlgorithm, tok)
			}
		})
	}
}

// Every configuration problem is reported at once.
func TestNewValidatorConfig(t *testing.T) {
	set := stubKeys{}
	_, err := middleware.NewValidator(
		[]middleware.Issuer{
			{URL: "http://tenant.example.com/", Keys: set},
			{URL: "https://a.example.com/", Keys: nil},
			{URL: "https://b.example.com/", Keys: set},
			{URL: "https://b.example.com/", Keys: set},
		},
		[]string{""},
		middleware.ValidatorOptions{Algorithms: []string{"none", "HS256", "RS256"}, MaxTokenBytes: -1},
	)
	if err == nil {
		t.Fatal("NewValidator succeeded")
	}
	for _, want := range []string{
		`"http://tenant.example.com/" must use https`,
		`issuer "https://a.example.com/" has no key set`,
		`issuer "https://b.example.com/" given twice`,
		"empty audience",
		`algorithm "none" not supported`,
		`algorithm "HS256" not supported`,
		"negative maximum token size",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	for _, tt := range []struct {
		issuers   []middleware.Issuer
		audiences []string
		opts      middleware.ValidatorOptions
		want      string
	}{
		{nil, []string{audience}, middleware.ValidatorOptions{}, "no trusted issuers"},
		{[]middleware.Issuer{{URL: tenant, Keys: set}}, nil, middleware.ValidatorOptions{}, "no accepted audiences"},
		{[]middleware.Issuer{{URL: tenant, Keys: set}}, []string{audience}, middleware.ValidatorOptions{Algorithms: []string{}}, "empty algorithm list"},
		{[]middleware.Issuer{{URL: tenant, Keys: set}}, []string{audience}, middleware.ValidatorOptions{Algorithms: []string{"HS512"}}, "not supported"},
		{[]middleware.Issuer{{URL: tenant, Keys: set}}, []string{audience}, middleware.ValidatorOptions{Algorithms: []string{"None"}}, "not supported"},
	} {
		if _, err := middleware.NewValidator(tt.issuers, tt.audiences, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewValidator(%v, %q, %+v) = %v, want %q", tt.issuers, tt.audiences, tt.opts, err, tt.want)
		}
	}
}

// opaqueStub vouches for every opaque token with the same claims, or fails
// with err.
type opaqueStub struct {
	claims middleware.Claims
	err    error
}

func (o opaqueStub) CheckOpaque(context.Context, string) (*middleware.Claims, error) {
	if o.err != nil {
		return nil, o.err
	}
	c := o.claims
	return &c, nil
}

// The exp boundary is the same whether a token is verified, answered from
// the cache, or vouched for by the issuer (opaque).
func TestExpBoundaryOnEveryPath(t *testing.T) {
	key := newKey(t, "RS256")
	set := staticSet(t, key)
	exp := epoch
	var now time.Time
	clock := func() time.Time { return now }
	jwt := sign(t, key, nil, claimsAt(tenant, exp.Add(-time.Hour), map[string]any{"exp": exp.Unix()}))
	const opaque = "2YotnFZFEjr1zCsicMWpAA"
	tests := []struct {
		name  string
		opts  middleware.ValidatorOptions
		token string
	}{
		{"verified", middleware.ValidatorOptions{}, jwt},
		{"cached", middleware.ValidatorOptions{CacheSize: 10}, jwt},
		{"opaque", middleware.ValidatorOptions{Opaque: opaqueStub{claims: middleware.Claims{
			Issuer: tenant, Audience: []string{audience}, ExpiresAt: exp, Kind: middleware.KindIntrospection,
		}}}, opaque},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Now = clock
			v := newValidator(t, []middleware.Issuer{{URL: tenant, Keys: set}}, tt.opts)
			for _, at := range []time.Duration{-time.Second, -time.Nanosecond} {
				now = exp.Add(middleware.DefaultLeeway + at)
				if _, err := v.Validate(testContext(t), tt.token); err != nil {
					t.Fatalf("%v before the end of the leeway: %v", -at, err)
				}
			}
			if tt.opts.CacheSize > 0 && v.CacheStats().Hits == 0 {
				t.Fatal("the second validation was not a cache hit")
			}
			now = exp.Add(middleware.DefaultLeeway)
			claims, err := v.Validate(testContext(t), tt.token)
			wantReason(t, claims, err, middleware.ErrExpired, tt.token)
		})
	}
}
