package proxy

import (
	"net/http"
	"net/url"
	"strings"
)

// ForwardAuth answers "may this request pass?" for NGINX auth_request,
// Traefik ForwardAuth and Envoy ext_authz (HTTP service), on any path. The
// original method and URI come from X-Forwarded-Method and X-Forwarded-Uri
// (Traefik, Envoy) or X-Original-Method and X-Original-URI (NGINX); without
// them the request's own method and URI are judged. The answer is 200 with
// the identity headers, or the same 400/401/403/503 as the proxy.
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

func (f *ForwardAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target, ok := originalRequest(r)
	if !ok {
		f.g.log.Info("request refused", "reason", "bad_original_uri", "status", http.StatusBadRequest, "client", r.RemoteAddr)
		badRequest(w, "original request URI is missing, malformed or not canonical")
		return
	}
	d := f.g.decide(r.Context(), target, r.Header)
	if d.err != nil {
		f.g.refuse(w, r, d, target.Method, target.URL.Path)
		return
	}
	h := w.Header()
	if d.claims != nil {
		f.g.identity.set(h, d.claims)
	}
	h.Set("Cache-Control", "no-store")
	f.g.allowed(r, d, target.Method, target.URL.Path)
	w.WriteHeader(http.StatusOK)
}

// originalRequest rebuilds the request being asked about, for route matching.
func originalRequest(r *http.Request) (*http.Request, bool) {
	method := first(r.Header, "X-Forwarded-Method", "X-Original-Method")
	uri := first(r.Header, "X-Forwarded-Uri", "X-Original-Uri")
	host := first(r.Header, "X-Forwarded-Host")
	if method == "" {
		method = r.Method
	}
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	if host == "" {
		host = r.Host
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil || !validMethod(method) || !canonicalPath(u) {
		return nil, false
	}
	return &http.Request{Method: method, URL: u, Host: host, Header: http.Header{}}, true
}

func first(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	return strings.IndexFunc(m, func(r rune) bool { return r < 'A' || r > 'Z' }) < 0
}
