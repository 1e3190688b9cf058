package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
)

// TestEnvKeys pins the variables the binary reads: the README documents
// exactly these.
func TestEnvKeys(t *testing.T) {
	want := []string{
		"TOKENWARD_ACCESS_LOG",
		"TOKENWARD_ADMIN_ADDR",
		"TOKENWARD_ALGORITHMS",
		"TOKENWARD_AUDIENCES",
		"TOKENWARD_CACHE_MAX_BYTES",
		"TOKENWARD_CACHE_SIZE",
		"TOKENWARD_CLAIM_HEADERS",
		"TOKENWARD_ISSUERS",
		"TOKENWARD_JWKS_MIN_REFRESH_INTERVAL",
		"TOKENWARD_JWKS_REFRESH_INTERVAL",
		"TOKENWARD_JWKS_URIS",
		"TOKENWARD_LEEWAY",
		"TOKENWARD_LISTEN_ADDR",
		"TOKENWARD_LOG_FORMAT",
		"TOKENWARD_LOG_LEVEL",
		"TOKENWARD_MAX_TOKEN_BYTES",
		"TOKENWARD_MODE",
		"TOKENWARD_REALM",
		"TOKENWARD_REQUIRED_SCOPES",
		"TOKENWARD_REQUIRE_AT_JWT",
		"TOKENWARD_RULES_FILE",
		"TOKENWARD_SCOPES_HEADER",
		"TOKENWARD_SHUTDOWN_GRACE",
		"TOKENWARD_STRIP_AUTHORIZATION",
		"TOKENWARD_UPSTREAM",
		"TOKENWARD_UPSTREAM_TIMEOUT",
	}
	got := envKeys()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("variables:\n got %q\nwant %q", got, want)
	}
}

// TestDefaults: only the required variables set, everything else is the
// documented default.
func TestDefaults(t *testing.T) {
	c, err := loadConfig(mapGetenv(map[string]string{
		"TOKENWARD_ISSUERS":   "https://tenant.auth0.com/",
		"TOKENWARD_AUDIENCES": "https://api.example.com",
		"TOKENWARD_UPSTREAM":  "http://127.0.0.1:3000",
	}), forServing)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if !equal(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("algorithms", c.Algorithms, []string{"RS256"})
	check("leeway", c.Leeway, 30*time.Second)
	check("mode", c.Mode, "proxy")
	check("listen", c.ListenAddr, ":8080")
	check("admin", c.AdminAddr, ":9090")
	check("claim headers", c.claimHeaders, []proxy.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}})
	check("strip", c.StripAuthorization, false)
	check("refresh", c.JWKSRefreshInterval, 5*time.Minute)
	check("min refresh", c.JWKSMinRefreshInterval, 10*time.Second)
	check("max token", c.MaxTokenBytes, 16384)
	check("cache size", c.CacheSize, 100000)
	check("cache bytes", c.CacheMaxBytes, int64(64<<20))
	check("grace", c.ShutdownGrace, 25*time.Second)
	check("log format", c.LogFormat, "json")
	check("log level", c.logLevel.String(), "INFO")
	check("access log", c.AccessLog, false)
	check("scopes header", c.ScopesHeader, "")
	check("require at+jwt", c.RequireATJWT, false)
	check("realm", c.Realm, "api")
	check("upstream timeout", c.UpstreamTimeout, time.Duration(0))
	check("required", c.required.IsZero(), true)
	check("rules", c.rules.Len(), 0)
	check("jwks", len(c.jwksURLs), 0)
	if o := c.validatorOptions(); o.Leeway != 30*time.Second || o.MaxTokenBytes != 16384 || o.CacheSize != 100000 || o.CacheMaxBytes != 64<<20 {
		t.Errorf("validator options %+v", o)
	}
}

func equal(a, b any) bool {
	switch a := a.(type) {
	case []string:
		return slices.Equal(a, b.([]string))
	case []proxy.ClaimHeader:
		return slices.Equal(a, b.([]proxy.ClaimHeader))
	}
	return a == b
}

func TestListsAndValues(t *testing.T) {
	c, err := loadConfig(mapGetenv(map[string]string{
		"TOKENWARD_ISSUERS":         " https://a.example.com/ ,, https://b.example.com/ ",
		"TOKENWARD_AUDIENCES":       "https://api.example.com,  urn:api ",
		"TOKENWARD_ALGORITHMS":      "RS256, ES256",
		"TOKENWARD_REQUIRED_SCOPES": "read:a, write:b openid",
		"TOKENWARD_LEEWAY":          "0",
		"TOKENWARD_MODE":            "forward-auth",
		"TOKENWARD_LOG_LEVEL":       "DEBUG",
		"TOKENWARD_JWKS_URIS":       "https://a.example.com/=https://keys.example.com/a.json?x=1,https://b.example.com/=https://keys.example.com/b.json",
	}), forServing)
	if err == nil {
		t.Fatal("a key set URL with a query was accepted")
	}
	if !strings.Contains(err.Error(), "TOKENWARD_JWKS_URIS: key set of https://a.example.com/") {
		t.Errorf("error %v", err)
	}

	c, err = loadConfig(mapGetenv(map[string]string{
		"TOKENWARD_ISSUERS":         " https://a.example.com/ ,, https://b.example.com/ ",
		"TOKENWARD_AUDIENCES":       "https://api.example.com,  urn:api ",
		"TOKENWARD_ALGORITHMS":      "RS256, ES256",
		"TOKENWARD_REQUIRED_SCOPES": "read:a, write:b openid",
		"TOKENWARD_LEEWAY":          "0",
		"TOKENWARD_MODE":            "forward-auth",
		"TOKENWARD_LOG_LEVEL":       "DEBUG",
		"TOKENWARD_JWKS_URIS":       "https://b.example.com/=https://keys.example.com/b.json",
	}), forServing)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://a.example.com/", "https://b.example.com/"}; !slices.Equal(c.Issuers, want) {
		t.Errorf("issuers %q", c.Issuers)
	}
	if want := []string{"https://api.example.com", "urn:api"}; !slices.Equal(c.Audiences, want) {
		t.Errorf("audiences %q", c.Audiences)
	}
	if want := []string{"RS256", "ES256"}; !slices.Equal(c.Algorithms, want) {
		t.Errorf("algorithms %q", c.Algorithms)
	}
	if got := c.required.String(); got != "openid read:a write:b" {
		t.Errorf("required %q", got)
	}
	if o := c.validatorOptions(); o.Leeway >= 0 {
		t.Errorf("TOKENWARD_LEEWAY=0 gives validator leeway %v, want none (negative)", o.Leeway)
	}
	if c.jwksURLs["https://b.example.com/"] != "https://keys.example.com/b.json" {
		t.Errorf("jwks %v", c.jwksURLs)
	}
	if c.logLevel.String() != "DEBUG" {
		t.Errorf("log level %v", c.logLevel)
	}
}

func TestSplitJWKSPair(t *testing.T) {
	for _, tc := range []struct {
		pair, issuer, url string
		ok                bool
	}{
		{"https://t.auth0.com/=https://t.auth0.com/.well-known/jwks.json", "https://t.auth0.com/", "https://t.auth0.com/.well-known/jwks.json", true},
		{" https://t.auth0.com/ = file:///etc/tokenward/jwks.json ", "https://t.auth0.com/", "file:///etc/tokenward/jwks.json", true},
		{"http://127.0.0.1:8081/=http://127.0.0.1:8081/keys", "http://127.0.0.1:8081/", "http://127.0.0.1:8081/keys", true},
		// "=" in the issuer and in the URL: the split is before the URL's scheme.
		{"https://login.example.com/tenant=a/=https://keys.example.com/jwks?tenant=a", "https://login.example.com/tenant=a/", "https://keys.example.com/jwks?tenant=a", true},
		{"https://t.auth0.com/=HTTPS://keys.example.com/", "https://t.auth0.com/", "HTTPS://keys.example.com/", true},
		{"https://t.auth0.com/", "", "", false},
		{"https://t.auth0.com/=ftp://x/", "", "", false},
		{"=https://keys.example.com/", "", "", false},
	} {
		iss, u, ok := splitJWKSPair(tc.pair)
		if iss != tc.issuer || u != tc.url || ok != tc.ok {
			t.Errorf("splitJWKSPair(%q) = %q, %q, %v; want %q, %q, %v", tc.pair, iss, u, ok, tc.issuer, tc.url, tc.ok)
		}
	}
}

// TestInspectNeedsLess: inspect does not need what only serving uses.
func TestInspectNeedsLess(t *testing.T) {
	env := map[string]string{
		"TOKENWARD_ISSUERS":       "https://tenant.auth0.com/",
		"TOKENWARD_AUDIENCES":     "https://api.example.com",
		"TOKENWARD_SCOPES_HEADER": "Authorization",
	}
	if _, err := loadConfig(mapGetenv(env), forInspect); err != nil {
		t.Errorf("inspect: %v", err)
	}
	_, err := loadConfig(mapGetenv(env), forServing)
	var ce *configError
	if !errors.As(err, &ce) || len(ce.problems) != 2 {
		t.Fatalf("serving: %v, want 2 problems (upstream, scopes header)", err)
	}
	if exitCode(err) != 2 {
		t.Errorf("exit code %d", exitCode(err))
	}
}

func TestAlgorithmsAreTheValidators(t *testing.T) {
	for _, a := range middleware.Algorithms() {
		if strings.HasPrefix(a, "HS") || a == "none" {
			t.Errorf("middleware.Algorithms lists %q", a)
		}
	}
}
