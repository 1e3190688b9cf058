package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/scopes"
)

// Config is what both handlers need. Validator and Rules are required.
type Config struct {
	// Validator checks tokens.
	Validator *middleware.Validator
	// Rules map requests to routes. Build them with [ParseRules] or
	// [NewRules]; NewRules(nil, required) protects everything alike.
	Rules *Rules
	// ClaimHeaders are sent to the upstream on success. Every configured
	// header is first deleted from the client's request, on every route.
	ClaimHeaders []ClaimHeader
	// ScopesHeader, if not empty, carries the granted scopes
	// (space-delimited) to the upstream.
	ScopesHeader string
	// StripAuthorization removes the Authorization header before the
	// request reaches the upstream.
	StripAuthorization bool
	// Realm of the WWW-Authenticate challenge; "" means middleware.DefaultRealm.
	Realm string
	// Logger gets one line per refused request (never the token). Nil discards.
	Logger *slog.Logger
	// AccessLog adds one line per allowed request.
	AccessLog bool
	// Metrics, if not nil, records outcomes and latencies (an
	// *admin.Metrics).
	Metrics Observer
}

// guard is the decision both modes share.
type guard struct {
	cfg      Config
	realm    string
	identity *identity
	log      *slog.Logger
}

func newGuard(cfg Config) (*guard, error) {
	var errs []error
	if cfg.Validator == nil {
		errs = append(errs, errors.New("proxy: no validator"))
	}
	if cfg.Rules == nil {
		errs = append(errs, errors.New("proxy: no rules"))
	}
	if cfg.ScopesHeader != "" {
		if err := checkHeaderName(cfg.ScopesHeader); err != nil {
			errs = append(errs, fmt.Errorf("proxy: scopes header: %w", err))
		}
		cfg.ScopesHeader = http.CanonicalHeaderKey(cfg.ScopesHeader)
	}
	for i, ch := range cfg.ClaimHeaders {
		if err := checkHeaderName(ch.Header); err != nil {
			errs = append(errs, fmt.Errorf("proxy: claim header: %w", err))
		}
		cfg.ClaimHeaders[i].Header = http.CanonicalHeaderKey(ch.Header)
	}
	realm := cfg.Realm
	if realm == "" {
		realm = middleware.DefaultRealm
	}
	if strings.ContainsFunc(realm, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '"' || r == '\\' }) {
		errs = append(errs, fmt.Errorf("proxy: realm %q has characters a quoted header value cannot carry", realm))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &guard{cfg: cfg, realm: realm, identity: newIdentity(cfg.ClaimHeaders, cfg.ScopesHeader, log), log: log}, nil
}

// decision is the outcome for one request.
type decision struct {
	route  *Route
	claims *middleware.Claims
	err    *middleware.Error
}

// decide strips client-sent identity headers from h, matches target against the
// rules and, unless the route is public, validates the token in h.
func (g *guard) decide(ctx context.Context, target *http.Request, h http.Header) decision {
	g.identity.strip(h)
	route := g.cfg.Rules.Match(target)
	if route.Public {
		return decision{route: route}
	}
	start := time.Now()
	token, err := middleware.ExtractBearer(h)
	var claims *middleware.Claims
	if err == nil {
		claims, err = g.cfg.Validator.Validate(ctx, token)
	}
	if err == nil && !route.Required.Satisfied(claims.Scopes) {
		err = &middleware.Error{Reason: middleware.ReasonInsufficientScope, Scope: route.Required.String(),
			Detail: "missing " + strings.Join(route.Required.Missing(claims.Scopes), " ")}
	}
	if g.cfg.Metrics != nil {
		g.cfg.Metrics.ObserveValidation(time.Since(start))
	}
	if err != nil {
		var e *middleware.Error
		if !errors.As(err, &e) {
			e = &middleware.Error{Reason: middleware.ReasonMalformed, Err: err}
		}
		return decision{route: route, claims: claims, err: e}
	}
	return decision{route: route, claims: claims}
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
	middleware.WriteError(w, g.realm, d.err)
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
func badRequest(w http.ResponseWriter, realm, description string) {
	middleware.WriteError(w, realm, &middleware.Error{
		Reason: middleware.ReasonInvalidRequest, Description: description})
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
			// Headers that frameworks read as the client's address or the
			// proxy chain (chi's RealIP, Rack, Django…): never the client's to
			// set, in any spelling. Then X-Forwarded-For/Host/Proto from us.
			for k := range pr.Out.Header {
				if clientAddressHeader(k) {
					delete(pr.Out.Header, k)
				}
			}
			pr.SetXForwarded()
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
	if !canonicalPath(r.URL) {
		p.g.log.Info("request refused", "reason", "path_not_canonical", "status", http.StatusBadRequest, "client", r.RemoteAddr)
		badRequest(w, p.g.realm, "request path is not canonical")
		return
	}
	d := p.g.decide(r.Context(), r, r.Header)
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

// clientAddressHeaders are request headers that frameworks read as facts
// about the client or the proxy chain, and that only a proxy may set, in
// lower case with "-"; every header starting with "x-forwarded" is one too.
// httputil removes only the canonical Forwarded and X-Forwarded-For, -Host
// and -Proto.
var clientAddressHeaders = []string{"forwarded", "x-real-ip", "true-client-ip", "x-client-ip",
	"cf-connecting-ip", "fastly-client-ip", "x-cluster-client-ip", "x-original-forwarded-for",
	"client-cert", "client-cert-chain"}

// clientAddressHeader reports whether name is one of clientAddressHeaders or
// an X-Forwarded-* header, ignoring case and taking "_" for "-": CGI-style
// gateways (WSGI, Rack, PHP) give X_Real_IP and X-Real-IP the same name,
// HTTP_X_REAL_IP. It does not allocate.
func clientAddressHeader(name string) bool {
	if len(name) >= len("x-forwarded") && foldedEqual(name[:len("x-forwarded")], "x-forwarded") {
		return true
	}
	for _, h := range clientAddressHeaders {
		if len(name) == len(h) && foldedEqual(name, h) {
			return true
		}
	}
	return false
}

// foldedEqual compares s, of any case and with "_" or "-", with lower, in
// lower case with "-"; both have the same length.
func foldedEqual(s, lower string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// upstreamError answers when the upstream could not be reached or failed
// mid-response: 502 (504 on timeout) with a JSON body and no internal detail.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
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

// canonicalPath refuses request paths whose meaning could differ between our
// route match and the upstream: dot segments, empty segments, backslashes and
// percent-encoded slashes, backslashes and dots. ServeMux would redirect such
// a path, and the rule of the redirect target is not the rule of what the
// upstream would serve.
func canonicalPath(u *url.URL) bool {
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
		lower := strings.ToLower(u.RawPath)
		if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(lower, "%2e") {
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
func (p *Proxy) Scopes(r *http.Request) scopes.Requirement { return p.g.cfg.Rules.Match(r).Required }
