package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
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
		"TOKENWARD_ALLOWED_ORIGINS",
		"TOKENWARD_AUDIENCES",
		"TOKENWARD_CACHE_MAX_BYTES",
		"TOKENWARD_CACHE_SIZE",
		"TOKENWARD_CLAIM_HEADERS",
		"TOKENWARD_DENYLIST_FILE",
		"TOKENWARD_DENYLIST_INTERVAL",
		"TOKENWARD_DENYLIST_URL",
		"TOKENWARD_DPOP",
		"TOKENWARD_DPOP_ALGORITHMS",
		"TOKENWARD_DPOP_MAX_AGE",
		"TOKENWARD_DPOP_NONCE",
		"TOKENWARD_DPOP_NONCE_SECRET_FILE",
		"TOKENWARD_DPOP_REPLAY_CA_FILE",
		"TOKENWARD_DPOP_REPLAY_PASSWORD_FILE",
		"TOKENWARD_DPOP_REPLAY_STORE",
		"TOKENWARD_DPOP_REPLAY_TIMEOUT",
		"TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE",
		"TOKENWARD_FORWARD_AUTH_PATH_PREFIX",
		"TOKENWARD_FORWARD_CLIENT_CERT",
		"TOKENWARD_FORWARD_DPOP_PROOF",
		"TOKENWARD_GRPC_ADDR",
		"TOKENWARD_INTROSPECTION_CLIENT_ID",
		"TOKENWARD_INTROSPECTION_CLIENT_SECRET",
		"TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE",
		"TOKENWARD_INTROSPECTION_URL",
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
		"TOKENWARD_OPAQUE_CACHE_SIZE",
		"TOKENWARD_OPAQUE_CACHE_TTL",
		"TOKENWARD_OPAQUE_ISSUER",
		"TOKENWARD_OPAQUE_MAX_CONCURRENCY",
		"TOKENWARD_OPAQUE_NEGATIVE_TTL",
		"TOKENWARD_OPAQUE_STALE_IF_BUSY",
		"TOKENWARD_OPAQUE_TIMEOUT",
		"TOKENWARD_OPAQUE_TOKENS",
		"TOKENWARD_PUBLIC_URL",
		"TOKENWARD_REALM",
		"TOKENWARD_REQUIRED_SCOPES",
		"TOKENWARD_REQUIRE_AT_JWT",
		"TOKENWARD_RESOURCE",
		"TOKENWARD_RESOURCE_AUTHORIZATION_SERVERS",
		"TOKENWARD_RESOURCE_DOCUMENTATION",
		"TOKENWARD_RESOURCE_NAME",
		"TOKENWARD_RESOURCE_SCOPES",
		"TOKENWARD_RULES_FILE",
		"TOKENWARD_RULES_RELOAD_INTERVAL",
		"TOKENWARD_SCOPES_HEADER",
		"TOKENWARD_SHUTDOWN_GRACE",
		"TOKENWARD_STRIP_AUTHORIZATION",
		"TOKENWARD_TLS_CERT_FILE",
		"TOKENWARD_TLS_CLIENT_AUTH",
		"TOKENWARD_TLS_CLIENT_CA_FILE",
		"TOKENWARD_TLS_KEY_FILE",
		"TOKENWARD_TLS_RELOAD_INTERVAL",
		"TOKENWARD_TOKEN_TYPE_HEADER",
		"TOKENWARD_TRUSTED_PROXIES",
		"TOKENWARD_UPSTREAM",
		"TOKENWARD_UPSTREAM_TIMEOUT",
		"TOKENWARD_UPSTREAM_TRANSPORT",
		"TOKENWARD_USERINFO_URL",
	}
	// Connections and client timeouts (connlimits.go).
	want = append(want, "TOKENWARD_MAX_CONNECTIONS", "TOKENWARD_READ_HEADER_TIMEOUT",
		"TOKENWARD_BODY_READ_TIMEOUT", "TOKENWARD_SEND_TIMEOUT", "TOKENWARD_IDLE_TIMEOUT", "TOKENWARD_GRPC_MAX_CONNECTIONS")
	slices.Sort(want)
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
	check("upstream transport", c.UpstreamTransport, "lean")
	check("required", c.required.IsZero(), true)
	check("rules", c.rules.Len(), 0)
	check("jwks", len(c.jwksURLs), 0)
	check("opaque tokens", c.OpaqueTokens, "reject")
	check("opaque timeout", c.OpaqueTimeout, 5*time.Second)
	check("opaque max concurrency", c.OpaqueMaxConcurrency, 32)
	check("opaque cache ttl", c.OpaqueCacheTTL, 5*time.Minute)
	check("opaque stale if busy", c.OpaqueStaleIfBusy, 5*time.Minute)
	check("opaque negative ttl", c.OpaqueNegativeTTL, 10*time.Second)
	check("opaque cache size", c.OpaqueCacheSize, 100000)
	check("denylist interval", c.DenyListInterval, time.Duration(0))
	check("rules reload interval", c.RulesReloadInterval, time.Duration(0))
	check("ignored", len(c.ignored), 0)
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
	_, err := loadConfig(mapGetenv(map[string]string{
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

	c, err := loadConfig(mapGetenv(map[string]string{
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

// TestREADMEDocumentsEveryVariable: the README's variable table lists
// exactly the variables the binary reads.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Skipf("no README: %v", err)
	}
	_, table, ok := strings.Cut(string(data), "<!-- env-table -->")
	table, _, ok2 := strings.Cut(table, "<!-- /env-table -->")
	if !ok || !ok2 {
		t.Fatal("README has no <!-- env-table --> ... <!-- /env-table --> section")
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(TOKENWARD_[A-Z0-9_]+)` \\|").FindAllStringSubmatch(table, -1) {
		documented = append(documented, m[1])
	}
	slices.Sort(documented)
	keys := envKeys()
	slices.Sort(keys)
	if !slices.Equal(documented, keys) {
		t.Errorf("README table:\n %q\nthe binary reads:\n %q", documented, keys)
	}
}

// TestOpaqueAndDenyListConfig covers the opaque-token and deny list
// variables in process; TestConfigErrors runs the failures through the
// binary.
func TestOpaqueAndDenyListConfig(t *testing.T) {
	const (
		first  = "https://tenant.auth0.com/"
		second = "https://login.example.com/"
	)
	secretFile := writeFile(t, "secret", "file-s3cret\n")
	emptyFile := writeFile(t, "empty", "")
	listFile := writeFile(t, "denylist.json", `{"jti": ["a"]}`)
	base := func(kv ...string) map[string]string {
		m := map[string]string{
			"TOKENWARD_ISSUERS":   first + "," + second,
			"TOKENWARD_AUDIENCES": "https://api.example.com",
			"TOKENWARD_UPSTREAM":  "http://127.0.0.1:3000",
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name     string
		env      map[string]string
		problems []string // substrings, one per problem; none: valid
		check    func(t *testing.T, c *Config)
	}{
		{
			name: "introspection, secret from a file, trailing newline dropped",
			env: base("TOKENWARD_OPAQUE_TOKENS", "introspection", "TOKENWARD_INTROSPECTION_CLIENT_ID", "tokenward",
				"TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE", secretFile),
			check: func(t *testing.T, c *Config) {
				if c.clientSecret != "file-s3cret" {
					t.Errorf("secret not read from the file")
				}
				if c.opaqueIssuer != first {
					t.Errorf("opaque issuer %q, want the first", c.opaqueIssuer)
				}
			},
		},
		{
			name: "introspection, secret from the environment, second issuer",
			env: base("TOKENWARD_OPAQUE_TOKENS", "introspection", "TOKENWARD_INTROSPECTION_CLIENT_ID", "tokenward",
				"TOKENWARD_INTROSPECTION_CLIENT_SECRET", "env-s3cret", "TOKENWARD_OPAQUE_ISSUER", second,
				"TOKENWARD_INTROSPECTION_URL", "https://login.example.com/oauth/introspect",
				"TOKENWARD_USERINFO_URL", "https://login.example.com/userinfo"),
			check: func(t *testing.T, c *Config) {
				if c.clientSecret != "env-s3cret" || c.opaqueIssuer != second {
					t.Errorf("issuer %q", c.opaqueIssuer)
				}
				if len(c.ignored) != 1 || !strings.Contains(c.ignored[0], "TOKENWARD_USERINFO_URL is ignored") {
					t.Errorf("ignored %q", c.ignored)
				}
			},
		},
		{
			name: "userinfo, cache disabled",
			env:  base("TOKENWARD_OPAQUE_TOKENS", "userinfo", "TOKENWARD_OPAQUE_CACHE_SIZE", "0"),
			check: func(t *testing.T, c *Config) {
				if ttl, neg, _ := c.opaqueCache(); ttl >= 0 || neg >= 0 {
					t.Errorf("cache size 0: ttl %v, negative ttl %v; want both off (negative)", ttl, neg)
				}
			},
		},
		{
			name: "TTL 0 turns off that kind of answer only",
			env:  base("TOKENWARD_OPAQUE_TOKENS", "userinfo", "TOKENWARD_OPAQUE_NEGATIVE_TTL", "0"),
			check: func(t *testing.T, c *Config) {
				if ttl, neg, n := c.opaqueCache(); ttl != 5*time.Minute || neg >= 0 || n != 100000 {
					t.Errorf("ttl %v, negative ttl %v, entries %d", ttl, neg, n)
				}
			},
		},
		{
			name: "reject: the endpoints and credentials are ignored, with a warning",
			env: base("TOKENWARD_INTROSPECTION_CLIENT_SECRET", "env-s3cret", "TOKENWARD_USERINFO_URL", "http://not-checked.example.com/",
				"TOKENWARD_OPAQUE_ISSUER", "https://not-checked.example.com/"),
			check: func(t *testing.T, c *Config) {
				if len(c.ignored) != 3 {
					t.Errorf("ignored %q", c.ignored)
				}
				for _, msg := range c.ignored {
					if strings.Contains(msg, "s3cret") {
						t.Errorf("a warning shows the secret")
					}
				}
			},
		},
		{
			name: "deny list file",
			env:  base("TOKENWARD_DENYLIST_FILE", listFile, "TOKENWARD_DENYLIST_INTERVAL", "100ms"),
			check: func(t *testing.T, c *Config) {
				if c.DenyListInterval != 100*time.Millisecond {
					t.Errorf("interval %v", c.DenyListInterval)
				}
			},
		},
		{
			name: "rules reload interval without a rules file",
			env:  base("TOKENWARD_RULES_RELOAD_INTERVAL", "1m"),
			check: func(t *testing.T, c *Config) {
				if len(c.ignored) != 1 || !strings.Contains(c.ignored[0], "TOKENWARD_RULES_RELOAD_INTERVAL is ignored") {
					t.Errorf("ignored %q", c.ignored)
				}
			},
		},
		{
			name: "interval without a deny list",
			env:  base("TOKENWARD_DENYLIST_INTERVAL", "1m"),
			check: func(t *testing.T, c *Config) {
				if len(c.ignored) != 1 {
					t.Errorf("ignored %q", c.ignored)
				}
			},
		},
		{
			name:     "unknown mode",
			env:      base("TOKENWARD_OPAQUE_TOKENS", "introspect"),
			problems: []string{`TOKENWARD_OPAQUE_TOKENS: "introspect" is not one of reject (the default), introspection, userinfo`},
		},
		{
			name: "introspection without credentials, untrusted issuer, http endpoint",
			env: base("TOKENWARD_OPAQUE_TOKENS", "introspection", "TOKENWARD_OPAQUE_ISSUER", "https://other.example.com/",
				"TOKENWARD_INTROSPECTION_URL", "http://idp.example.com/introspect"),
			problems: []string{
				"TOKENWARD_OPAQUE_ISSUER: https://other.example.com/ is not one of TOKENWARD_ISSUERS",
				"TOKENWARD_INTROSPECTION_URL: \"http://idp.example.com/introspect\" must use https",
				"TOKENWARD_INTROSPECTION_CLIENT_ID is not set",
				"TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE (or TOKENWARD_INTROSPECTION_CLIENT_SECRET) is not set",
			},
		},
		{
			name: "two secrets",
			env: base("TOKENWARD_OPAQUE_TOKENS", "introspection", "TOKENWARD_INTROSPECTION_CLIENT_ID", "tokenward",
				"TOKENWARD_INTROSPECTION_CLIENT_SECRET", "env-s3cret", "TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE", secretFile),
			problems: []string{"TOKENWARD_INTROSPECTION_CLIENT_SECRET and TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE are both set"},
		},
		{
			name: "empty secret file",
			env: base("TOKENWARD_OPAQUE_TOKENS", "introspection", "TOKENWARD_INTROSPECTION_CLIENT_ID", "tokenward",
				"TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE", emptyFile),
			problems: []string{"TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE: secret file " + emptyFile + " is empty"},
		},
		{
			name:     "userinfo URL with user info",
			env:      base("TOKENWARD_OPAQUE_TOKENS", "userinfo", "TOKENWARD_USERINFO_URL", "https://u:env-s3cret@idp.example.com/userinfo"),
			problems: []string{`TOKENWARD_USERINFO_URL: "https://REDACTED@idp.example.com/userinfo" must not have user info`},
		},
		{
			name: "bad numbers",
			env: base("TOKENWARD_OPAQUE_TIMEOUT", "0s", "TOKENWARD_OPAQUE_CACHE_TTL", "-1s", "TOKENWARD_OPAQUE_NEGATIVE_TTL", "-1s",
				"TOKENWARD_OPAQUE_STALE_IF_BUSY", "-1s", "TOKENWARD_OPAQUE_CACHE_SIZE", "many", "TOKENWARD_DENYLIST_INTERVAL", "-1s",
				"TOKENWARD_RULES_RELOAD_INTERVAL", "-1s", "TOKENWARD_CACHE_SIZE", "99999999999999999999", "TOKENWARD_OPAQUE_MAX_CONCURRENCY", "0"),
			problems: []string{
				"TOKENWARD_OPAQUE_TIMEOUT: 0s must be positive",
				"TOKENWARD_OPAQUE_CACHE_TTL: -1s is negative",
				"TOKENWARD_OPAQUE_NEGATIVE_TTL: -1s is negative",
				"TOKENWARD_OPAQUE_STALE_IF_BUSY: -1s is negative",
				`TOKENWARD_OPAQUE_CACHE_SIZE: "many" is not a whole number`,
				"TOKENWARD_OPAQUE_MAX_CONCURRENCY: 0 must be positive",
				"TOKENWARD_CACHE_SIZE: 99999999999999999999 is too large",
				"TOKENWARD_DENYLIST_INTERVAL: -1s is negative",
				"TOKENWARD_RULES_RELOAD_INTERVAL: -1s is negative",
			},
		},
		{
			name:     "deny list file and URL",
			env:      base("TOKENWARD_DENYLIST_FILE", listFile, "TOKENWARD_DENYLIST_URL", "https://lists.example.com/deny.json"),
			problems: []string{"TOKENWARD_DENYLIST_FILE and TOKENWARD_DENYLIST_URL are both set"},
		},
		{
			name:     "deny list file missing",
			env:      base("TOKENWARD_DENYLIST_FILE", listFile+".missing"),
			problems: []string{"TOKENWARD_DENYLIST_FILE: stat " + listFile + ".missing: no such file or directory"},
		},
		{
			name:     "deny list file is a directory",
			env:      base("TOKENWARD_DENYLIST_FILE", filepath.Dir(listFile)),
			problems: []string{"TOKENWARD_DENYLIST_FILE: " + filepath.Dir(listFile) + " is not a regular file"},
		},
		{
			name:     "deny list URL with credentials",
			env:      base("TOKENWARD_DENYLIST_URL", "https://u:env-s3cret@lists.example.com/deny.json"),
			problems: []string{`TOKENWARD_DENYLIST_URL: "https://REDACTED@lists.example.com/deny.json" must not have user info`},
		},
		{
			name:     "deny list URL over http",
			env:      base("TOKENWARD_DENYLIST_URL", "http://lists.example.com/deny.json?key=env-s3cret"),
			problems: []string{`TOKENWARD_DENYLIST_URL: "http://lists.example.com/deny.json?(query not shown)" must use https (http is allowed only for loopback hosts)`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(mapGetenv(tc.env), forServing)
			if len(tc.problems) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, c)
				return
			}
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want a configuration error", err)
			}
			if len(ce.problems) != len(tc.problems) {
				t.Errorf("%d problems, want %d:\n%s", len(ce.problems), len(tc.problems), err)
			}
			for _, want := range tc.problems {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("no %q in:\n%s", want, err)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows a secret:\n%s", err)
			}
		})
	}
}

// TestResourceConfig: TOKENWARD_RESOURCE is checked at start (https, http on
// loopback, no fragment), becomes the audience when TOKENWARD_AUDIENCES is
// not set, and the metadata's variables are checked with it; without it
// they are ignored with a warning.
func TestResourceConfig(t *testing.T) {
	const iss = "https://tenant.auth0.com/"
	rules := writeFile(t, "rules.yaml", `
routes:
  - match: "POST /mcp"
    scopes: ["tools:call"]
  - match: "GET /mcp"
    any_scopes: ["tools:read", "tools:call"]
`)
	base := func(kv ...string) map[string]string {
		m := map[string]string{"TOKENWARD_ISSUERS": iss, "TOKENWARD_UPSTREAM": "http://127.0.0.1:3000"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name     string
		env      map[string]string
		problems []string
		check    func(t *testing.T, c *Config)
	}{
		{
			name: "the resource is the audience; scopes from the rules",
			env:  base("TOKENWARD_RESOURCE", "https://mcp.example.com/mcp", "TOKENWARD_RULES_FILE", rules, "TOKENWARD_REQUIRED_SCOPES", "mcp"),
			check: func(t *testing.T, c *Config) {
				if !slices.Equal(c.Audiences, []string{"https://mcp.example.com/mcp"}) {
					t.Errorf("audiences %q", c.Audiences)
				}
				if got := c.resourceOptions().Scopes; !slices.Equal(got, []string{"mcp", "tools:call", "tools:read"}) {
					t.Errorf("scopes %q", got)
				}
			},
		},
		{
			name: "audiences given: kept; metadata variables used",
			env: base("TOKENWARD_RESOURCE", "http://127.0.0.1:8080/mcp", "TOKENWARD_AUDIENCES", "https://api.example.com",
				"TOKENWARD_RESOURCE_SCOPES", "a b,c", "TOKENWARD_RESOURCE_NAME", "Contacts",
				"TOKENWARD_RESOURCE_DOCUMENTATION", "https://docs.example.com/mcp?x=1",
				"TOKENWARD_RESOURCE_AUTHORIZATION_SERVERS", iss, "TOKENWARD_ALLOWED_ORIGINS", "https://app.example.com, http://localhost:6274"),
			check: func(t *testing.T, c *Config) {
				o := c.resourceOptions()
				if len(c.ignored) != 1 || !strings.HasPrefix(c.ignored[0], "TOKENWARD_RESOURCE is not one of TOKENWARD_AUDIENCES") {
					t.Errorf("warnings %q", c.ignored)
				}
				if !slices.Equal(c.Audiences, []string{"https://api.example.com"}) || !slices.Equal(o.Scopes, []string{"a", "b", "c"}) ||
					o.Name != "Contacts" || !slices.Equal(o.AuthorizationServers, []string{iss}) ||
					!slices.Equal(c.AllowedOrigins, []string{"https://app.example.com", "http://localhost:6274"}) {
					t.Errorf("config %+v, options %+v", c, o)
				}
			},
		},
		{
			name:     "neither resource nor audiences",
			env:      base(),
			problems: []string{"TOKENWARD_AUDIENCES is not set"},
		},
		{
			name: "bad values, all reported",
			env: base("TOKENWARD_RESOURCE", "http://mcp.example.com/mcp#x",
				"TOKENWARD_RESOURCE_AUTHORIZATION_SERVERS", "https://evil.example.com/",
				"TOKENWARD_RESOURCE_DOCUMENTATION", "javascript:alert(1)",
				"TOKENWARD_RESOURCE_SCOPES", "a\\b",
				"TOKENWARD_ALLOWED_ORIGINS", "https://app.example.com/"),
			problems: []string{"TOKENWARD_RESOURCE: ", "TOKENWARD_ALLOWED_ORIGINS: ", "TOKENWARD_RESOURCE_AUTHORIZATION_SERVERS: ",
				"TOKENWARD_RESOURCE_DOCUMENTATION: ", "TOKENWARD_RESOURCE_SCOPES: "},
		},
		{
			name:     "http resource off loopback",
			env:      base("TOKENWARD_RESOURCE", "http://mcp.example.com/mcp", "TOKENWARD_AUDIENCES", "x"),
			problems: []string{"TOKENWARD_RESOURCE: \"http://mcp.example.com/mcp\" must use https"},
		},
		{
			name: "metadata variables without the resource",
			env:  base("TOKENWARD_AUDIENCES", "x", "TOKENWARD_RESOURCE_NAME", "n", "TOKENWARD_RESOURCE_SCOPES", "a"),
			check: func(t *testing.T, c *Config) {
				if len(c.ignored) != 2 || !strings.Contains(c.ignored[0], "TOKENWARD_RESOURCE_NAME is ignored without TOKENWARD_RESOURCE") {
					t.Errorf("ignored %q", c.ignored)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(mapGetenv(tc.env), forServing)
			if len(tc.problems) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, c)
				return
			}
			var ce *configError
			if !errors.As(err, &ce) || len(ce.problems) != len(tc.problems) {
				t.Fatalf("err = %v, want %d problems", err, len(tc.problems))
			}
			for i, p := range tc.problems {
				if !strings.HasPrefix(ce.problems[i], p) {
					t.Errorf("problem %d = %q, want it to start %q", i, ce.problems[i], p)
				}
			}
		})
	}
}
