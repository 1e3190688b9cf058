package jwkstest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks/jwkstest"
)

// introspect POSTs token to the issuer's introspection endpoint with the
// given client credentials ("" id: none) and returns the status and the
// decoded JSON answer (nil when it is not JSON).
func introspect(t *testing.T, iss *jwkstest.Issuer, id, secret, token string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"token": {token}}
	req, err := http.NewRequest(http.MethodPost, iss.IntrospectionURL(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return doJSON(t, req)
}

// userinfo GETs the issuer's /userinfo with token as bearer ("" none).
func userinfo(t *testing.T, iss *jwkstest.Issuer, token string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, iss.UserInfoURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return doJSON(t, req)
}

func doJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if json.Unmarshal(body, &m) != nil {
		m = nil
	}
	return resp.StatusCode, m
}

func TestIntrospection(t *testing.T) {
	iss := newIssuer(t)
	const id, secret = "resource-server", "s3cr:t &+ more"
	iss.SetIntrospectionClient(id, secret)
	const aud = "https://api.example.com"

	active := iss.MintOpaque(iss.Claims(aud, map[string]any{"scope": "read:contacts", "client_id": "app"}))
	revoked := iss.MintOpaque(iss.Claims(aud, nil))
	iss.RevokeOpaque(revoked)
	expired := iss.MintOpaque(iss.Claims(aud, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}))
	jwt, err := iss.Mint(iss.Claims(aud, map[string]any{"scope": "a b"}))
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := jwkstest.NewKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := stranger.Sign(nil, iss.Claims(aud, nil))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, token string
		active      bool
	}{
		{"active opaque", active, true},
		{"revoked opaque", revoked, false},
		{"expired opaque", expired, false},
		{"unknown opaque", "bm90LWEtdG9rZW4", false},
		{"JWT of the issuer", jwt, true},
		{"JWT of another key", foreign, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, answer := introspect(t, iss, id, secret, tc.token)
			if status != http.StatusOK {
				t.Fatalf("status %d", status)
			}
			if answer["active"] != tc.active {
				t.Fatalf("active = %v, want %v (%v)", answer["active"], tc.active, answer)
			}
			if !tc.active && len(answer) != 1 {
				t.Errorf("inactive answer tells more than active: %v", answer)
			}
			if tc.active && (answer["iss"] != iss.URL() || answer["aud"] != aud || answer["sub"] != "auth0|test-user") {
				t.Errorf("answer %v lacks the token's claims", answer)
			}
		})
	}
	status, answer := introspect(t, iss, id, secret, active)
	if status != http.StatusOK || answer["scope"] != "read:contacts" || answer["client_id"] != "app" {
		t.Errorf("answer %d %v", status, answer)
	}
}

func TestIntrospectionClientAuthentication(t *testing.T) {
	iss := newIssuer(t)
	token := iss.MintOpaque(iss.Claims("https://api.example.com", nil))
	if status, answer := introspect(t, iss, "rs", "secret", token); status != http.StatusUnauthorized || answer["error"] != "invalid_client" {
		t.Errorf("before SetIntrospectionClient: %d %v, want 401 invalid_client", status, answer)
	}
	iss.SetIntrospectionClient("rs", "secret")
	for _, tc := range []struct {
		name, id, secret string
		want             int
	}{
		{"right", "rs", "secret", http.StatusOK},
		{"wrong secret", "rs", "secreT", http.StatusUnauthorized},
		{"wrong client", "rs2", "secret", http.StatusUnauthorized},
		{"no credentials", "", "", http.StatusUnauthorized},
	} {
		if status, _ := introspect(t, iss, tc.id, tc.secret, token); status != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, status, tc.want)
		}
	}
	if status, answer := introspect(t, iss, "rs", "secret", ""); status != http.StatusBadRequest || answer["error"] != "invalid_request" {
		t.Errorf("no token: %d %v, want 400 invalid_request", status, answer)
	}
	if status, _, _ := get(t, iss.IntrospectionURL()); status != http.StatusMethodNotAllowed {
		t.Errorf("GET introspection: %d, want 405", status)
	}
}

func TestUserInfo(t *testing.T) {
	iss := newIssuer(t)
	const aud = "https://api.example.com"
	extra := map[string]any{"email": "ada@example.com", "scope": "openid email"}
	opaque := iss.MintOpaque(iss.Claims(aud, extra))
	revoked := iss.MintOpaque(iss.Claims(aud, extra))
	iss.RevokeOpaque(revoked)
	jwt, err := iss.Mint(iss.Claims(aud, extra))
	if err != nil {
		t.Fatal(err)
	}
	expiredJWT, err := iss.Mint(iss.Claims(aud, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}))
	if err != nil {
		t.Fatal(err)
	}
	other := newIssuer(t)
	otherJWT, err := other.Mint(other.Claims(aud, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"opaque", opaque, http.StatusOK},
		{"JWT", jwt, http.StatusOK},
		{"revoked opaque", revoked, http.StatusUnauthorized},
		{"unknown opaque", "bm90LWEtdG9rZW4", http.StatusUnauthorized},
		{"expired JWT", expiredJWT, http.StatusUnauthorized},
		{"JWT of another issuer", otherJWT, http.StatusUnauthorized},
		{"no token", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, profile := userinfo(t, iss, tc.token)
			if status != tc.want {
				t.Fatalf("status %d, want %d", status, tc.want)
			}
			if status != http.StatusOK {
				return
			}
			if profile["sub"] != "auth0|test-user" || profile["email"] != "ada@example.com" {
				t.Errorf("profile %v lacks sub and email", profile)
			}
			for _, name := range []string{"iss", "aud", "exp", "iat", "scope"} {
				if _, ok := profile[name]; ok {
					t.Errorf("profile has the token claim %q", name)
				}
			}
		})
	}
	req, err := http.NewRequest(http.MethodGet, iss.UserInfoURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
	}
}

func TestOpaqueEndpointsInDiscovery(t *testing.T) {
	iss := newIssuer(t)
	status, _, body := get(t, iss.DiscoveryURL())
	var d map[string]any
	if err := json.Unmarshal(body, &d); status != http.StatusOK || err != nil {
		t.Fatalf("discovery: %d %v", status, err)
	}
	if d["userinfo_endpoint"] != iss.UserInfoURL() || d["introspection_endpoint"] != iss.IntrospectionURL() {
		t.Errorf("discovery lists userinfo %v, introspection %v", d["userinfo_endpoint"], d["introspection_endpoint"])
	}
}

func TestOpaqueEndpointsMisbehave(t *testing.T) {
	iss := newIssuer(t)
	iss.SetIntrospectionClient("rs", "secret")
	token := iss.MintOpaque(iss.Claims("https://api.example.com", nil))

	iss.SetGarbage(true)
	if status, answer := introspect(t, iss, "rs", "secret", token); status != http.StatusOK || answer != nil {
		t.Errorf("garbage introspection: %d %v, want 200 and no JSON", status, answer)
	}
	if status, answer := userinfo(t, iss, token); status != http.StatusOK || answer != nil {
		t.Errorf("garbage userinfo: %d %v, want 200 and no JSON", status, answer)
	}
	iss.SetDown(true)
	if status, _ := introspect(t, iss, "rs", "secret", token); status != http.StatusServiceUnavailable {
		t.Errorf("down introspection: %d, want 503", status)
	}
	if status, _ := userinfo(t, iss, token); status != http.StatusServiceUnavailable {
		t.Errorf("down userinfo: %d, want 503", status)
	}
	if got := iss.IntrospectionRequests(); got != 2 {
		t.Errorf("IntrospectionRequests() = %d, want 2", got)
	}
	if got := iss.UserInfoRequests(); got != 2 {
		t.Errorf("UserInfoRequests() = %d, want 2", got)
	}

	// SetDelay holds the answers; the Wait helpers see the requests arrive.
	iss.SetDown(false)
	iss.SetGarbage(false)
	iss.SetDelay(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := goGet(ctx, iss.UserInfoURL())
	if err := iss.WaitUserInfoRequests(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	cancel()
	if r := await(t, "held GET", held); r.err == nil {
		t.Errorf("held userinfo answered %d", r.status)
	}
	errc := make(chan error, 1)
	go func() { errc <- iss.WaitIntrospectionRequests(context.Background(), 3) }()
	iss.Close()
	if err := await(t, "Wait", errc); !errors.Is(err, jwkstest.ErrClosed) {
		t.Errorf("WaitIntrospectionRequests after Close: %v, want ErrClosed", err)
	}
}
