package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"go.yaml.in/yaml/v3"

	"github.com/tokenward/tokenward/scopes"
)

// Rule is one entry of the rules file.
type Rule struct {
	// Match is a net/http.ServeMux pattern: "[METHOD ][HOST]/path", with
	// {name} and {rest...} wildcards; the most specific pattern wins.
	Match string `yaml:"match"`
	// Scopes must all be granted.
	Scopes []string `yaml:"scopes"`
	// AnyScopes: at least one must be granted.
	AnyScopes []string `yaml:"any_scopes"`
	// Public routes need no token; the token, if any, is ignored and no
	// identity is forwarded.
	Public bool `yaml:"public"`
}

// RulesOptions are the rules file's top-level settings besides routes. The
// zero value is the strict default; each field weakens the normalization
// contract (see the package's Security section) and says at what risk.
type RulesOptions struct {
	// AllowMethodOverride names the method-override headers the upstream
	// honours (X-HTTP-Method-Override, say). A request carrying one of them,
	// in any spelling (case, "_" for "-"), is then let through if it carries
	// exactly one value, an upper-case method, and gets the stricter of the
	// routes of its own method and of the overriding one. Empty: a request
	// carrying X-HTTP-Method-Override, X-HTTP-Method or X-Method-Override in
	// any spelling is refused with 400. Risk: an upstream that reads the
	// override from somewhere tokenward does not (another header, a form
	// body's _method) runs a method whose rule was not applied.
	AllowMethodOverride []string `yaml:"allow_method_override"`
	// AllowEncodedSlash lets a "%2F" through inside a path segment, for APIs
	// that put slashes into one segment (GitLab's /projects/group%2Fname).
	// Such a request gets the stricter of the routes of both readings: the
	// encoded slash inside its segment (as ServeMux matches it) and a real
	// separator (as an upstream that decodes before routing would).
	// False: a path with %2F is refused with 400. Risk: an upstream that
	// decodes twice, or reads the segment as a path to a file, may serve
	// what neither reading names.
	AllowEncodedSlash bool `yaml:"allow_encoded_slash"`
}

// Route is what a request must satisfy.
type Route struct {
	// Pattern is the rule's pattern, or "" when no rule matched. When the
	// spellings of a request that upstreams route alike (with and without a
	// trailing slash, in lower case, with an overriding method) match
	// different rules, the route combines them and Pattern joins theirs
	// with " + ".
	Pattern string
	// Public means no token is needed.
	Public bool
	// Required are the scopes needed: the global ones and the rule's.
	Required scopes.Requirement
}

// Rules maps requests to routes, with http.ServeMux doing the matching, so
// tokenward has no matcher of its own to get wrong. Its rules are immutable
// after [ParseRules] and it is safe for concurrent use.
type Rules struct {
	mux *http.ServeMux
	// folded holds the patterns with their paths in lower case, for
	// upstreams that route without regard to case; it is mux when every
	// pattern's path is in lower case already.
	folded       *http.ServeMux
	routes       map[string]*Route // by pattern
	foldedRoutes map[string]*Route // by pattern in folded
	fallback     *Route            // for requests no rule matches
	opts         RulesOptions
	// overrides holds the headerAlias form of the method-override headers
	// honoured (opts.AllowMethodOverride).
	overrides map[string]bool
	// methods are those the patterns name, and otherMethod standing for all
	// others: what a POST may become through a _method form field.
	methods []string
	// bareDepths and slashDepths have bit n set if some pattern can match
	// exactly a path of n segments without a trailing slash (bare), or with
	// one (slash); bit 63 stands for 63 and more. A trailing-slash spelling
	// of a depth no pattern has is not looked up: most requests look up
	// only their own path.
	bareDepths, slashDepths uint64

	// mu guards combined: the routes made by stricter, by the pair of routes
	// they combine. It holds at most maxCombined entries.
	mu       sync.RWMutex
	combined map[[2]*Route]*Route
}

// otherMethod is a method no pattern names, so it matches only the patterns
// without a method: it stands for every method the rules do not name.
const otherMethod = "TOKENWARD-OTHER-METHOD"

// maxCombined bounds the cache of combined routes. Each request combines at
// most a few routes, but which ones a client chooses; past the bound a
// combination is made anew for each request (an allocation, not a leak).
const maxCombined = 4096

// refusedOverrides are the method-override headers that frameworks honour
// (Express' method-override, Rails/Rack, Symfony, Laravel, the middleware of
// Flask's documentation), in headerAlias form.
var refusedOverrides = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// routeHandler marks a pattern's route; it is never served.
type routeHandler struct{ route *Route }

func (routeHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "not served", http.StatusInternalServerError)
}

// LoadRules reads a rules file. See [ParseRules].
func LoadRules(path string, global scopes.Requirement) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("proxy: read rules: %w", err)
	}
	return ParseRules(data, global)
}

// ParseRules compiles YAML route rules:
//
//	routes:
//	  - match: "GET /api/contacts/"
//	    scopes: ["read:contacts"]
//	  - match: "POST /api/contacts/"
//	    any_scopes: ["write:contacts", "admin"]
//	  - match: "GET /status"
//	    public: true
//
// global is required on every route that is not public, and on requests that
// match no rule. Unknown fields, invalid or duplicate patterns, invalid scopes
// and a public rule with scopes are errors, all reported together. Empty data
// means no rules.
//
// The top-level options are [RulesOptions]' fields:
//
//	allow_method_override: ["X-HTTP-Method-Override"]
//	allow_encoded_slash: true
func ParseRules(data []byte, global scopes.Requirement) (*Rules, error) {
	var file struct {
		RulesOptions `yaml:",inline"`
		Routes       []Rule `yaml:"routes"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("proxy: rules: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return NewRulesWithOptions(file.Routes, global, file.RulesOptions)
}

// NewRules compiles rules given in code, with the strict default options.
// See [ParseRules].
func NewRules(rules []Rule, global scopes.Requirement) (*Rules, error) {
	return NewRulesWithOptions(rules, global, RulesOptions{})
}

// NewRulesWithOptions compiles rules given in code. See [ParseRules] and
// [RulesOptions].
func NewRulesWithOptions(rules []Rule, global scopes.Requirement, opts RulesOptions) (*Rules, error) {
	var errs []error
	if err := global.Validate(); err != nil {
		errs = append(errs, err)
	}
	r := &Rules{
		mux:       http.NewServeMux(),
		routes:    make(map[string]*Route, len(rules)),
		fallback:  &Route{Required: global},
		opts:      opts,
		overrides: map[string]bool{},
		combined:  map[[2]*Route]*Route{},
	}
	for _, name := range opts.AllowMethodOverride {
		if strings.IndexFunc(name, func(c rune) bool {
			return !(c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z')
		}) >= 0 || name == "" {
			errs = append(errs, fmt.Errorf("proxy: allow_method_override: %q is not a header name", name))
			continue
		}
		r.overrides[headerAlias(name)] = true
	}
	for i, rule := range rules {
		name := fmt.Sprintf("proxy: rule %d (%q)", i+1, rule.Match)
		if rule.Match == "" {
			errs = append(errs, fmt.Errorf("proxy: rule %d: match is empty", i+1))
			continue
		}
		if rule.Public && (len(rule.Scopes) > 0 || len(rule.AnyScopes) > 0) {
			errs = append(errs, fmt.Errorf("%s: a public route cannot require scopes", name))
			continue
		}
		route := &Route{Pattern: rule.Match, Public: rule.Public}
		if !rule.Public {
			route.Required = global.And(scopes.All(rule.Scopes...)).And(scopes.Any(rule.AnyScopes...))
			if err := route.Required.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			}
		}
		if host := patternHost(rule.Match); host != "" && matchHost(host) != host {
			errs = append(errs, fmt.Errorf("%s: write the host in lower case, without a trailing dot", name))
			continue
		}
		if _, dup := r.routes[rule.Match]; dup {
			errs = append(errs, fmt.Errorf("%s: pattern given twice", name))
			continue
		}
		if err := register(r.mux, rule.Match, routeHandler{route}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		r.routes[rule.Match] = route
	}
	catchAll(r.mux)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	r.folded, r.foldedRoutes = r.mux, r.routes
	r.methods = []string{otherMethod}
	for pattern := range r.routes {
		path := patternPath(pattern)
		if i := strings.IndexAny(pattern, " \t"); i >= 0 && !strings.Contains(pattern[:i], "/") &&
			!slices.Contains(r.methods, pattern[:i]) {
			r.methods = append(r.methods, pattern[:i])
		}
		if hasUpper(path) {
			r.folded = nil
		}
		bit := depthBit(path, 0)
		if strings.HasSuffix(path, "/") || strings.HasSuffix(path, "...}") || strings.HasSuffix(path, "{$}") {
			r.slashDepths |= bit
		} else {
			r.bareDepths |= bit
		}
	}
	slices.Sort(r.methods) // the order of combined patterns, for logs
	if r.folded == nil {
		if err := r.fold(rules); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// fold builds r.folded: every pattern with its path in lower case, for the
// upstreams that route /Admin/ and /admin/ alike (Express, ASP.NET). Two
// patterns that become one get the stricter of their routes.
func (r *Rules) fold(rules []Rule) error {
	r.folded = http.NewServeMux()
	byFolded := map[string]*Route{}
	r.foldedRoutes = byFolded
	var order []string
	for _, rule := range rules {
		p := rule.Match
		path := patternPath(p)
		f := p[:len(p)-len(path)] + strings.ToLower(path)
		if prev, ok := byFolded[f]; ok {
			byFolded[f] = r.stricter(prev, r.routes[p])
			continue
		}
		byFolded[f] = r.routes[p]
		order = append(order, f)
	}
	var errs []error
	for _, f := range order {
		if err := register(r.folded, f, routeHandler{byFolded[f]}); err != nil {
			errs = append(errs, fmt.Errorf("proxy: rule %q in lower case (as case-insensitive upstreams route it): %w", f, err))
		}
	}
	catchAll(r.folded)
	return errors.Join(errs...)
}

// catchAll marks every path no rule matches, so that ServeMux finds a
// handler for every request: its answers for no match (404, or 405 with an
// Allow header) allocate.
func catchAll(mux *http.ServeMux) {
	// A rule "/" or "/{x...}" is a catch-all already and refuses this one.
	register(mux, "/", routeHandler{})
}

// depthBit returns the bit of bareDepths or slashDepths for the number of
// segments of path (escaped, as ServeMux splits it) plus more.
func depthBit(path string, more int) uint64 {
	return 1 << min(strings.Count(path, "/")+more, 63)
}

// patternPath returns the path part of a ServeMux pattern: from the first
// "/" on.
func patternPath(pattern string) string {
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		return pattern[i:]
	}
	return ""
}

// matchHost returns the Host of a request as a rule's host is written: the
// host name in lower case, without a trailing dot or a port (ServeMux
// ignores the port).
func matchHost(host string) string {
	name := host
	if i := strings.LastIndexByte(name, ':'); i >= 0 && !strings.Contains(name[i:], "]") {
		name = name[:i] // a port; not a colon inside an IPv6 literal
	}
	if !strings.HasSuffix(name, ".") && !hasUpper(name) {
		return host // the usual case: ServeMux strips the port itself
	}
	// ASCII only, as DNS and the servers behind us fold case.
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, strings.TrimSuffix(name, "."))
}

func hasUpper(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return 'A' <= r && r <= 'Z' }) >= 0
}

// patternHost returns the host part of a ServeMux pattern.
func patternHost(pattern string) string {
	rest := strings.TrimLeft(pattern, " \t")
	if i := strings.IndexAny(rest, " \t"); i >= 0 && !strings.Contains(rest[:i], "/") {
		rest = strings.TrimLeft(rest[i:], " \t") // past the method
	}
	host, _, _ := strings.Cut(rest, "/")
	return host
}

// register turns ServeMux's panic on a bad or conflicting pattern into an error.
func register(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			msg := fmt.Sprint(p)
			msg = strings.TrimPrefix(msg, "http: ")
			err = errors.New(msg)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// Len is the number of rules.
func (r *Rules) Len() int { return len(r.routes) }

// Scopes returns every scope a route (or the fallback, for requests no rule
// matches) requires, each once, sorted: the scopes_supported of the
// resource's metadata by default.
func (r *Rules) Scopes() []string {
	var out []string
	add := func(rt *Route) {
		for _, s := range strings.Fields(rt.Required.String()) {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	for _, rt := range r.routes {
		add(rt)
	}
	if r.fallback != nil {
		add(r.fallback)
	}
	slices.Sort(out)
	return out
}

// Match returns the route of a request. The request's path must already be
// canonical (see canonicalPath): ServeMux would otherwise answer with a
// redirect, and the route of the redirect target is not the route of what the
// upstream would serve.
//
// Upstreams route some spellings of a path alike that ServeMux does not:
// with or without a trailing slash (Express' default routing, Spring 5,
// Flask's redirects), and in any case (Express, ASP.NET). So the route is
// the stricter of the routes of the path, of the path with its trailing slash
// added or removed, and of both in lower case: public only if all are, else
// requiring what each of them requires.
func (r *Rules) Match(req *http.Request) *Route {
	return r.matchMethod(req, req.Method)
}

// lookupScratch is what one Match needs besides the request, pooled so that
// looking up the spellings of a path does not allocate.
type lookupScratch struct {
	req       http.Request
	url       url.URL
	path, raw []byte
}

var lookupScratches = sync.Pool{New: func() any { return new(lookupScratch) }}

// matchMethod is Match for req as if its method were method.
func (r *Rules) matchMethod(req *http.Request, method string) *Route {
	if len(r.routes) == 0 {
		return r.fallback
	}
	// ServeMux compares hosts byte for byte, but DNS names are not case
	// sensitive and a trailing dot names the same host: upstreams, ingresses
	// and gateways serve ADMIN.example.com. as admin.example.com, so its
	// rule must apply.
	host := matchHost(req.Host)
	path, raw := req.URL.Path, req.URL.RawPath
	encodedSlash := r.opts.AllowEncodedSlash && containsFold(raw, "%2f")
	if method == req.Method && host == req.Host && !r.hasTwin(path, raw) && !encodedSlash &&
		r.folded == r.mux && !hasUpper(path) {
		// The common request: one spelling, looked up as it is.
		if route, _ := r.lookup(r.mux, r.routes, req); route != nil {
			return route
		}
		return r.fallback
	}
	s := lookupScratches.Get().(*lookupScratch)
	defer lookupScratches.Put(s)
	s.url = *req.URL
	s.req = http.Request{Method: method, Host: host, URL: &s.url}
	// The request's own spelling gets its route, the fallback included. Any
	// other spelling adds its route only if a rule matches it: a spelling no
	// rule names tells nothing about what the upstream serves.
	route := r.spellings(false, s, path, raw, true)
	if encodedSlash {
		// An upstream that decodes before routing reads %2F as a separator.
		route = r.stricter(route, r.spellings(false, s, path, "", false))
	}
	if r.folded != r.mux || hasUpper(path) {
		lower, lowerRaw := asciiLower(path), asciiLower(raw)
		route = r.stricter(route, r.spellings(true, s, lower, lowerRaw, false))
		if encodedSlash {
			route = r.stricter(route, r.spellings(true, s, lower, "", false))
		}
	}
	s.url, s.req = url.URL{}, http.Request{}
	return route
}

// spellings returns the stricter of the routes of path (escaped as raw) and
// of path with its trailing slash added or removed. The latter counts only if
// a rule matches that spelling exactly, not as a subtree above it: such a
// subtree matches path as well, and ServeMux chose path's own rule over it
// as the more specific. The route of path itself is the fallback when no
// rule matches it and own is true, else nil.
func (r *Rules) spellings(folded bool, s *lookupScratch, path, raw string, own bool) *Route {
	mux, routes := r.mux, r.routes
	if folded {
		mux, routes = r.folded, r.foldedRoutes
	}
	s.url.Path, s.url.RawPath = path, raw
	route, _ := r.lookup(mux, routes, &s.req)
	if route == nil && own {
		route = r.fallback
	}
	if !r.hasTwin(path, raw) {
		return route
	}
	if strings.HasSuffix(path, "/") {
		s.url.Path, s.url.RawPath = path[:len(path)-1], strings.TrimSuffix(raw, "/")
	} else {
		// The spelling with a slash lives only for the lookup below: ServeMux
		// keeps no part of the path once Handler returns, and neither do we,
		// so it can borrow the scratch's buffer instead of allocating.
		s.path = append(append(s.path[:0], path...), '/')
		s.url.Path = unsafe.String(&s.path[0], len(s.path))
		s.url.RawPath = ""
		if raw != "" {
			s.raw = append(append(s.raw[:0], raw...), '/')
			s.url.RawPath = unsafe.String(&s.raw[0], len(s.raw))
		}
	}
	if twin, pattern := r.lookup(mux, routes, &s.req); twin != nil && exactMatch(pattern, s.url.EscapedPath()) {
		route = r.stricter(route, twin)
	}
	s.url.Path, s.url.RawPath = "", ""
	return route
}

// hasTwin tells whether some rule could match path (escaped as raw) with
// its trailing slash added or removed, as its own path.
func (r *Rules) hasTwin(path, raw string) bool {
	if path == "/" || path == "" {
		return false
	}
	escaped := raw
	if escaped == "" {
		escaped = path
	}
	if strings.HasSuffix(escaped, "/") {
		return r.bareDepths&depthBit(escaped, -1) != 0
	}
	return r.slashDepths&depthBit(escaped, 1) != 0
}

// exactMatch tells whether a path that pattern matches is the pattern's own
// path rather than one below a subtree ("/a/", "/a/{rest...}") whose root is
// above it. This is ServeMux's own rule for redirecting /tree to /tree/.
func exactMatch(pattern, path string) bool {
	pp := patternPath(pattern)
	if !strings.HasSuffix(pp, "/") && !strings.HasSuffix(pp, "...}") {
		return true
	}
	return strings.HasSuffix(path, "/") && strings.Count(path, "/") == strings.Count(pp, "/")
}

// lookup returns the route mux finds for req and its pattern, or nil if no
// rule matches; routes are mux's routes by pattern.
func (r *Rules) lookup(mux *http.ServeMux, routes map[string]*Route, req *http.Request) (*Route, string) {
	h, pattern := mux.Handler(req)
	if rh, ok := h.(routeHandler); ok && pattern != "" {
		if rh.route == nil {
			return nil, "" // the catch-all
		}
		return rh.route, pattern
	}
	// For a canonical path, ServeMux answers with a redirect only from /tree
	// to /tree/ (a subtree or {rest...} pattern), and names that pattern. The
	// upstream serves /tree itself, often as /tree/: give it the subtree's
	// requirement rather than the fallback, which may be weaker. A public
	// subtree does not make /tree public.
	if route, ok := routes[pattern]; ok && !route.Public {
		return route, ""
	}
	return nil, ""
}

// stricter returns a route that needs what a and b both need: public only if
// both are.
func (r *Rules) stricter(a, b *Route) *Route {
	switch {
	case a == nil:
		return b
	case b == nil || a == b || b.Public:
		return a
	case a.Public:
		return b
	case b == r.fallback: // every route that is not public requires the global scopes
		return a
	case a == r.fallback:
		return b
	}
	key := [2]*Route{a, b}
	r.mu.RLock()
	c, ok := r.combined[key]
	r.mu.RUnlock()
	if ok {
		return c
	}
	switch req := a.Required.And(b.Required); req.String() {
	case a.Required.String(): // b requires nothing more
		c = a
	case b.Required.String():
		c = b
	default:
		c = &Route{Pattern: a.Pattern + " + " + b.Pattern, Required: req}
	}
	r.mu.Lock()
	if old, ok := r.combined[key]; ok {
		c = old
	} else if len(r.combined) < maxCombined {
		r.combined[key] = c
	}
	r.mu.Unlock()
	return c
}

// containsFold reports whether s contains the lower-case ASCII substr in any
// case, without allocating.
func containsFold(s, substr string) bool {
	for i := 0; i+len(substr) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(substr)], substr) {
			return true
		}
	}
	return false
}

// asciiLower lower-cases ASCII letters only: case-insensitive routers fold
// ASCII (JavaScript's case-insensitive regular expressions without the u
// flag never fold a non-ASCII letter to an ASCII one).
func asciiLower(s string) string {
	if !hasUpper(s) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
