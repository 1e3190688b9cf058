package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

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

// Route is what a request must satisfy.
type Route struct {
	// Pattern is the rule's pattern, or "" when no rule matched.
	Pattern string
	// Public means no token is needed.
	Public bool
	// Required are the scopes needed: the global ones and the rule's.
	Required scopes.Requirement
}

// Rules maps requests to routes, with http.ServeMux doing the matching, so
// tokenward has no matcher of its own to get wrong. It is immutable after
// [ParseRules] and safe for concurrent use.
type Rules struct {
	mux      *http.ServeMux
	routes   map[string]*Route // by pattern
	fallback *Route            // for requests no rule matches
}

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
func ParseRules(data []byte, global scopes.Requirement) (*Rules, error) {
	var file struct {
		Routes []Rule `yaml:"routes"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("proxy: rules: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return NewRules(file.Routes, global)
}

// NewRules compiles rules given in code. See [ParseRules].
func NewRules(rules []Rule, global scopes.Requirement) (*Rules, error) {
	var errs []error
	if err := global.Validate(); err != nil {
		errs = append(errs, err)
	}
	r := &Rules{
		mux:      http.NewServeMux(),
		routes:   make(map[string]*Route, len(rules)),
		fallback: &Route{Required: global},
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
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
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

// Match returns the route of a request. The request's path must already be
// canonical (see canonicalPath): ServeMux would otherwise answer with a
// redirect, and the route of the redirect target is not the route of what the
// upstream would serve.
func (r *Rules) Match(req *http.Request) *Route {
	if len(r.routes) == 0 {
		return r.fallback
	}
	if host := matchHost(req.Host); host != req.Host {
		// ServeMux compares hosts byte for byte, but DNS names are not case
		// sensitive and a trailing dot names the same host: upstreams,
		// ingresses and gateways serve ADMIN.example.com. as
		// admin.example.com, so its rule must apply.
		shallow := *req
		shallow.Host = host
		req = &shallow
	}
	h, pattern := r.mux.Handler(req)
	if rh, ok := h.(routeHandler); ok && pattern != "" {
		return rh.route
	}
	// For a canonical path, ServeMux answers with a redirect only from /tree
	// to /tree/ (a subtree or {rest...} pattern), and names that pattern. The
	// upstream serves /tree itself, often as /tree/: give it the subtree's
	// requirement rather than the fallback, which may be weaker. A public
	// subtree does not make /tree public.
	if route, ok := r.routes[pattern]; ok && !route.Public {
		return route
	}
	return r.fallback
}
