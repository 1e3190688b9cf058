package proxy

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokenward/tokenward/internal/headername"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/resource"
	"github.com/tokenward/tokenward/scopes"
)

// Config is what both handlers need. Validator and Rules are required.
type Config struct {
	// Validator checks tokens.
	Validator *middleware.Validator
	// Rules map requests to routes. Build them with [ParseRules] or
	// [NewRules]; NewRules(nil, required) protects everything alike.
	// Leave nil when RuleSet is set.
	Rules *Rules
	// RuleSet, instead of Rules, holds rules that can be replaced while the
	// handler serves ([RuleSet.Store]); it must hold rules when the handler
	// is built. Nil means the fixed Rules. Setting both is an error.
	RuleSet *RuleSet
	// ClaimHeaders are sent to the upstream on success. Every configured
	// header is first deleted from the client's request, on every route.
	ClaimHeaders []ClaimHeader
	// TokenTypeHeader, if not empty, carries the scheme the token came with
	// to the upstream: "Bearer" or "DPoP" ([middleware.Claims].TokenType),
	// so that it knows whether possession of a key was proven. It is an
	// identity header like ClaimHeaders: deleted from the client's request
	// first, on every route. The key's thumbprint is a claim, cnf.jkt
	// (ClaimHeaders: {Claim: "cnf.jkt", …}).
	TokenTypeHeader string
	// ScopesHeader, if not empty, carries the granted scopes
	// (space-delimited) to the upstream.
	ScopesHeader string
	// StripAuthorization removes the Authorization header before the
	// request reaches the upstream.
	StripAuthorization bool
	// Realm of the WWW-Authenticate challenge; "" means middleware.DefaultRealm.
	Realm string
	// TrustedProxies are the addresses (IPs, CIDRs) of the proxies or
	// gateways that terminate TLS in front of tokenward and name the
	// client's certificate in Client-Cert or X-Forwarded-Client-Cert, for
	// certificate-bound tokens ([middleware.GuardOptions].TrustedProxies).
	// In forward-auth mode, the gateway's address. From any other peer the
	// headers are ignored. The proxy never forwards them to the upstream.
	// Nil means none: only the TLS connection's client certificate counts.
	TrustedProxies []string
	// ForwardClientCert passes the client's certificate on to the upstream
	// (proxy mode), as tokenward judged it: from a trusted proxy, its
	// Client-Cert, Client-Cert-Chain and X-Forwarded-Client-Cert as they
	// came; otherwise the TLS connection's certificate, as an RFC 9440
	// Client-Cert. Whatever a client sent itself is removed all the same.
	// False means the upstream gets no certificate header.
	ForwardClientCert bool
	// DPoP tunes DPoP-bound tokens (RFC 9449; [middleware.DPoPOptions]):
	// the mode, the proof algorithms and window, server nonces, the replay
	// store and the public URL. The zero value accepts both schemes. The
	// htu a proof must name is DPoP.PublicURL's scheme and authority when
	// set; otherwise the reverse proxy takes them from the connection (TLS
	// or not) and the Host header, or from X-Forwarded-Proto and
	// X-Forwarded-Host when the peer is one of TrustedProxies, and
	// forward-auth from the gateway's original-request headers.
	DPoP middleware.DPoPOptions
	// ForwardDPoPProof passes the client's DPoP header on to the upstream
	// (proxy mode). False, the default, removes it once verified: the
	// upstream has no use for a proof, and one less copy of it travels.
	ForwardDPoPProof bool
	// Logger gets one line per refused request (never the token). Nil discards.
	Logger *slog.Logger
	// AccessLog adds one line per allowed request.
	AccessLog bool
	// Metrics, if not nil, records outcomes and latencies (an
	// *admin.Metrics).
	Metrics Observer
	// ForwardAuth tunes [NewForwardAuth] only; the zero value needs the
	// original request's headers.
	ForwardAuth ForwardAuthOptions
	// Resource, if not nil, is the protected resource's metadata (RFC
	// 9728): served on the listener under /.well-known/oauth-protected-resource
	// (never forwarded), and named by resource_metadata in every challenge.
	// Nil means neither.
	Resource *resource.Handler
	// AllowedOrigins are the origins (scheme://host[:port]) whose browser
	// requests may pass: a request with an Origin header naming another
	// origin (or several Origin headers) is refused with 403 before
	// anything else, against DNS rebinding (the MCP specification requires
	// it of MCP servers). A request without Origin is not a browser's
	// cross-site request and is judged as usual. Nil means Origin is not
	// checked.
	AllowedOrigins []string
}

// guard is what both modes share around the decision, which is
// middleware.Guard's: route matching, identity headers, logs and metrics.
type guard struct {
	cfg      Config
	rules    *RuleSet // cfg.RuleSet, or one holding cfg.Rules; loaded once per request
	mw       *middleware.Guard
	realm    string
	identity *identity
	log      *slog.Logger
	origins  map[string]bool // lower-case allowed origins; nil: not checked
}

func newGuard(cfg Config) (*guard, error) {
	var errs []error
	gopts := middleware.GuardOptions{Realm: cfg.Realm, TrustedProxies: cfg.TrustedProxies, DPoP: cfg.DPoP}
	if cfg.Resource != nil {
		gopts.ResourceMetadata = cfg.Resource.MetadataURL()
	}
	mw, err := middleware.NewGuard(cfg.Validator, gopts)
	if err != nil {
		errs = append(errs, err) // no validator, or a bad realm
	}
	rules := cfg.RuleSet
	switch {
	case cfg.Rules != nil && rules != nil:
		errs = append(errs, errors.New("proxy: both Rules and RuleSet set: choose one"))
	case cfg.Rules != nil:
		rules = NewRuleSet(cfg.Rules)
	case rules == nil || rules.Load() == nil:
		errs = append(errs, errors.New("proxy: no rules"))
	}
	if cfg.ScopesHeader != "" {
		if err := checkHeaderName(cfg.ScopesHeader); err != nil {
			errs = append(errs, fmt.Errorf("proxy: scopes header: %w", err))
		}
		cfg.ScopesHeader = http.CanonicalHeaderKey(cfg.ScopesHeader)
	}
	if cfg.TokenTypeHeader != "" {
		k := http.CanonicalHeaderKey(cfg.TokenTypeHeader)
		if slices.ContainsFunc(cfg.ClaimHeaders, func(c ClaimHeader) bool { return http.CanonicalHeaderKey(c.Header) == k }) ||
			k == http.CanonicalHeaderKey(cfg.ScopesHeader) {
			errs = append(errs, fmt.Errorf("proxy: token type header %q is also a claim or scopes header", cfg.TokenTypeHeader))
		}
		// An identity header like the claims' (stripped, set, named for
		// removal), for a claim no token can have.
		cfg.ClaimHeaders = append(slices.Clone(cfg.ClaimHeaders), ClaimHeader{Claim: tokenTypeClaim, Header: cfg.TokenTypeHeader})
	}
	for i, ch := range cfg.ClaimHeaders {
		if err := checkHeaderName(ch.Header); err != nil {
			errs = append(errs, fmt.Errorf("proxy: claim header: %w", err))
		}
		cfg.ClaimHeaders[i].Header = http.CanonicalHeaderKey(ch.Header)
	}
	origins, oerr := parseOrigins(cfg.AllowedOrigins)
	if oerr != nil {
		errs = append(errs, oerr)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &guard{cfg: cfg, rules: rules, mw: mw, realm: mw.Realm(), identity: newIdentity(cfg.ClaimHeaders, cfg.ScopesHeader, log), log: log,
		origins: origins}, nil
}

// decision is the outcome for one request.
type decision struct {
	route  *Route
	claims *middleware.Claims
	err    *middleware.Error
}

// decide strips client-sent identity headers from h, matches target against
// rules (the set the request was normalized with: one set per request) and,
// unless the route is public, asks the middleware's guard about the token in
// h and the route's scopes. peer is what is known of the client's
// connection. A request whose method is overridden (an allowed override, ""
// if none) gets the stricter of the routes of both methods: an upstream may
// honour the override for some methods only. One that may become any method
// (anyMethod) gets the stricter of the routes of every method.
//
// scheme and host are those the client sent the request to, for the htu of
// a DPoP proof: host "" means target.Host.
func (g *guard) decide(ctx context.Context, rules *Rules, target *http.Request, override string, h http.Header, peer middleware.Peer,
	scheme, host string) decision {
	g.identity.strip(h)
	route := rules.Match(target)
	switch {
	case override == anyMethod:
		for _, m := range rules.methods {
			route = rules.stricter(route, rules.matchMethod(target, m))
		}
	case override != "" && override != target.Method:
		route = rules.stricter(route, rules.matchMethod(target, override))
	}
	if route.Public {
		return decision{route: route}
	}
	start := time.Now()
	if host == "" {
		host = target.Host
	}
	claims, err := g.mw.Check(ctx, middleware.Request{Method: target.Method, URL: target.URL, Host: host, Scheme: scheme,
		Header: h, Peer: peer}, route.Required)
	if g.cfg.Metrics != nil {
		g.cfg.Metrics.ObserveValidation(time.Since(start))
	}
	return decision{route: route, claims: claims, err: err}
}

// refuse answers and records a refused request.
func (g *guard) refuse(w http.ResponseWriter, r *http.Request, d decision, method, uri string) {
	if g.cfg.Metrics != nil {
		g.cfg.Metrics.ObserveDenied(d.err.Reason)
	}
	if len(uri) > 256 {
		uri = uri[:256]
	}
	attrs := []slog.Attr{
		slog.String("reason", string(d.err.Reason)),
		slog.Int("status", d.err.Status()),
		slog.String("method", method),
		slog.String("route", d.route.Pattern),
		slog.String("client", r.RemoteAddr),
		slog.String("path", uri),
	}
	if d.err.Detail != "" {
		attrs = append(attrs, slog.String("detail", d.err.Detail))
	}
	if d.err.Err != nil {
		attrs = append(attrs, slog.String("error", d.err.Err.Error()))
	}
	g.log.LogAttrs(r.Context(), slog.LevelInfo, "request refused", attrs...)
	g.mw.WriteError(w, d.err)
}

func (g *guard) allowed(r *http.Request, d decision, method, uri string) {
	if g.cfg.Metrics != nil {
		g.cfg.Metrics.ObserveAllowed(d.route.Public)
	}
	if g.cfg.AccessLog {
		sub := ""
		if d.claims != nil {
			sub = d.claims.Subject
		}
		g.log.LogAttrs(r.Context(), slog.LevelInfo, "request allowed",
			slog.String("method", method), slog.String("path", uri), slog.String("route", d.route.Pattern),
			slog.Bool("public", d.route.Public), slog.String("sub", sub), slog.String("client", r.RemoteAddr))
	}
}

// badRequest answers a request whose target cannot be judged safely.
func (g *guard) badRequestAnswer(w http.ResponseWriter, description string) {
	g.mw.WriteError(w, &middleware.Error{Reason: middleware.ReasonInvalidRequest, Description: description})
}

// badRequest logs and answers a request the normalization contract refuses.
func (g *guard) badRequest(w http.ResponseWriter, r *http.Request, refused *refusal) {
	g.log.Info("request refused", "reason", refused.reason, "status", http.StatusBadRequest, "client", r.RemoteAddr)
	g.badRequestAnswer(w, refused.description)
}

// Proxy is the sidecar reverse proxy: a request with a valid token and the
// route's scopes is forwarded to the upstream with identity headers; anything
// else is answered as RFC 6750 says.
type Proxy struct {
	g  *guard
	rp *httputil.ReverseProxy
}

// UpstreamOptions tunes the connection to the upstream. The zero value suits
// one local upstream.
type UpstreamOptions struct {
	// Transport replaces the tuned default transport (tests, custom TLS).
	Transport http.RoundTripper
	// ResponseHeaderTimeout bounds the wait for the upstream's response
	// headers. Zero means none (long polls, slow APIs).
	ResponseHeaderTimeout time.Duration
	// StandardTransport sends every request through net/http's Transport,
	// turning off the lean path for http:// and unix:// upstreams (see the
	// README's "Sidecar reverse proxy"). False means the lean path.
	StandardTransport bool
	// IdleConnTimeout is how long a kept-alive upstream connection may stay
	// unused before it is closed. Zero means 90 s.
	IdleConnTimeout time.Duration
	// MaxIdleConns bounds the kept-alive upstream connections; more are
	// closed when their answer ends. Zero means 1,024.
	MaxIdleConns int
}

// New returns the reverse proxy in front of upstream: an http://, https://,
// h2c:// (HTTP/2 without TLS) or unix:///path/to.sock URL.
func New(upstream string, cfg Config, opts UpstreamOptions) (*Proxy, error) {
	g, err := newGuard(cfg)
	target, transport, uerr := upstreamTransport(upstream, opts)
	if err = errors.Join(err, uerr); err != nil {
		return nil, err
	}
	if opts.Transport != nil {
		transport = opts.Transport
	}
	if cfg.Metrics != nil {
		transport = timedTransport{base: transport, obs: cfg.Metrics}
	}
	p := &Proxy{g: g}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the upstream sees the Host the client asked for
			// Headers that frameworks read as the client's address, its
			// certificate (Client-Cert, X-Forwarded-Client-Cert: even from a
			// trusted proxy, they were for us) or the proxy chain (chi's
			// RealIP, Rack, Django…): never the client's to set, in any
			// spelling. Then X-Forwarded-For/Host/Proto from us.
			for k := range pr.Out.Header {
				if clientAddressHeader(k) {
					delete(pr.Out.Header, k)
				}
			}
			pr.SetXForwarded()
			if cfg.ForwardClientCert {
				forwardClientCert(g.mw, pr)
			}
			g.identity.restore(pr.Out.Header, pr.In.Header)
		},
		Transport:    transport,
		BufferPool:   bufferPool{},
		ErrorHandler: p.upstreamError,
		ErrorLog:     slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	return p, nil
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.g.originAllowed(w, r, r.Header) {
		return
	}
	if rs := p.g.cfg.Resource; rs != nil && rs.Owns(r.URL.Path) {
		rs.ServeHTTP(w, r) // public, and never the upstream's
		return
	}
	b := bodySome
	if r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		b = bodyNone
	}
	rules := p.g.rules.Load() // once: the request is judged by one set
	override, refused := rules.normalize(r.Method, r.URL, r.Header, b)
	if refused != nil {
		p.g.badRequest(w, r, refused)
		return
	}
	// The URL the client used, for DPoP's htu: the connection's scheme and
	// the Host, or a trusted proxy's X-Forwarded-Proto and -Host.
	req := middleware.RequestOf(r)
	p.g.mw.ForwardedFrom(&req)
	d := p.g.decide(r.Context(), rules, r, override, r.Header, req.Peer, req.Scheme, req.Host)
	p.g.mw.NonceHeader(w.Header(), d.claims, d.err)
	if !p.g.cfg.ForwardDPoPProof {
		// Verified (or not needed): the upstream has no use for it.
		delete(r.Header, "Dpop")
	}
	if d.err != nil {
		p.g.refuse(w, r, d, r.Method, r.URL.Path)
		return
	}
	if d.claims != nil {
		p.g.identity.set(r.Header, d.claims)
	}
	if p.g.cfg.StripAuthorization {
		delete(r.Header, "Authorization")
	}
	p.g.allowed(r, d, r.Method, r.URL.Path)
	p.rp.ServeHTTP(w, r)
}

// forwardClientCert sets on the outgoing request the certificate headers a
// trusted proxy sent, or the TLS connection's certificate as Client-Cert.
func forwardClientCert(mw *middleware.Guard, pr *httputil.ProxyRequest) {
	if mw.Trusted(pr.In.RemoteAddr) {
		for _, k := range []string{middleware.ClientCertHeader, "Client-Cert-Chain", middleware.XFCCHeader} {
			if vs, ok := pr.In.Header[k]; ok {
				pr.Out.Header[k] = vs
			}
		}
		return
	}
	if tls := pr.In.TLS; tls != nil && len(tls.PeerCertificates) > 0 {
		pr.Out.Header.Set(middleware.ClientCertHeader, ":"+base64.StdEncoding.EncodeToString(tls.PeerCertificates[0].Raw)+":")
	}
}

// clientAddressHeaders are request headers that frameworks read as facts
// about the client, the proxy chain or the original request, and that only a
// proxy may set, in lower case with "-"; every header starting with
// "x-forwarded" is one too. httputil removes only the canonical Forwarded and
// X-Forwarded-For, -Host and -Proto. X-Original-URL and X-Rewrite-URL name the
// path some frameworks route on instead of the request line (Symfony and Zend
// did, CVE-2018-14773): from a client they would route around the rule
// tokenward applied.
var clientAddressHeaders = []string{"forwarded", "x-real-ip", "true-client-ip", "x-client-ip",
	"cf-connecting-ip", "fastly-client-ip", "x-cluster-client-ip", "x-original-forwarded-for",
	"client-cert", "client-cert-chain", "x-original-url", "x-rewrite-url", "x-original-uri",
	"x-original-method"}

// clientAddressHeader reports whether name is one of clientAddressHeaders or
// an X-Forwarded-* header, ignoring case and taking "_" for "-": CGI-style
// gateways (WSGI, Rack, PHP) give X_Real_IP and X-Real-IP the same name,
// HTTP_X_REAL_IP. It does not allocate.
func clientAddressHeader(name string) bool {
	return headername.HasPrefix(name, "x-forwarded") || headername.Is(name, clientAddressHeaders)
}

// upstreamError answers when the upstream could not be reached or failed
// mid-response: 502 (504 on timeout) with a JSON body and no internal detail.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errBodyStalled) {
		// The client stopped sending its body (server.go): not the
		// upstream's fault, and no one is likely to read the answer.
		if p.g.cfg.Metrics != nil {
			p.g.cfg.Metrics.ObserveUpstreamError("client_gone")
		}
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestTimeout)
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The client went away; there is no one to answer.
		if p.g.cfg.Metrics != nil {
			p.g.cfg.Metrics.ObserveUpstreamError("client_gone")
		}
		w.WriteHeader(499)
		return
	}
	status, kind := http.StatusBadGateway, "unreachable"
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		status, kind = http.StatusGatewayTimeout, "timeout"
	}
	if p.g.cfg.Metrics != nil {
		p.g.cfg.Metrics.ObserveUpstreamError(kind)
	}
	p.g.log.Warn("upstream error", "kind", kind, "error", err.Error(), "method", r.Method, "path", r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if status == http.StatusGatewayTimeout {
		w.Write([]byte(`{"error":"upstream_timeout","error_description":"upstream did not answer in time"}` + "\n"))
		return
	}
	w.Write([]byte(`{"error":"bad_gateway","error_description":"upstream unavailable"}` + "\n"))
}

// Connection pool of the upstream: one local upstream may take many idle
// keep-alive connections.
const (
	maxIdleConns    = 1024
	idleConnTimeout = 90 * time.Second
)

// upstreamTransport builds the URL to rewrite to and a transport tuned for one
// local upstream: many idle keep-alive connections, no proxy from the
// environment, and the lean path for plain HTTP/1.1.
func upstreamTransport(raw string, opts UpstreamOptions) (*url.URL, http.RoundTripper, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return nil, nil, fmt.Errorf("proxy: upstream %q is not a URL", raw)
	}
	if opts.IdleConnTimeout < 0 || opts.MaxIdleConns < 0 {
		return nil, nil, errors.New("proxy: upstream options: IdleConnTimeout and MaxIdleConns must not be negative")
	}
	idleTimeout, maxIdle := opts.IdleConnTimeout, opts.MaxIdleConns
	if idleTimeout == 0 {
		idleTimeout = idleConnTimeout
	}
	if maxIdle == 0 {
		maxIdle = maxIdleConns
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext:           dialer.DialContext,
		MaxIdleConns:          maxIdle,
		MaxIdleConnsPerHost:   maxIdle,
		IdleConnTimeout:       idleTimeout,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true, // a proxy passes Accept-Encoding on as the client sent it
	}
	// lean puts the lean path in front of t for a plain HTTP/1.1 upstream,
	// unless it is turned off.
	lean := func(network, addr string) http.RoundTripper {
		if opts.StandardTransport {
			return t
		}
		return &leanTransport{
			dial:                  func(ctx context.Context) (net.Conn, error) { return dialer.DialContext(ctx, network, addr) },
			fallback:              t,
			responseHeaderTimeout: opts.ResponseHeaderTimeout,
			idleTimeout:           idleTimeout,
			maxIdle:               maxIdle,
		}
	}
	var rt http.RoundTripper = t
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, nil, fmt.Errorf("proxy: upstream %q has no host", raw)
		}
		if u.Scheme == "http" {
			port := u.Port()
			if port == "" {
				port = "80"
			}
			rt = lean("tcp", net.JoinHostPort(u.Hostname(), port))
		}
	case "h2c":
		if u.Host == "" {
			return nil, nil, fmt.Errorf("proxy: upstream %q has no host", raw)
		}
		t.Protocols = new(http.Protocols)
		t.Protocols.SetUnencryptedHTTP2(true)
		u = &url.URL{Scheme: "http", Host: u.Host, Path: u.Path}
	case "unix":
		path := u.Path
		if path == "" {
			return nil, nil, fmt.Errorf("proxy: upstream %q names no socket (unix:///path/to.sock)", raw)
		}
		t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", path)
		}
		rt = lean("unix", path)
		u = &url.URL{Scheme: "http", Host: "localhost"}
	default:
		return nil, nil, fmt.Errorf("proxy: upstream %q: scheme must be http, https, h2c or unix", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, nil, fmt.Errorf("proxy: upstream %q must not have a query, fragment or user info", raw)
	}
	return u, rt, nil
}

// refusal says why a request cannot be judged safely: a log reason and the
// description the client gets with 400.
type refusal struct{ reason, description string }

var (
	refuseMethod        = &refusal{"method_not_canonical", "request method is not an upper-case token"}
	refusePath          = &refusal{"path_not_canonical", "request path is not canonical"}
	refusePathParameter = &refusal{"path_parameter", "request path has a ';' (path parameter)"}
	refuseOverride      = &refusal{"method_override", "method override is not allowed"}
	refuseBadOverride   = &refusal{"method_override", "method override is not one upper-case method"}
	refuseMethodParam   = &refusal{"method_override", "a _method query parameter is not allowed"}
	refuseFragment      = &refusal{"path_not_canonical", "request target has a fragment (#)"}
)

// anyMethod is the override of a request whose body may carry a _method
// form field: it may become any method.
const anyMethod = "*"

// body is what tokenward knows of a request's body.
type body int

const (
	bodyUnknown body = iota // forward-auth: the gateway sends none
	bodyNone
	bodySome
)

// normalize applies the normalization contract (the package's Security
// section) to the request both modes judge: its method, its URL and the
// headers the client sent. A request passes only if every reasonable upstream
// would route it to the path and method that the rules match; otherwise it is
// refused. override is the method an allowed method-override header asks for,
// anyMethod for a POST whose body may be a form, "" if none. The request
// without ";", override or odd method costs a few scans and no allocation.
func (r *Rules) normalize(method string, u *url.URL, h http.Header, b body) (override string, refused *refusal) {
	if !validMethod(method) {
		return "", refuseMethod
	}
	if !canonicalPath(u, r.opts.AllowEncodedSlash) {
		return "", refusePath
	}
	if strings.IndexByte(u.RawPath, '#') >= 0 {
		// A request target has no fragment (RFC 9112), but Werkzeug and
		// others drop one: /api/users/5#/x is /api/users/5 to them. (An
		// encoded %23 is a character of its segment and leaves RawPath
		// without a '#'.)
		return "", refuseFragment
	}
	if strings.IndexByte(u.Path, ';') >= 0 {
		// Servlet containers (Tomcat, Jetty, Undertow) drop ";params" from
		// each segment and then resolve dot segments: /static/..;/admin is
		// /admin to them. u.Path is decoded, so this refuses %3B too.
		return "", refusePathParameter
	}
	if u.RawQuery != "" && hasMethodParam(u.RawQuery) {
		return "", refuseMethodParam
	}
	override, refused = r.methodOverride(h)
	if refused == nil && method == http.MethodPost && formBody(h, b) {
		// Rails (Rack), Symfony, Laravel and Express' method-override with a
		// body getter run a POST as the method named by a _method field of
		// its form body, which tokenward does not read (and which may
		// differ from an allowed override header's).
		override = anyMethod
	}
	return override, refused
}

// formBody tells whether frameworks would parse the body of a POST with
// these headers as a form: a form media type, several Content-Types, or none
// with a body that may exist (Rack parses a POST without one as a form; in
// forward-auth the gateway sends no body and often hides its length).
func formBody(h http.Header, b body) bool {
	ct := h["Content-Type"]
	switch {
	case b == bodyNone:
		return false
	case len(ct) == 0:
		return true
	case len(ct) > 1:
		return true
	}
	mt, _, _ := strings.Cut(ct[0], ";")
	mt = strings.TrimSpace(mt)
	return strings.EqualFold(mt, "application/x-www-form-urlencoded") || strings.EqualFold(mt, "multipart/form-data")
}

// methodOverride finds the method-override headers of h in every spelling a
// framework may read (case, "_" for "-"): refused unless the rules allow
// them, and then exactly one value, an upper-case method.
func (r *Rules) methodOverride(h http.Header) (override string, refused *refusal) {
	found := false
	for k, vs := range h {
		// Every name we look for is 13 to 22 bytes long: skip the rest
		// without headerAlias' allocation.
		if len(k) < 13 || len(k) > 22 || !strings.HasPrefix(k, "X") && !strings.HasPrefix(k, "x") {
			continue
		}
		name := headerAlias(k)
		if !r.overrides[name] {
			if slices.Contains(refusedOverrides, name) {
				return "", refuseOverride
			}
			continue
		}
		if found || len(vs) != 1 || !validMethod(vs[0]) {
			return "", refuseBadOverride
		}
		found, override = true, vs[0]
	}
	return override, nil
}

// hasMethodParam reports whether a raw query has a _method parameter as a
// framework with method override reads it (Express' method-override with a
// query getter, Symfony and Laravel): names compared after percent-decoding,
// "+", " ", "." and "[" folded to "_" as PHP does, ignoring case and any
// "[...]" suffix. It does not allocate.
func hasMethodParam(raw string) bool {
	const want = "_method"
	for len(raw) > 0 {
		var pair string
		if i := strings.IndexAny(raw, "&;"); i >= 0 {
			pair, raw = raw[:i], raw[i+1:]
		} else {
			pair, raw = raw, ""
		}
		key, _, _ := strings.Cut(pair, "=")
		n := 0 // bytes of want matched
		for i := 0; i < len(key); i++ {
			c := key[i]
			if c == '%' && i+2 < len(key) && ishex(key[i+1]) && ishex(key[i+2]) {
				c = unhex(key[i+1])<<4 | unhex(key[i+2])
				i += 2
			}
			switch c {
			case '+', ' ', '.':
				c = '_'
			case '[':
				if n == len(want) {
					return true // _method[...]
				}
				c = '_'
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if n == len(want) || c != want[n] {
				n = -1
				break
			}
			n++
		}
		if n == len(want) {
			return true
		}
	}
	return false
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// validMethod: RFC 9110 methods are case-sensitive tokens, but Werkzeug,
// Rack and others upper-case the method before routing, so "delete" would be
// routed as DELETE after tokenward matched a rule for no method called
// "delete". Upper-case letters, "-" and "_" only.
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; !('A' <= c && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// canonicalPath refuses request paths whose meaning could differ between our
// route match and the upstream: dot segments, empty segments, backslashes and
// percent-encoded slashes (unless encodedSlash allows them), backslashes and
// dots. ServeMux would redirect such a path, and the rule of the redirect
// target is not the rule of what the upstream would serve.
func canonicalPath(u *url.URL, encodedSlash bool) bool {
	p := u.Path
	if p == "" || p[0] != '/' || strings.Contains(p, "\\") || strings.Contains(p, "//") {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	if u.RawPath != "" {
		if !encodedSlash && containsFold(u.RawPath, "%2f") ||
			containsFold(u.RawPath, "%5c") || containsFold(u.RawPath, "%2e") {
			return false
		}
	}
	return true
}

// bufferPool lends ReverseProxy its copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// Scopes returns the requirement a request would face, for tests and tools.
// It reads the rules in force now.
func (p *Proxy) Scopes(r *http.Request) scopes.Requirement { return p.g.rules.Load().Match(r).Required }
