package proxy

import (
	"errors"
	"fmt"
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
// gateway does not overwrite — unless [ForwardAuthOptions].AllowRequestLine
// says the gateway sends the original method and path as its own request
// line (Envoy's defaults). The answer is 200 with the identity headers
// and X-Envoy-Auth-Headers-To-Remove naming the configured ones it lacks,
// or the same 400/401/403/503 as the proxy. [ForwardAuth.Check] gives the
// same answer to a gateway that asks in its own terms (Envoy's gRPC
// ext_authz, package extauthz).
type ForwardAuth struct {
	g    *guard
	opts ForwardAuthOptions
}

// ForwardAuthOptions tunes [ForwardAuth]. The zero value needs the original
// request's headers on every question.
type ForwardAuthOptions struct {
	// AllowRequestLine judges the method and path of the question's own
	// request line, PathPrefix removed: what Envoy's ext_authz HTTP service
	// sends by default. Any original-request header present
	// (X-Forwarded-Method, X-Forwarded-Uri, X-Forwarded-Host,
	// X-Original-Method, X-Original-URI, X-Original-URL) is a client's copy
	// that Envoy passed on: together they must name the same method, path,
	// query and host as the request line, or the question is refused with
	// 400. Risk:
	// a gateway that forgets its headers (an NGINX auth_request pointing at
	// a fixed path) is then judged on the path it asks on, not on the
	// client's request. False refuses such a question with 400.
	AllowRequestLine bool
	// PathPrefix is removed from the request line's path in the
	// AllowRequestLine mode (Envoy's path_prefix): "/auth" turns
	// "/auth/api/x" into "/api/x", and a path without it is refused with
	// 400. It must start with "/" and not end with one, with no dot
	// segment, ";", "%", "?" or "#". "" means none.
	PathPrefix string
}

// NewForwardAuth returns the forward-auth handler.
func NewForwardAuth(cfg Config) (*ForwardAuth, error) {
	g, err := newGuard(cfg)
	perr := CheckPathPrefix(cfg.ForwardAuth.PathPrefix)
	if perr == nil && cfg.ForwardAuth.PathPrefix != "" && !cfg.ForwardAuth.AllowRequestLine {
		perr = errors.New("proxy: a forward-auth path prefix is only used with AllowRequestLine")
	}
	if err = errors.Join(err, perr); err != nil {
		return nil, err
	}
	return &ForwardAuth{g: g, opts: cfg.ForwardAuth}, nil
}

// CheckPathPrefix reports whether p may be [ForwardAuthOptions].PathPrefix.
func CheckPathPrefix(p string) error {
	if p == "" {
		return nil
	}
	u, err := url.ParseRequestURI(p)
	if err != nil || p[0] != '/' || strings.HasSuffix(p, "/") || strings.ContainsAny(p, ";%?#\\") ||
		u.Path != p || !canonicalPath(u, false) {
		return fmt.Errorf("proxy: forward-auth path prefix %q must be a canonical path starting with / and not ending with one", p)
	}
	return nil
}

// envoyHeadersToRemove names, in an allowing answer, the request headers
// Envoy's ext_authz HTTP service removes before forwarding (comma-separated;
// the name follows Envoy's default header prefix, x-envoy).
const envoyHeadersToRemove = "X-Envoy-Auth-Headers-To-Remove"

func (f *ForwardAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rs := f.g.cfg.Resource; rs != nil && rs.Owns(r.URL.Path) && !asksAbout(r.Header) {
		// Not a question (no original method or URI): a client sent here by
		// the gateway's route for the metadata document.
		if f.g.originAllowed(w, r, r.Header) {
			rs.ServeHTTP(w, r)
		}
		return
	}
	target, ok := f.originalRequest(r)
	if !ok {
		f.g.log.Info("request refused", "reason", "bad_original_uri", "status", http.StatusBadRequest, "client", r.RemoteAddr)
		f.g.badRequestAnswer(w, "original request URI is missing, malformed or not canonical")
		return
	}
	// The connection is the gateway's: the client's certificate, if any,
	// comes in a header, read only if the gateway is a trusted proxy. The
	// gateway's own TLS certificate is not the client's.
	allowed, rm := f.judge(w, r, target, r.Header, middleware.Peer{Addr: r.RemoteAddr}, originalScheme(r.Header))
	if !allowed {
		return
	}

	h := w.Header()
	// Envoy's ext_authz copies only the headers an answer has
	// (allowed_upstream_headers): it must be told to remove a client's copy
	// of each identity header this answer lacks, and of each header an
	// upstream may read as the request's host or path instead of the ones
	// judged here (Envoy passes a client's copies on; it sends us only the
	// headers its allowed_headers names, so we cannot tell whether there
	// are any). The other gateways ignore this header.
	// And the DPoP proof, verified, unless it is to be forwarded.
	remove := joinNames(rm, routeHeadersToRemove)
	if !f.g.cfg.ForwardDPoPProof {
		remove += ", DPoP"
	}
	h[envoyHeadersToRemove] = []string{remove}
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// judge is the decision of both forward-auth front ends (ServeHTTP and
// Check) on the original request target, with the client's headers h: the
// normalization contract, then the guard. A refusal is written to w whole;
// an allow only sets the identity headers in w.Header(), and rm lists those
// it lacks, comma-separated. r gives the log its context and client address.
//
// scheme is the original request's ("http", "https"), for DPoP's htu.
func (f *ForwardAuth) judge(w http.ResponseWriter, r, target *http.Request, h http.Header, peer middleware.Peer, scheme string) (allowed bool, rm string) {
	// The same contract as the proxy's, on the original request: the gateway
	// passes the client's headers (a method override among them) on to us.
	// The gateway sends no body: whether the original had one is unknown,
	// so only a form Content-Type tells that it may carry a _method field.
	if !f.g.originAllowed(w, r, h) {
		return false, ""
	}
	rules := f.g.rules.Load() // once: the request is judged by one set
	override, refused := rules.normalize(target.Method, target.URL, h, bodyUnknown)
	if refused != nil {
		f.g.badRequest(w, r, refused)
		return false, ""
	}
	d := f.g.decide(r.Context(), rules, target, override, h, peer, scheme, "")
	// On a refusal the gateway passes the answer (DPoP-Nonce with it) to
	// the client; on an allow, a gateway told to copies it to the
	// client's answer (see the README).
	f.g.mw.NonceHeader(w.Header(), d.claims, d.err)
	if d.err != nil {
		f.g.refuse(w, r, d, target.Method, target.URL.Path)
		return false, ""
	}
	out := w.Header()
	if d.claims != nil {
		f.g.identity.set(out, d.claims)
	}
	f.g.allowed(r, d, target.Method, target.URL.Path)
	return true, f.g.identity.unset(out)
}

// answerWriter keeps an answer: the middleware's error writer writes to it.
type answerWriter struct {
	h      http.Header
	status int
	body   []byte
}

func (w *answerWriter) Header() http.Header { return w.h }
func (w *answerWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *answerWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, b...)
	return len(b), nil
}

// originalRequest rebuilds the request being asked about, for route matching.
// The gateway sets one family of headers (X-Original-* for NGINX and
// ingress-nginx, X-Forwarded-* for Traefik and Envoy) but passes on whatever
// else the client sent, so a client can add the other family: every source
// present must agree, or the question is refused. Without an original method
// and URI the question is refused too, since judging the auth request's own
// path would skip the route rules.
func (f *ForwardAuth) originalRequest(r *http.Request) (*http.Request, bool) {
	if f.opts.AllowRequestLine {
		line, ok := f.requestLine(r)
		if !ok || !hasOriginalHeaders(r.Header) {
			return line, ok
		}
		// Envoy sets none of these headers: present, they are the client's,
		// passed on by an allowed_headers that matches them, and judging
		// them would judge the route the client names rather than the one
		// Envoy forwards to. They may only repeat the request line.
		named, ok := f.fromHeaders(r)
		if !ok || named.Method != line.Method || named.URL.Path != line.URL.Path ||
			named.URL.RawQuery != line.URL.RawQuery || !strings.EqualFold(named.Host, line.Host) {
			return nil, false
		}
		return line, true
	}
	return f.fromHeaders(r)
}

// fromHeaders is the original request named by the original-request
// headers, all of which must agree.
func (f *ForwardAuth) fromHeaders(r *http.Request) (*http.Request, bool) {
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

// originalHeaders are the headers that carry the original request; with
// any of them present in the request-line mode, they must agree with the
// request line.
var originalHeaders = []string{"X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-Host",
	"X-Original-Method", "X-Original-Uri", "X-Original-Url"}

// asksAbout reports whether h names an original method or URI: a question,
// not a request for the listener's own document.
func asksAbout(h http.Header) bool {
	for _, k := range originalHeaders {
		if _, ok := h[k]; ok && k != "X-Forwarded-Host" {
			return true
		}
	}
	return false
}

func hasOriginalHeaders(h http.Header) bool {
	for _, k := range originalHeaders {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}

// requestLine is the original request in the AllowRequestLine mode: the
// question's own method, host and request target with the prefix removed.
// The target must be in origin form, and what follows the prefix must
// start a path: "/auth" does not take "/authz/x" for "z/x".
func (f *ForwardAuth) requestLine(r *http.Request) (*http.Request, bool) {
	rest, ok := strings.CutPrefix(r.RequestURI, f.opts.PathPrefix)
	if !ok || !strings.HasPrefix(rest, "/") {
		return nil, false
	}
	u, err := url.ParseRequestURI(rest)
	if err != nil {
		return nil, false
	}
	return &http.Request{Method: r.Method, URL: u, Host: r.Host, Header: http.Header{}}, true
}

// originalScheme is the scheme of the original request, for DPoP's htu:
// that of X-Original-URL (ingress-nginx) or X-Forwarded-Proto (Traefik,
// Envoy, or an NGINX told to send it), which must agree when both are
// there; "http" when neither is. When they disagree, or name something else
// (a list, another scheme), it is unknownScheme.
func originalScheme(h http.Header) string {
	var schemes []string
	for _, raw := range h.Values("X-Original-Url") {
		u, err := url.Parse(raw)
		if err != nil {
			return unknownScheme
		}
		schemes = append(schemes, u.Scheme)
	}
	schemes = append(schemes, h.Values("X-Forwarded-Proto")...)
	if len(schemes) == 0 {
		return "http"
	}
	s, ok := agreed(schemes)
	s = strings.ToLower(strings.TrimSpace(s))
	if !ok || s != "http" && s != "https" {
		return unknownScheme
	}
	return s
}

// unknownScheme stands for a scheme the gateway did not name clearly. It
// is neither http nor https, so that no DPoP proof's htu matches a URL with
// it (dpop_url: fail closed), while a bearer token, which names no URL, is
// judged as before.
const unknownScheme = "unknown"

// joinNames adds name to a comma-separated list of header names.
func joinNames(list, name string) string {
	if list == "" {
		return name
	}
	return list + ", " + name
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
