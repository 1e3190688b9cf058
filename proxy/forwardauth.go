package proxy

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/tokenward/tokenward/middleware"
)

// ForwardAuth answers "may this request pass?" for NGINX auth_request,
// Traefik ForwardAuth and Envoy ext_authz (HTTP service), on any path. The
// original method and URI come from X-Forwarded-Method and X-Forwarded-Uri
// (Traefik, Envoy), X-Original-Method and X-Original-URI (NGINX) or
// X-Original-URL (ingress-nginx). All that are present must agree, and a
// question without them is refused with 400: a client can add headers the
// gateway does not overwrite. The answer is 200 with the identity headers
// and X-Envoy-Auth-Headers-To-Remove naming the configured ones it lacks,
// or the same 400/401/403/503 as the proxy.
type ForwardAuth struct {
	g *guard
}

// NewForwardAuth returns the forward-auth handler.
func NewForwardAuth(cfg Config) (*ForwardAuth, error) {
	g, err := newGuard(cfg)
	if err != nil {
		return nil, err
	}
	return &ForwardAuth{g: g}, nil
}

// envoyHeadersToRemove names, in an allowing answer, the request headers
// Envoy's ext_authz HTTP service removes before forwarding (comma-separated;
// the name follows Envoy's default header prefix, x-envoy).
const envoyHeadersToRemove = "X-Envoy-Auth-Headers-To-Remove"

func (f *ForwardAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target, ok := originalRequest(r)
	if !ok {
		f.g.log.Info("request refused", "reason", "bad_original_uri", "status", http.StatusBadRequest, "client", r.RemoteAddr)
		badRequest(w, f.g.realm, "original request URI is missing, malformed or not canonical")
		return
	}
	// The same contract as the proxy's, on the original request: the gateway
	// passes the client's headers (a method override among them) on to us.
	// The gateway sends no body: whether the original had one is unknown,
	// so only a form Content-Type tells that it may carry a _method field.
	rules := f.g.rules.Load() // once: the request is judged by one set
	override, refused := rules.normalize(target.Method, target.URL, r.Header, bodyUnknown)
	if refused != nil {
		f.g.badRequest(w, r, refused)
		return
	}
	// The client's connection is the gateway's: nothing is known of it.
	d := f.g.decide(r.Context(), rules, target, override, r.Header, middleware.Peer{})
	if d.err != nil {
		f.g.refuse(w, r, d, target.Method, target.URL.Path)
		return
	}
	h := w.Header()
	if d.claims != nil {
		f.g.identity.set(h, d.claims)
	}
	// Envoy's ext_authz copies only the headers an answer has
	// (allowed_upstream_headers): it must be told to remove a client's copy
	// of each identity header this answer lacks.
	if rm := f.g.identity.unset(h); rm != "" {
		h[envoyHeadersToRemove] = []string{rm}
	}
	h.Set("Cache-Control", "no-store")
	f.g.allowed(r, d, target.Method, target.URL.Path)
	w.WriteHeader(http.StatusOK)
}

// originalRequest rebuilds the request being asked about, for route matching.
// The gateway sets one family of headers (X-Original-* for NGINX and
// ingress-nginx, X-Forwarded-* for Traefik and Envoy) but passes on whatever
// else the client sent, so a client can add the other family: every source
// present must agree, or the question is refused. Without an original method
// and URI the question is refused too, since judging the auth request's own
// path would skip the route rules.
func originalRequest(r *http.Request) (*http.Request, bool) {
	var methods, uris, hosts []string
	methods = append(methods, r.Header.Values("X-Forwarded-Method")...)
	methods = append(methods, r.Header.Values("X-Original-Method")...)
	uris = append(uris, r.Header.Values("X-Forwarded-Uri")...)
	uris = append(uris, r.Header.Values("X-Original-Uri")...)
	hosts = append(hosts, r.Header.Values("X-Forwarded-Host")...)
	// ingress-nginx sends the whole URL, and X-Original-URI only with the
	// auth-method annotation.
	for _, raw := range r.Header.Values("X-Original-Url") {
		u, err := url.Parse(raw)
		if err != nil || !u.IsAbs() || strings.IndexByte(raw, '#') >= 0 {
			return nil, false
		}
		uris = append(uris, u.RequestURI())
		hosts = append(hosts, u.Host)
	}
	method, ok := agreed(methods)
	if !ok || slices.ContainsFunc(methods, func(m string) bool { return m != method }) {
		return nil, false // methods are case-sensitive: "delete" is not DELETE
	}
	uri, ok := agreed(uris)
	if !ok {
		return nil, false
	}
	host := r.Host
	if len(hosts) > 0 {
		if host, ok = agreed(hosts); !ok {
			return nil, false
		}
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, false
	}
	for _, other := range uris {
		// Equal after parsing, so that a gateway's escaping does not matter
		// but a different path or query does.
		o, err := url.ParseRequestURI(other)
		if err != nil || o.Path != u.Path || o.RawQuery != u.RawQuery {
			return nil, false
		}
	}
	return &http.Request{Method: method, URL: u, Host: host, Header: http.Header{}}, true
}

// agreed returns the one value all of vs share; false when vs is empty or
// they differ.
func agreed(vs []string) (string, bool) {
	if len(vs) == 0 {
		return "", false
	}
	for _, v := range vs[1:] {
		if v != vs[0] && !strings.EqualFold(v, vs[0]) {
			return "", false
		}
	}
	return vs[0], true
}
