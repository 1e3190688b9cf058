package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/tokenward/tokenward/denylist"
	"github.com/tokenward/tokenward/internal/httpfetch"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/opaque"
	"github.com/tokenward/tokenward/proxy"
	"github.com/tokenward/tokenward/resource"
	"github.com/tokenward/tokenward/scopes"
)

// Modes of the serving binary (TOKENWARD_MODE).
const (
	modeProxy       = "proxy"
	modeForwardAuth = "forward-auth"
)

// What is done with opaque tokens (TOKENWARD_OPAQUE_TOKENS).
const (
	opaqueReject        = "reject"
	opaqueIntrospection = "introspection"
	opaqueUserInfo      = "userinfo"
)

// Config is the binary's configuration, read from TOKENWARD_* environment
// variables by [loadConfig]. The env tags are the contract documented in the
// README; envDefault is each variable's default. Lists are comma-separated and
// trimmed; empty elements are ignored.
type Config struct {
	Issuers                []string      `env:"TOKENWARD_ISSUERS"`
	Audiences              []string      `env:"TOKENWARD_AUDIENCES"`
	JWKSURIs               []string      `env:"TOKENWARD_JWKS_URIS"`
	Algorithms             []string      `env:"TOKENWARD_ALGORITHMS" envDefault:"RS256"`
	Leeway                 time.Duration `env:"TOKENWARD_LEEWAY" envDefault:"30s"`
	RequiredScopes         []string      `env:"TOKENWARD_REQUIRED_SCOPES"`
	RulesFile              string        `env:"TOKENWARD_RULES_FILE"`
	RulesReloadInterval    time.Duration `env:"TOKENWARD_RULES_RELOAD_INTERVAL"`
	Mode                   string        `env:"TOKENWARD_MODE" envDefault:"proxy"`
	Upstream               string        `env:"TOKENWARD_UPSTREAM"`
	ListenAddr             string        `env:"TOKENWARD_LISTEN_ADDR" envDefault:":8080"`
	AdminAddr              string        `env:"TOKENWARD_ADMIN_ADDR" envDefault:":9090"`
	ClaimHeaders           string        `env:"TOKENWARD_CLAIM_HEADERS" envDefault:"sub=X-Auth-Subject"`
	StripAuthorization     bool          `env:"TOKENWARD_STRIP_AUTHORIZATION" envDefault:"false"`
	JWKSRefreshInterval    time.Duration `env:"TOKENWARD_JWKS_REFRESH_INTERVAL" envDefault:"5m"`
	JWKSMinRefreshInterval time.Duration `env:"TOKENWARD_JWKS_MIN_REFRESH_INTERVAL" envDefault:"10s"`
	MaxTokenBytes          int           `env:"TOKENWARD_MAX_TOKEN_BYTES" envDefault:"16384"`
	CacheSize              int           `env:"TOKENWARD_CACHE_SIZE" envDefault:"100000"`
	CacheMaxBytes          int64         `env:"TOKENWARD_CACHE_MAX_BYTES" envDefault:"67108864"`
	ShutdownGrace          time.Duration `env:"TOKENWARD_SHUTDOWN_GRACE" envDefault:"25s"`
	LogFormat              string        `env:"TOKENWARD_LOG_FORMAT" envDefault:"json"`
	LogLevel               string        `env:"TOKENWARD_LOG_LEVEL" envDefault:"info"`
	AccessLog              bool          `env:"TOKENWARD_ACCESS_LOG" envDefault:"false"`
	ScopesHeader           string        `env:"TOKENWARD_SCOPES_HEADER"`
	RequireATJWT           bool          `env:"TOKENWARD_REQUIRE_AT_JWT" envDefault:"false"`
	Realm                  string        `env:"TOKENWARD_REALM" envDefault:"api"`
	UpstreamTimeout        time.Duration `env:"TOKENWARD_UPSTREAM_TIMEOUT" envDefault:"0s"`
	UpstreamTransport      string        `env:"TOKENWARD_UPSTREAM_TRANSPORT" envDefault:"lean"`

	// Opaque tokens and revocation.
	OpaqueTokens                  string        `env:"TOKENWARD_OPAQUE_TOKENS" envDefault:"reject"`
	OpaqueIssuer                  string        `env:"TOKENWARD_OPAQUE_ISSUER"`
	IntrospectionURL              string        `env:"TOKENWARD_INTROSPECTION_URL"`
	UserInfoURL                   string        `env:"TOKENWARD_USERINFO_URL"`
	IntrospectionClientID         string        `env:"TOKENWARD_INTROSPECTION_CLIENT_ID"`
	IntrospectionClientSecret     opaque.Secret `env:"TOKENWARD_INTROSPECTION_CLIENT_SECRET"` // prints as [REDACTED]
	IntrospectionClientSecretFile string        `env:"TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE"`
	OpaqueTimeout                 time.Duration `env:"TOKENWARD_OPAQUE_TIMEOUT" envDefault:"5s"`
	OpaqueCacheTTL                time.Duration `env:"TOKENWARD_OPAQUE_CACHE_TTL" envDefault:"5m"`
	OpaqueNegativeTTL             time.Duration `env:"TOKENWARD_OPAQUE_NEGATIVE_TTL" envDefault:"10s"`
	OpaqueCacheSize               int           `env:"TOKENWARD_OPAQUE_CACHE_SIZE" envDefault:"100000"`
	OpaqueMaxConcurrency          int           `env:"TOKENWARD_OPAQUE_MAX_CONCURRENCY" envDefault:"32"`
	OpaqueStaleIfBusy             time.Duration `env:"TOKENWARD_OPAQUE_STALE_IF_BUSY" envDefault:"5m"`
	DenyListFile                  string        `env:"TOKENWARD_DENYLIST_FILE"`
	DenyListURL                   string        `env:"TOKENWARD_DENYLIST_URL"`
	DenyListInterval              time.Duration `env:"TOKENWARD_DENYLIST_INTERVAL"`

	// Envoy: gRPC ext_authz, and the HTTP service with Envoy's defaults.
	GRPCAddr                    string `env:"TOKENWARD_GRPC_ADDR"`
	ForwardAuthAllowRequestLine bool   `env:"TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE" envDefault:"false"`
	ForwardAuthPathPrefix       string `env:"TOKENWARD_FORWARD_AUTH_PATH_PREFIX"`

	// Protected-resource metadata (RFC 9728) and MCP servers.
	Resource                     string   `env:"TOKENWARD_RESOURCE"`
	ResourceName                 string   `env:"TOKENWARD_RESOURCE_NAME"`
	ResourceDocumentation        string   `env:"TOKENWARD_RESOURCE_DOCUMENTATION"`
	ResourceAuthorizationServers []string `env:"TOKENWARD_RESOURCE_AUTHORIZATION_SERVERS"`
	ResourceScopes               []string `env:"TOKENWARD_RESOURCE_SCOPES"`
	AllowedOrigins               []string `env:"TOKENWARD_ALLOWED_ORIGINS"`

	// TLS on the main listener (tls.go).
	TLSCertFile       string        `env:"TOKENWARD_TLS_CERT_FILE"`
	TLSKeyFile        string        `env:"TOKENWARD_TLS_KEY_FILE"`
	TLSClientCAFile   string        `env:"TOKENWARD_TLS_CLIENT_CA_FILE"`
	TLSClientAuth     string        `env:"TOKENWARD_TLS_CLIENT_AUTH"` // "": none, or require with a CA file
	TLSReloadInterval time.Duration `env:"TOKENWARD_TLS_RELOAD_INTERVAL"`

	// Proxies that terminate TLS in front and name the client certificate
	// in Client-Cert or X-Forwarded-Client-Cert (certificate-bound tokens).
	TrustedProxies    []string `env:"TOKENWARD_TRUSTED_PROXIES"`
	ForwardClientCert bool     `env:"TOKENWARD_FORWARD_CLIENT_CERT" envDefault:"false"`

	// DPoP (RFC 9449; dpop.go).
	DPoP                   string        `env:"TOKENWARD_DPOP" envDefault:"allowed"`
	DPoPAlgorithms         []string      `env:"TOKENWARD_DPOP_ALGORITHMS" envDefault:"ES256"`
	DPoPMaxAge             time.Duration `env:"TOKENWARD_DPOP_MAX_AGE" envDefault:"60s"`
	DPoPNonce              bool          `env:"TOKENWARD_DPOP_NONCE" envDefault:"false"`
	DPoPNonceSecretFile    string        `env:"TOKENWARD_DPOP_NONCE_SECRET_FILE"`
	DPoPReplayStore        string        `env:"TOKENWARD_DPOP_REPLAY_STORE"`
	DPoPReplayPasswordFile string        `env:"TOKENWARD_DPOP_REPLAY_PASSWORD_FILE"`
	DPoPReplayTimeout      time.Duration `env:"TOKENWARD_DPOP_REPLAY_TIMEOUT" envDefault:"250ms"`
	DPoPReplayCAFile       string        `env:"TOKENWARD_DPOP_REPLAY_CA_FILE"`
	PublicURL              string        `env:"TOKENWARD_PUBLIC_URL"`
	ForwardDPoPProof       bool          `env:"TOKENWARD_FORWARD_DPOP_PROOF" envDefault:"false"`
	TokenTypeHeader        string        `env:"TOKENWARD_TOKEN_TYPE_HEADER"`

	ConnLimits // connections and client timeouts (connlimits.go)

	// Derived by check from the fields above.
	jwksURLs     map[string]string       // issuer → key set URL
	keyFiles     map[string]*jwks.Static // file:// key set URL → the set read from it
	required     scopes.Requirement
	rules        *proxy.Rules
	rulesHash    [sha256.Size]byte // of the rules file as read by check
	rulesLoaded  time.Time         // when check read it
	claimHeaders []proxy.ClaimHeader
	logLevel     slog.Level
	unreadable   map[string]bool // variables env could not parse, already reported
	opaqueIssuer string          // whose endpoint opaque tokens are checked with
	clientSecret opaque.Secret   // from the variable or the file
	ignored      []string        // variables set but unused, logged as warnings by serve
	tls          *tlsFiles       // nil without TLS
	tlsState     *tlsState       // the files as read by check
	tlsHash      [sha256.Size]byte
	tlsLoaded    time.Time
	dpop         dpopConfig // checked by checkDPoP
}

// purpose says which variables a command needs: serving needs them all,
// inspect only those that decide whether a token is valid.
type purpose int

const (
	forServing purpose = iota
	forInspect
)

// configError lists every configuration problem, each naming its variable.
// It makes the binary exit with status 2.
type configError struct {
	problems []string
}

func (e *configError) Error() string {
	var b strings.Builder
	if len(e.problems) == 1 {
		b.WriteString("configuration error:\n")
	} else {
		fmt.Fprintf(&b, "configuration error (%d problems):\n", len(e.problems))
	}
	for _, p := range e.problems {
		// One line each: some errors (YAML's) come on several lines.
		var parts []string
		for line := range strings.SplitSeq(p, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				parts = append(parts, line)
			}
		}
		b.WriteString("  - " + strings.Join(parts, " ") + "\n")
	}
	b.WriteString("Every variable is described in the README (https://github.com/tokenward/tokenward#configuration).")
	return b.String()
}

// envKeys returns the variables Config reads, from its env tags.
func envKeys() []string {
	params, err := env.GetFieldParams(&Config{})
	if err != nil {
		panic(err) // the tags above are constant: a test catches this
	}
	keys := make([]string, 0, len(params))
	for _, p := range params {
		keys = append(keys, p.Key)
	}
	return keys
}

// loadConfig reads and checks the configuration. getenv is consulted only for
// the variables Config declares. Every problem is reported at once in a
// *configError.
func loadConfig(getenv func(string) string, p purpose) (*Config, error) {
	environ := make(map[string]string)
	for _, k := range envKeys() {
		if v := getenv(k); v != "" {
			environ[k] = v
		}
	}
	c := &Config{}
	var problems []string
	c.unreadable = map[string]bool{}
	if err := env.ParseWithOptions(c, env.Options{Environment: environ}); err != nil {
		problems = append(problems, envProblems(err, environ, c.unreadable)...)
	}
	problems = append(problems, c.check(p)...)
	if len(problems) > 0 {
		return nil, &configError{problems: problems}
	}
	return c, nil
}

// envProblems turns the errors of env.Parse into sentences naming the
// variable and the value (no value here is a secret: a URL's user info is
// never echoed, see check).
func envProblems(err error, environ map[string]string, unreadable map[string]bool) []string {
	var errs []error
	var agg env.AggregateError
	if errors.As(err, &agg) {
		errs = agg.Errors
	} else {
		errs = []error{err}
	}
	t := reflect.TypeFor[Config]()
	var out []string
	for _, e := range errs {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			out = append(out, e.Error())
			continue
		}
		key := pe.Name
		if f, ok := t.FieldByName(pe.Name); ok {
			key, _, _ = strings.Cut(f.Tag.Get("env"), ",")
		}
		value := environ[key]
		unreadable[key] = true
		switch pe.Type {
		case reflect.TypeFor[time.Duration]():
			out = append(out, fmt.Sprintf("%s: %q is not a duration; write a number with a unit, like 30s, 5m or 1h30m", key, value))
		case reflect.TypeFor[bool]():
			out = append(out, fmt.Sprintf("%s: %q is not true or false", key, value))
		case reflect.TypeFor[int](), reflect.TypeFor[int64]():
			if errors.Is(pe.Err, strconv.ErrRange) {
				out = append(out, fmt.Sprintf("%s: %s is too large", key, value))
				break
			}
			out = append(out, fmt.Sprintf("%s: %q is not a whole number", key, value))
		default:
			out = append(out, fmt.Sprintf("%s: %q cannot be read: %v", key, value, pe.Err))
		}
	}
	return out
}

// check validates the parsed values and derives the rest, returning every
// problem found.
func (c *Config) check(p purpose) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	c.Issuers = list(c.Issuers)
	c.Audiences = list(c.Audiences)
	c.Algorithms = list(c.Algorithms)
	c.JWKSURIs = list(c.JWKSURIs)
	c.RequiredScopes = scopeList(c.RequiredScopes)

	// Issuers and audiences.
	if len(c.Issuers) == 0 {
		add("TOKENWARD_ISSUERS is not set: name the trusted issuers, like https://TENANT.auth0.com/ (with the trailing slash Auth0 puts in iss)")
	}
	seen := map[string]bool{}
	for _, iss := range c.Issuers {
		if seen[iss] {
			add("TOKENWARD_ISSUERS: %s is given twice", httpfetch.Redact(iss))
			continue
		}
		seen[iss] = true
		if err := checkURL(iss); err != nil {
			add("TOKENWARD_ISSUERS: %v", err)
		}
	}
	if c.Resource != "" {
		if err := resource.CheckURI(c.Resource); err != nil {
			add("TOKENWARD_RESOURCE: %s", problem(err))
		} else if len(c.Audiences) == 0 {
			// RFC 8707: a token for this resource carries its URI as
			// audience, compared as an exact string.
			c.Audiences = []string{c.Resource}
		} else if !slices.Contains(c.Audiences, c.Resource) {
			// Allowed (an issuer may name the API otherwise), but a client
			// asking for a token with resource= this URI gets one refused.
			c.ignored = append(c.ignored, "TOKENWARD_RESOURCE is not one of TOKENWARD_AUDIENCES: tokens issued for the resource URI (RFC 8707) are refused")
		}
	}
	if len(c.Audiences) == 0 && c.Resource == "" {
		add("TOKENWARD_AUDIENCES is not set: name the audiences a token may carry, like https://api.example.com (the API identifier in Auth0)")
	}

	// Key set URLs.
	c.jwksURLs = map[string]string{}
	c.keyFiles = map[string]*jwks.Static{}
	for _, pair := range c.JWKSURIs {
		iss, u, ok := splitJWKSPair(pair)
		switch {
		case !ok:
			add("TOKENWARD_JWKS_URIS: %q is not issuer=url (the url must start with https://, http:// or file://)", redactPair(pair))
			continue
		case !slices.Contains(c.Issuers, iss):
			add("TOKENWARD_JWKS_URIS: %s is not one of TOKENWARD_ISSUERS", httpfetch.Redact(iss))
			continue
		case c.jwksURLs[iss] != "":
			add("TOKENWARD_JWKS_URIS: %s is given twice", httpfetch.Redact(iss))
			continue
		}
		if err := c.checkKeySetURL(u); err != nil {
			add("TOKENWARD_JWKS_URIS: key set of %s: %v", iss, err)
			continue
		}
		c.jwksURLs[iss] = u
	}

	// Validation options.
	supported := middleware.Algorithms()
	if len(c.Algorithms) == 0 {
		add("TOKENWARD_ALGORITHMS is empty: name at least one of %s", strings.Join(supported, ", "))
	}
	for _, a := range c.Algorithms {
		switch {
		case slices.Contains(supported, a):
		case strings.EqualFold(a, "none"):
			add("TOKENWARD_ALGORITHMS: %q is never accepted: an unsigned token proves nothing", a)
		case strings.HasPrefix(strings.ToUpper(a), "HS"):
			add("TOKENWARD_ALGORITHMS: %q is never accepted: HMAC needs a shared secret, and a resource server verifies with the issuer's public keys (supported: %s)", a, strings.Join(supported, ", "))
		default:
			add("TOKENWARD_ALGORITHMS: %q is not supported (supported: %s; names are case-sensitive)", a, strings.Join(supported, ", "))
		}
	}
	ok := func(key string) bool { return !c.unreadable[key] }
	if c.Leeway < 0 && ok("TOKENWARD_LEEWAY") {
		add("TOKENWARD_LEEWAY: %s is negative; use 0 for no leeway", c.Leeway)
	}
	if c.MaxTokenBytes <= 0 && ok("TOKENWARD_MAX_TOKEN_BYTES") {
		add("TOKENWARD_MAX_TOKEN_BYTES: %d must be a positive number of bytes", c.MaxTokenBytes)
	}
	if c.CacheSize < 0 && ok("TOKENWARD_CACHE_SIZE") {
		add("TOKENWARD_CACHE_SIZE: %d is negative; use 0 to disable the cache", c.CacheSize)
	}
	if c.CacheMaxBytes <= 0 && ok("TOKENWARD_CACHE_MAX_BYTES") {
		add("TOKENWARD_CACHE_MAX_BYTES: %d must be a positive number of bytes", c.CacheMaxBytes)
	}
	if c.JWKSRefreshInterval <= 0 && ok("TOKENWARD_JWKS_REFRESH_INTERVAL") {
		add("TOKENWARD_JWKS_REFRESH_INTERVAL: %s must be positive", c.JWKSRefreshInterval)
	}
	if c.JWKSMinRefreshInterval <= 0 && ok("TOKENWARD_JWKS_MIN_REFRESH_INTERVAL") {
		add("TOKENWARD_JWKS_MIN_REFRESH_INTERVAL: %s must be positive", c.JWKSMinRefreshInterval)
	}
	c.required = scopes.All(c.RequiredScopes...)
	if err := c.required.Validate(); err != nil {
		for _, e := range unjoin(err) {
			add("TOKENWARD_REQUIRED_SCOPES: %s", problem(e))
		}
	}

	global := c.required
	if global.Validate() != nil {
		global = scopes.Requirement{} // reported above, as TOKENWARD_REQUIRED_SCOPES
	}
	if c.RulesFile != "" {
		rules, hash, err := readRules(c.RulesFile, global)
		for _, e := range unjoin(err) {
			add("TOKENWARD_RULES_FILE: %s", strings.TrimPrefix(e.Error(), "proxy: "))
		}
		c.rules, c.rulesHash, c.rulesLoaded = rules, hash, time.Now()
	} else {
		c.rules, _ = proxy.NewRules(nil, global) // no rules: cannot fail
	}
	if c.RulesReloadInterval < 0 && ok("TOKENWARD_RULES_RELOAD_INTERVAL") {
		add("TOKENWARD_RULES_RELOAD_INTERVAL: %s is negative", c.RulesReloadInterval)
	} else if c.RulesReloadInterval != 0 && c.RulesFile == "" {
		c.ignored = append(c.ignored, "TOKENWARD_RULES_RELOAD_INTERVAL is ignored without TOKENWARD_RULES_FILE")
	}

	// Logging: checked for every command, used by serve.
	switch c.LogFormat {
	case "json", "text":
	default:
		add("TOKENWARD_LOG_FORMAT: %q is neither json nor text", c.LogFormat)
	}
	if err := c.logLevel.UnmarshalText([]byte(c.LogLevel)); err != nil {
		add("TOKENWARD_LOG_LEVEL: %q is not one of debug, info, warn, error", c.LogLevel)
	}

	if p == forServing {
		problems = append(problems, c.checkServing()...)
	}
	return problems
}

// checkServing checks what only the serving binary uses.
func (c *Config) checkServing() []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	switch c.Mode {
	case modeProxy:
		if c.Upstream == "" {
			add("TOKENWARD_UPSTREAM is not set: proxy mode needs the URL of the protected API, like http://127.0.0.1:3000")
		} else if err := checkUpstream(c.Upstream); err != nil {
			add("TOKENWARD_UPSTREAM: %v", err)
		}
	case modeForwardAuth:
	default:
		add("TOKENWARD_MODE: %q is neither %s nor %s", c.Mode, modeProxy, modeForwardAuth)
	}

	for _, v := range []struct{ name, addr string }{
		{"TOKENWARD_LISTEN_ADDR", c.ListenAddr},
		{"TOKENWARD_ADMIN_ADDR", c.AdminAddr},
	} {
		_, port, err := net.SplitHostPort(v.addr)
		if err != nil {
			add("%s: %q is not host:port (like :8080 or 127.0.0.1:8080)", v.name, v.addr)
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			add("%s: %q has no valid port number", v.name, v.addr)
		}
	}
	if c.ListenAddr == c.AdminAddr && !strings.HasSuffix(c.ListenAddr, ":0") {
		add("TOKENWARD_ADMIN_ADDR: %q is also TOKENWARD_LISTEN_ADDR; the admin endpoints need their own address", c.AdminAddr)
	}

	headers, err := proxy.ParseClaimHeaders(c.ClaimHeaders)
	for _, e := range unjoin(err) {
		add("TOKENWARD_CLAIM_HEADERS: %v", e)
	}
	c.claimHeaders = headers
	if c.ScopesHeader != "" {
		// The same rules as claim headers: an HTTP token, and not a header
		// the proxy itself depends on.
		if _, err := proxy.ParseClaimHeaders("scope=" + c.ScopesHeader); err != nil {
			add("TOKENWARD_SCOPES_HEADER: %v", err)
		}
		for _, h := range headers {
			if strings.EqualFold(h.Header, c.ScopesHeader) {
				add("TOKENWARD_SCOPES_HEADER: %q is also in TOKENWARD_CLAIM_HEADERS", c.ScopesHeader)
			}
		}
	}

	if middleware.CheckRealm(c.Realm) != nil {
		add("TOKENWARD_REALM: %q must be printable ASCII without \" or \\", c.Realm)
	}
	for _, e := range unjoin(middleware.CheckTrustedProxies(c.TrustedProxies)) {
		add("TOKENWARD_TRUSTED_PROXIES: %s", strings.TrimPrefix(e.Error(), "tokenward: "))
	}
	if c.ForwardClientCert && c.Mode == modeForwardAuth {
		c.ignored = append(c.ignored, "TOKENWARD_FORWARD_CLIENT_CERT is ignored in forward-auth mode: the gateway forwards the request")
	}
	if c.ShutdownGrace < 0 {
		add("TOKENWARD_SHUTDOWN_GRACE: %s is negative", c.ShutdownGrace)
	}
	if c.UpstreamTimeout < 0 {
		add("TOKENWARD_UPSTREAM_TIMEOUT: %s is negative; use 0 for none", c.UpstreamTimeout)
	}
	if c.UpstreamTransport != "lean" && c.UpstreamTransport != "standard" {
		add("TOKENWARD_UPSTREAM_TRANSPORT: %q is neither lean nor standard", c.UpstreamTransport)
	}
	problems = append(problems, c.ConnLimits.check()...)
	problems = append(problems, c.checkResource()...)
	problems = append(problems, c.checkOpaque()...)
	problems = append(problems, c.checkDenyList()...)
	problems = append(problems, c.checkEnvoy()...)
	problems = append(problems, c.checkTLS()...)
	problems = append(problems, c.checkDPoP()...)
	return problems
}

// checkResource checks the variables of the protected-resource metadata
// (TOKENWARD_RESOURCE itself is checked by check: it may be the audience)
// and the allowed origins.
func (c *Config) checkResource() []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	c.AllowedOrigins = list(c.AllowedOrigins)
	for _, o := range c.AllowedOrigins {
		if err := proxy.CheckOrigin(o); err != nil {
			add("TOKENWARD_ALLOWED_ORIGINS: %q is not an origin: write scheme://host[:port], like https://app.example.com (no path, no trailing /)", o)
		}
	}
	c.ResourceAuthorizationServers = list(c.ResourceAuthorizationServers)
	c.ResourceScopes = scopeList(c.ResourceScopes)
	if c.Resource == "" {
		for _, v := range []struct {
			name string
			set  bool
		}{
			{"TOKENWARD_RESOURCE_NAME", c.ResourceName != ""},
			{"TOKENWARD_RESOURCE_DOCUMENTATION", c.ResourceDocumentation != ""},
			{"TOKENWARD_RESOURCE_AUTHORIZATION_SERVERS", len(c.ResourceAuthorizationServers) > 0},
			{"TOKENWARD_RESOURCE_SCOPES", len(c.ResourceScopes) > 0},
		} {
			if v.set {
				c.ignored = append(c.ignored, v.name+" is ignored without TOKENWARD_RESOURCE")
			}
		}
		return problems
	}
	for _, s := range c.ResourceAuthorizationServers {
		if !slices.Contains(c.Issuers, s) {
			add("TOKENWARD_RESOURCE_AUTHORIZATION_SERVERS: %s is not one of TOKENWARD_ISSUERS", httpfetch.Redact(s))
		}
	}
	if c.ResourceDocumentation != "" {
		if err := resource.CheckPage(c.ResourceDocumentation); err != nil {
			add("TOKENWARD_RESOURCE_DOCUMENTATION: %s", problem(err))
		}
	}
	if err := scopes.All(c.ResourceScopes...).Validate(); err != nil {
		for _, e := range unjoin(err) {
			add("TOKENWARD_RESOURCE_SCOPES: %s", problem(e))
		}
	}
	return problems
}

// resourceOptions is the metadata document's configuration: the scopes
// are those of the rules read at start unless TOKENWARD_RESOURCE_SCOPES
// names them.
func (c *Config) resourceOptions() resource.Options {
	o := resource.Options{Name: c.ResourceName, Documentation: c.ResourceDocumentation, Scopes: c.ResourceScopes}
	if len(c.ResourceAuthorizationServers) > 0 {
		o.AuthorizationServers = c.ResourceAuthorizationServers
	}
	if o.Scopes == nil && c.rules != nil {
		o.Scopes = c.rules.Scopes()
	}
	if c.dpop.opts.Mode != middleware.DPoPDisabled {
		o.DPoPAlgorithms = c.DPoPAlgorithms
		o.DPoPRequired = c.dpop.opts.Mode == middleware.DPoPRequired
	}
	return o
}

// checkEnvoy checks the gRPC ext_authz listener and forward-auth's
// request-line mode. Both are forward-auth only: in proxy mode tokenward is
// the way to the upstream, and a second, authorizing listener beside it would
// be a decision no gateway enforces.
func (c *Config) checkEnvoy() []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	forwardAuth := c.Mode == modeForwardAuth
	if c.GRPCAddr != "" {
		if !forwardAuth {
			add("TOKENWARD_GRPC_ADDR: the gRPC ext_authz listener needs TOKENWARD_MODE=forward-auth")
		}
		_, port, err := net.SplitHostPort(c.GRPCAddr)
		if err != nil {
			add("TOKENWARD_GRPC_ADDR: %q is not host:port (like :9000 or 127.0.0.1:9000)", c.GRPCAddr)
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			add("TOKENWARD_GRPC_ADDR: %q has no valid port number", c.GRPCAddr)
		}
		if !strings.HasSuffix(c.GRPCAddr, ":0") && (c.GRPCAddr == c.ListenAddr || c.GRPCAddr == c.AdminAddr) {
			add("TOKENWARD_GRPC_ADDR: %q is also TOKENWARD_LISTEN_ADDR or TOKENWARD_ADMIN_ADDR; it needs its own address", c.GRPCAddr)
		}
	}
	if c.ForwardAuthAllowRequestLine && !forwardAuth {
		add("TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE: only forward-auth reads it; set TOKENWARD_MODE=forward-auth")
	}
	if c.ForwardAuthPathPrefix != "" {
		if !c.ForwardAuthAllowRequestLine {
			add("TOKENWARD_FORWARD_AUTH_PATH_PREFIX: only used with TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE=true")
		}
		if err := proxy.CheckPathPrefix(c.ForwardAuthPathPrefix); err != nil {
			add("TOKENWARD_FORWARD_AUTH_PATH_PREFIX: %q must be a canonical path starting with / and not ending with one, like /auth", c.ForwardAuthPathPrefix)
		}
	}
	return problems
}

// checkOpaque checks the opaque-token variables, and reads the client
// secret file. No message quotes the secret.
func (c *Config) checkOpaque() []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	ok := func(key string) bool { return !c.unreadable[key] }

	if c.OpaqueTimeout <= 0 && ok("TOKENWARD_OPAQUE_TIMEOUT") {
		add("TOKENWARD_OPAQUE_TIMEOUT: %s must be positive: a call to the issuer always has a deadline", c.OpaqueTimeout)
	}
	if c.OpaqueCacheTTL < 0 && ok("TOKENWARD_OPAQUE_CACHE_TTL") {
		add("TOKENWARD_OPAQUE_CACHE_TTL: %s is negative; use 0 not to cache active answers", c.OpaqueCacheTTL)
	}
	if c.OpaqueStaleIfBusy < 0 && ok("TOKENWARD_OPAQUE_STALE_IF_BUSY") {
		add("TOKENWARD_OPAQUE_STALE_IF_BUSY: %s is negative; use 0 never to answer from an active answer past its TTL", c.OpaqueStaleIfBusy)
	}
	if c.OpaqueNegativeTTL < 0 && ok("TOKENWARD_OPAQUE_NEGATIVE_TTL") {
		add("TOKENWARD_OPAQUE_NEGATIVE_TTL: %s is negative; use 0 not to cache refusals", c.OpaqueNegativeTTL)
	}
	if c.OpaqueCacheSize < 0 && ok("TOKENWARD_OPAQUE_CACHE_SIZE") {
		add("TOKENWARD_OPAQUE_CACHE_SIZE: %d is negative; use 0 to disable the cache", c.OpaqueCacheSize)
	}
	if c.OpaqueMaxConcurrency <= 0 && ok("TOKENWARD_OPAQUE_MAX_CONCURRENCY") {
		add("TOKENWARD_OPAQUE_MAX_CONCURRENCY: %d must be positive: calls to the issuer are always bounded", c.OpaqueMaxConcurrency)
	}

	// Variables that only one mode reads.
	modeOf := []struct {
		name, mode string
		set        bool
	}{
		{"TOKENWARD_OPAQUE_ISSUER", "", c.OpaqueIssuer != ""}, // both modes
		{"TOKENWARD_INTROSPECTION_URL", opaqueIntrospection, c.IntrospectionURL != ""},
		{"TOKENWARD_INTROSPECTION_CLIENT_ID", opaqueIntrospection, c.IntrospectionClientID != ""},
		{"TOKENWARD_INTROSPECTION_CLIENT_SECRET", opaqueIntrospection, c.IntrospectionClientSecret != ""},
		{"TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE", opaqueIntrospection, c.IntrospectionClientSecretFile != ""},
		{"TOKENWARD_USERINFO_URL", opaqueUserInfo, c.UserInfoURL != ""},
	}
	ignore := func() {
		for _, v := range modeOf {
			if v.set && (c.OpaqueTokens == opaqueReject || v.mode != "" && v.mode != c.OpaqueTokens) {
				c.ignored = append(c.ignored, fmt.Sprintf("%s is ignored with TOKENWARD_OPAQUE_TOKENS=%s", v.name, c.OpaqueTokens))
			}
		}
	}

	switch c.OpaqueTokens {
	case opaqueReject:
		ignore()
		return problems
	case opaqueIntrospection, opaqueUserInfo:
		ignore()
	default:
		add("TOKENWARD_OPAQUE_TOKENS: %q is not one of %s (the default), %s, %s", c.OpaqueTokens, opaqueReject, opaqueIntrospection, opaqueUserInfo)
		return problems
	}

	switch {
	case c.OpaqueIssuer != "" && !slices.Contains(c.Issuers, c.OpaqueIssuer):
		add("TOKENWARD_OPAQUE_ISSUER: %s is not one of TOKENWARD_ISSUERS", httpfetch.Redact(c.OpaqueIssuer))
	case c.OpaqueIssuer != "":
		c.opaqueIssuer = c.OpaqueIssuer
	case len(c.Issuers) > 0:
		c.opaqueIssuer = c.Issuers[0]
	}

	if c.OpaqueTokens == opaqueUserInfo {
		if c.UserInfoURL != "" {
			if err := checkURL(c.UserInfoURL); err != nil {
				add("TOKENWARD_USERINFO_URL: %v", err)
			}
		}
		return problems
	}

	if c.IntrospectionURL != "" {
		if err := checkURL(c.IntrospectionURL); err != nil {
			add("TOKENWARD_INTROSPECTION_URL: %v", err)
		}
	}
	if c.IntrospectionClientID == "" {
		add("TOKENWARD_INTROSPECTION_CLIENT_ID is not set: introspection needs the client ID tokenward authenticates with (client_secret_basic)")
	}
	switch {
	case c.IntrospectionClientSecret != "" && c.IntrospectionClientSecretFile != "":
		add("TOKENWARD_INTROSPECTION_CLIENT_SECRET and TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE are both set: choose one")
	case c.IntrospectionClientSecret != "":
		c.clientSecret = c.IntrospectionClientSecret
	case c.IntrospectionClientSecretFile != "":
		secret, err := opaque.ReadSecretFile(c.IntrospectionClientSecretFile)
		if err != nil {
			add("TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE: %s", problem(err))
		}
		c.clientSecret = secret
	default:
		add("TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE (or TOKENWARD_INTROSPECTION_CLIENT_SECRET) is not set: introspection needs the client secret; a file (a mounted Kubernetes Secret) keeps it out of the environment")
	}
	return problems
}

// checkDenyList checks the deny list's variables. The list itself is loaded
// by newGateway.
func (c *Config) checkDenyList() []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if c.DenyListInterval < 0 && !c.unreadable["TOKENWARD_DENYLIST_INTERVAL"] {
		add("TOKENWARD_DENYLIST_INTERVAL: %s is negative", c.DenyListInterval)
	}
	switch {
	case c.DenyListFile != "" && c.DenyListURL != "":
		add("TOKENWARD_DENYLIST_FILE and TOKENWARD_DENYLIST_URL are both set: choose one")
	case c.DenyListFile != "":
		fi, err := os.Stat(c.DenyListFile)
		switch {
		case err != nil:
			add("TOKENWARD_DENYLIST_FILE: %v", err)
		case !fi.Mode().IsRegular():
			add("TOKENWARD_DENYLIST_FILE: %s is not a regular file", c.DenyListFile)
		}
	case c.DenyListURL != "":
		// The deny list's own URL policy: https, or http on loopback; no
		// user info; the query, which may hold a credential, never shown.
		if err := httpfetch.CheckSourceURL(c.DenyListURL); err != nil {
			add("TOKENWARD_DENYLIST_URL: %s", problem(err))
		}
	case c.DenyListInterval != 0:
		c.ignored = append(c.ignored, "TOKENWARD_DENYLIST_INTERVAL is ignored without TOKENWARD_DENYLIST_FILE or TOKENWARD_DENYLIST_URL")
	}
	return problems
}

// opaqueCache maps the cache variables to the checkers' options, in which
// zero means the default and a negative TTL no caching.
func (c *Config) opaqueCache() (ttl, negativeTTL time.Duration, entries int) {
	ttl, negativeTTL, entries = c.OpaqueCacheTTL, c.OpaqueNegativeTTL, c.OpaqueCacheSize
	if ttl == 0 || entries == 0 {
		ttl = -1
	}
	if negativeTTL == 0 || entries == 0 {
		negativeTTL = -1
	}
	return ttl, negativeTTL, entries
}

// opaqueStaleIfBusy maps TOKENWARD_OPAQUE_STALE_IF_BUSY to the checkers'
// StaleIfBusy, in which zero means the default and a negative value off.
func (c *Config) opaqueStaleIfBusy() time.Duration {
	if c.OpaqueStaleIfBusy == 0 {
		return -1
	}
	return c.OpaqueStaleIfBusy
}

// validatorOptions maps the configuration to the validator's options.
func (c *Config) validatorOptions() middleware.ValidatorOptions {
	leeway := c.Leeway
	if leeway == 0 {
		leeway = -1 // the validator reads zero as its default; 0 here means none
	}
	return middleware.ValidatorOptions{
		Algorithms:    c.Algorithms,
		Leeway:        leeway,
		RequireATJWT:  c.RequireATJWT,
		MaxTokenBytes: c.MaxTokenBytes,
		CacheSize:     c.CacheSize,
		CacheMaxBytes: c.CacheMaxBytes,
	}
}

// registryOptions maps the configuration to the key sets' options: the key
// set files read by check are used as read.
func (c *Config) registryOptions(log *slog.Logger) jwks.RegistryOptions {
	return jwks.RegistryOptions{
		JWKSURLs: c.jwksURLs,
		Static:   c.keyFiles,
		Remote: jwks.RemoteOptions{
			RefreshInterval:    c.JWKSRefreshInterval,
			MinRefreshInterval: c.JWKSMinRefreshInterval,
			Logger:             log,
		},
	}
}

// list trims every element and drops the empty ones.
func list(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// scopeList is list, also splitting on spaces: scopes are written
// space-delimited in OAuth, and a scope can never contain one.
func scopeList(in []string) []string {
	var out []string
	for _, s := range in {
		out = append(out, strings.Fields(s)...)
	}
	return out
}

// splitJWKSPair splits one TOKENWARD_JWKS_URIS element, issuer=url. Issuer
// URLs and key set URLs may both contain "=", so the pair is split at the
// first "=" that is followed (after optional spaces) by "https://", "http://"
// or "file://": the start of the key set URL.
func splitJWKSPair(pair string) (issuer, keySetURL string, ok bool) {
	for i := 0; i < len(pair); i++ {
		if pair[i] != '=' {
			continue
		}
		rest := strings.TrimSpace(pair[i+1:])
		for _, scheme := range []string{"https://", "http://", "file://"} {
			if len(rest) >= len(scheme) && strings.EqualFold(rest[:len(scheme)], scheme) {
				issuer = strings.TrimSpace(pair[:i])
				if issuer == "" {
					return "", "", false
				}
				return issuer, rest, true
			}
		}
	}
	return "", "", false
}

// checkURL is the issuer URL policy (httpfetch.CheckURL), whose problem is
// printed after the variable's name (user info, which could be a password,
// is not echoed).
func checkURL(raw string) error {
	if err := httpfetch.CheckURL(raw); err != nil {
		return errors.New(problem(err))
	}
	return nil
}

// checkKeySetURL accepts an https key set URL (http on loopback), or a
// readable file:///path holding a usable key set, which it keeps in
// c.keyFiles for the registry (a file is read once, however many issuers
// name it).
func (c *Config) checkKeySetURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "file" {
		return checkURL(raw)
	}
	if (u.Host != "" && u.Host != "localhost") || u.Path == "" {
		return fmt.Errorf("%q must be file:///absolute/path", raw)
	}
	if c.keyFiles[raw] != nil {
		return nil
	}
	set, err := jwks.LoadFile(u.Path)
	var (
		pe      *jwks.ParseError
		pathErr *fs.PathError
	)
	switch {
	case err == nil:
		c.keyFiles[raw] = set
		return nil
	case errors.As(err, &pe):
		return fmt.Errorf("%s (in %s)", pe.Reason, u.Path)
	case errors.As(err, &pathErr):
		return fmt.Errorf("read key set: %w", pathErr)
	}
	return err
}

// checkUpstream accepts what proxy.New accepts: http, https, h2c (HTTP/2
// without TLS) and unix:///path/to.sock URLs, without user info, query or
// fragment.
func checkUpstream(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", httpfetch.Redact(raw))
	}
	switch {
	case u.User != nil:
		return fmt.Errorf("%s must not have user info", httpfetch.Redact(raw))
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q must not have a query or a fragment", raw)
	}
	switch u.Scheme {
	case "http", "https", "h2c":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
		}
	case "unix":
		if u.Path == "" {
			return fmt.Errorf("%q names no socket (write unix:///path/to.sock)", raw)
		}
	default:
		return fmt.Errorf("%q must be an http://, https://, h2c:// or unix:// URL", raw)
	}
	return nil
}

func redactPair(pair string) string {
	if strings.Contains(pair, "@") {
		return "(a value with user info, not shown)"
	}
	return pair
}

// problem is the client-safe text of a typed error, which names no package,
// to print after a variable's name; other errors are printed whole.
func problem(err error) string {
	var (
		ue *jwks.URLError
		se *opaque.SecretFileError
		le *denylist.LoadError
		ie *scopes.InvalidScopeError
		re *resource.URIError
	)
	switch {
	case errors.As(err, &ue):
		return ue.Problem
	case errors.As(err, &se):
		return se.Problem
	case errors.As(err, &le):
		return le.Problem
	case errors.As(err, &ie):
		return ie.Problem
	case errors.As(err, &re):
		return re.Problem
	}
	return err.Error()
}

// unjoin flattens errors.Join trees into their leaves.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}
