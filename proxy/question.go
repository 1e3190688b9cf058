package proxy

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/tokenward/tokenward/internal/headername"
	"github.com/tokenward/tokenward/middleware"
)

// Question is a request a gateway asks about in its own terms rather than
// as an HTTP request (Envoy's gRPC ext_authz: package extauthz).
type Question struct {
	// Method, URI (path and query, in origin form) and Host are the
	// original request's, from the gateway.
	Method string
	URI    string
	Host   string
	// Scheme is the original request's, "http" or "https" (Envoy's
	// attributes.request.http.scheme), for DPoP's htu. "" means the
	// X-Forwarded-Proto in Header, else "http".
	Scheme string
	// Header holds the client's headers with canonical keys
	// (http.CanonicalHeaderKey), without pseudo-headers. Check removes the
	// identity headers from it.
	Header http.Header
	// Peer is what the gateway says of the client's connection. Check
	// reads neither of its fields for the decision: a client certificate
	// comes in Header (Client-Cert, X-Forwarded-Client-Cert), from a
	// Gateway in [Config].TrustedProxies.
	Peer middleware.Peer
	// Gateway is the address of the asking gateway ("host:port"), for logs
	// and for trusting its certificate headers.
	Gateway string
}

// Answer is [ForwardAuth.Check]'s answer: the same decision, status,
// challenge and body that [ForwardAuth.ServeHTTP] writes.
type Answer struct {
	// Status is 200 to let the request pass, else the status the client
	// gets (400, 401, 403, 503).
	Status int
	// Header, on 200, holds the identity headers to set on the request
	// passed on; otherwise the headers of the answer to the client
	// (WWW-Authenticate, Retry-After, Content-Type, Cache-Control,
	// X-Content-Type-Options).
	Header http.Header
	// Remove, on 200, names the headers to remove from the request passed
	// on: every configured identity header that Header lacks (all of them
	// on a public route), every other spelling of an identity header the
	// client sent ("_" for "-"), so that no client copy survives, and each
	// header the client sent that upstreams may take for the host or path
	// of the request instead of its own (X-Forwarded-Host, Forwarded,
	// X-Original-URL, X-Rewrite-URL, …; see routeHeaders), in its spelling.
	Remove []string
	// Body is the JSON body of a refusal; nil on 200.
	Body []byte
	// ResponseHeader, on 200, holds headers for the answer to the client
	// (DPoP-Nonce, when a DPoP client's nonce rotated). Nil when none.
	ResponseHeader http.Header
}

// Check decides about q exactly as ServeHTTP decides about a request with
// the original method and URI in its headers: the normalization contract,
// the route rules, the identity headers, logs and metrics. A URI that is not
// a path in origin form gets 400. It is safe for concurrent use.
func (f *ForwardAuth) Check(ctx context.Context, q Question) Answer {
	aw := answerWriter{h: http.Header{}}
	h := q.Header
	if h == nil {
		h = http.Header{}
	}
	u, err := url.ParseRequestURI(q.URI)
	if err != nil || !strings.HasPrefix(q.URI, "/") {
		return f.BadRequest(ctx, q.Gateway, "bad_original_uri", "original request URI is missing, malformed or not canonical")
	}
	// Spellings that CGI-style upstreams read as an identity header, taken
	// before the guard strips them: the gateway must remove them itself.
	var spelt []string
	for k := range h {
		if f.g.identity.names[headerAlias(k)] && !f.g.identity.configured(k) || routeHeader(k) {
			spelt = append(spelt, k)
		}
	}
	target := (&http.Request{Method: q.Method, URL: u, Host: q.Host, Header: http.Header{}, RemoteAddr: q.Gateway}).WithContext(ctx)
	scheme := strings.ToLower(q.Scheme)
	switch scheme {
	case "http", "https":
	case "":
		scheme = originalScheme(http.Header{"X-Forwarded-Proto": h.Values("X-Forwarded-Proto")})
	default:
		scheme = unknownScheme
	}
	allowed, rm := f.judge(&aw, target, target, h, middleware.Peer{Addr: q.Gateway}, scheme)
	if !allowed {
		return Answer{Status: aw.status, Header: aw.h, Body: aw.body}
	}
	a := Answer{Status: http.StatusOK, Header: aw.h}
	if n, ok := aw.h[http.CanonicalHeaderKey(middleware.DPoPNonceHeader)]; ok {
		a.ResponseHeader = http.Header{http.CanonicalHeaderKey(middleware.DPoPNonceHeader): n}
		delete(aw.h, http.CanonicalHeaderKey(middleware.DPoPNonceHeader))
	}
	if _, sent := h["Dpop"]; sent && !f.g.cfg.ForwardDPoPProof {
		// Verified (or not needed): the upstream has no use for it.
		a.Remove = append(a.Remove, "DPoP")
	}
	for name := range strings.SplitSeq(rm, ", ") {
		if name != "" {
			a.Remove = append(a.Remove, name)
		}
	}
	a.Remove = append(a.Remove, spelt...)
	return a
}

// BadRequest is the 400 (invalid_request) answer to a question that cannot
// be judged, for a reason found before [ForwardAuth.Check] (missing
// attributes, headers too large): logged with reason, and description told
// to the client. gateway is the asking gateway's address, for the log.
func (f *ForwardAuth) BadRequest(ctx context.Context, gateway, reason, description string) Answer {
	f.g.log.InfoContext(ctx, "request refused", "reason", reason, "status", http.StatusBadRequest, "client", gateway)
	aw := answerWriter{h: http.Header{}}
	f.g.badRequestAnswer(&aw, description)
	return Answer{Status: aw.status, Header: aw.h, Body: aw.body}
}

// routeHeaders name, in lower case with "-", request headers that upstreams
// may take for the host or path of the request rather than its own Host and
// request line: X-Forwarded-Host and Forwarded (Express' trust proxy,
// Django's USE_X_FORWARDED_HOST, Werkzeug's ProxyFix, ASP.NET's forwarded
// headers), X-Original-URL and X-Rewrite-URL (Symfony and Zend did,
// CVE-2018-14773), and the original-request headers of the other gateways.
// A gateway asking in its own terms (Envoy's gRPC ext_authz) passes a
// client's copies on, and the decision was taken on the Host and path it
// named: the upstream must not read another. The proxy removes these too
// (clientAddressHeaders) and sets its own X-Forwarded-Host.
var routeHeaders = []string{"x-forwarded-host", "forwarded", "x-original-url", "x-rewrite-url",
	"x-original-uri", "x-original-method", "x-forwarded-uri", "x-forwarded-method"}

// routeHeadersToRemove is routeHeaders as forward-auth's answer names them
// for Envoy to remove.
const routeHeadersToRemove = "X-Forwarded-Host, Forwarded, X-Original-URL, X-Rewrite-URL, " +
	"X-Original-URI, X-Original-Method, X-Forwarded-Uri, X-Forwarded-Method"

// routeHeader reports whether name is one of routeHeaders in any case and
// with "_" for "-".
func routeHeader(name string) bool { return headername.Is(name, routeHeaders) }
