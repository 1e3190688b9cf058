package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tokenward/tokenward/admin"
	"github.com/tokenward/tokenward/denylist"
	"github.com/tokenward/tokenward/dpop"
	"github.com/tokenward/tokenward/extauthz"
	"github.com/tokenward/tokenward/internal/httpfetch"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
	"github.com/tokenward/tokenward/resource"
)

// serve runs the proxy (or forward-auth service) and the admin server until
// ctx ends, then shuts down gracefully.
func serve(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, err := loadConfig(getenv, forServing)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogFormat, cfg.logLevel)

	for _, msg := range cfg.ignored {
		log.Warn(msg)
	}
	defer setMemoryLimit(cfg, getenv, os.ReadFile, log)()
	g, err := newGateway(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer g.close()

	denySource := ""
	if g.deny != nil {
		denySource = g.deny.Status().Source // a URL without its query
	}
	log.Info("tokenward starting",
		"version", versionString(),
		"mode", cfg.Mode,
		"issuers", cfg.Issuers,
		"audiences", cfg.Audiences,
		"algorithms", cfg.Algorithms,
		"jwks_uris", cfg.jwksURLs,
		"upstream", httpfetch.Redact(cfg.Upstream),
		"rules", cfg.rules.Len(),
		"required_scopes", cfg.required.String(),
		"claim_headers", cfg.ClaimHeaders,
		"strip_authorization", cfg.StripAuthorization,
		"opaque_tokens", cfg.OpaqueTokens,
		"opaque_issuer", cfg.opaqueIssuer,
		"opaque_endpoint", g.opaqueEndpoint,
		"denylist", denySource,
		"resource", cfg.Resource,
		"allowed_origins", cfg.AllowedOrigins,
		"dpop", cfg.DPoP,
		"dpop_algorithms", cfg.DPoPAlgorithms,
		"dpop_nonce", cfg.DPoPNonce,
		"dpop_replay_store", replayStoreName(cfg),
		"public_url", cfg.PublicURL,
	)
	if cfg.Mode == modeForwardAuth && cfg.Upstream != "" {
		log.Warn("TOKENWARD_UPSTREAM is ignored in forward-auth mode")
	}

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("TOKENWARD_LISTEN_ADDR: %w", err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("TOKENWARD_ADMIN_ADDR: %w", err)
	}
	var grpcLn net.Listener
	if g.grpc != nil {
		if grpcLn, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			ln.Close()
			adminLn.Close()
			return fmt.Errorf("TOKENWARD_GRPC_ADDR: %w", err)
		}
	}
	verified, opaqueTokens := cfg.cacheBounds()
	maxConns, from := cfg.maxConnections(add(verified, opaqueTokens), containerMemoryLimit(os.ReadFile), descriptorLimit())
	log.Info("connection bound", "max_connections", maxConns, "from", from) // 0: none
	mainLn := proxy.NewListener(ln, cfg.listenerOptions(maxConns, g.tls != nil))
	adminBounded := proxy.NewListener(adminLn, proxy.ListenerOptions{MaxConnections: adminMaxConnections, Answer503: true})
	ln, adminLn = mainLn, adminBounded
	bounded := map[string]*proxy.Listener{"main": mainLn, "admin": adminBounded}
	if grpcLn != nil {
		grpcBounded := proxy.NewListener(grpcLn, cfg.grpcListenerOptions())
		grpcLn, bounded["grpc"] = grpcBounded, grpcBounded
	}
	registerConnMetrics(g.registry, bounded)
	defer followConnections(getenv, os.ReadFile, mainLn.Open, 250*time.Millisecond)()
	errorLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	srv := proxy.NewServerWith(cfg.ListenAddr, g.handler, cfg.serverOptions())
	srv.ErrorLog = errorLog
	adminSrv := &http.Server{
		Handler:           admin.NewHandler(g.gatherer, g.keys, g.ready...),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          errorLog,
	}

	// Each Serve returns http.ErrServerClosed once shut down; the buffer
	// lets both goroutines end whatever happens here.
	errc := make(chan error, 3)
	stopHUP := onSIGHUP(g, log)
	defer stopHUP()
	if g.tls != nil {
		srv.TLSConfig = g.tls.serverConfig()
		log.Info("tls: serving", certAttrs(g.tls.state.Load(), false)...)
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	go func() { errc <- adminSrv.Serve(adminLn) }()
	log.Info("listening", "server", cfg.Mode, "addr", ln.Addr().String(), "tls", g.tls != nil)
	log.Info("listening", "server", "admin", "addr", adminLn.Addr().String())
	if grpcLn != nil {
		// Serve returns nil once stopped.
		go func() {
			if err := g.grpc.Serve(grpcLn); err != nil {
				errc <- err
			}
		}()
		log.Info("listening", "server", "grpc ext_authz", "addr", grpcLn.Addr().String())
	}

	var failed error
	select {
	case <-ctx.Done():
		log.Info("shutting down: no new connections; in-flight requests may finish", "grace", cfg.ShutdownGrace.String())
	case err := <-errc:
		failed = fmt.Errorf("server stopped: %w", err)
		log.Error("server stopped; shutting down", "error", err.Error())
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range []*http.Server{srv, adminSrv} {
		wg.Go(func() {
			if err := s.Shutdown(sctx); err != nil {
				// Grace is over: cut what is still open (long streams).
				s.Close()
			}
		})
	}
	if g.grpc != nil {
		wg.Go(func() { g.grpc.GracefulStop(sctx) })
	}
	wg.Wait()
	if sctx.Err() != nil {
		log.Warn("shutdown grace period over; closed the connections still open", "grace", cfg.ShutdownGrace.String())
	}
	log.Info("stopped")
	return failed
}

// onSIGHUP reloads the rules file and the TLS files, and checks the deny
// list, at once on each SIGHUP, until the returned function is called.
// Without any of them a SIGHUP is logged and ignored, rather than ending the
// process.
func onSIGHUP(g *gateway, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	// Ends a deny-list read in progress (a slow URL) when serving stops.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if g.rules == nil && g.tls == nil && g.deny == nil {
					log.Info("SIGHUP: no TOKENWARD_RULES_FILE, TLS files nor deny list; nothing to reload")
					continue
				}
				if g.rules != nil {
					g.rules.reload(true)
				}
				if g.tls != nil {
					g.tls.reload(true)
				}
				if g.deny != nil {
					// Logged and counted by the list itself; a bad list keeps
					// the one in force.
					g.deny.Reload(ctx)
				}
			}
		}
	})
	return func() {
		signal.Stop(hup)
		cancel()
		wg.Wait()
	}
}

// gateway is what serve and demo run: the key sets of the trusted issuers,
// the deny list, the handler that guards the upstream, and the metrics.
type gateway struct {
	keys           *jwks.Registry
	deny           *denylist.List // nil without one
	rules          *rulesReloader // nil without a rules file
	tls            *tlsReloader   // nil without TLS on the listener
	opaqueEndpoint string         // "" when opaque tokens are rejected
	handler        http.Handler
	grpc           *extauthz.Server // nil without TOKENWARD_GRPC_ADDR
	gatherer       prometheus.Gatherer
	replay         dpop.Store   // the DPoP replay store
	closeReplay    func() error // nil for the memory store
	ready          []admin.Dependency
	registry       prometheus.Registerer // of gatherer, for what serve adds
}

// close stops the background work: key set refreshes, deny list, rules and
// TLS reloads.
func (g *gateway) close() {
	if g.closeReplay != nil {
		g.closeReplay()
	}
	if g.tls != nil {
		g.tls.close()
	}
	if g.rules != nil {
		g.rules.close()
	}
	if g.deny != nil {
		g.deny.Close()
	}
	if g.keys != nil {
		g.keys.Close()
	}
}

// newGateway wires a checked configuration together. It loads what must be
// there before serving: the deny list, and the opaque-token endpoint when it
// is discovered. ctx ends those waits. Its errors are configuration errors,
// except for a deny list URL or a discovery that cannot be reached.
func newGateway(ctx context.Context, cfg *Config, log *slog.Logger) (_ *gateway, err error) {
	g := &gateway{}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	g.keys, err = jwks.NewRegistry(cfg.Issuers, cfg.registryOptions(log))
	if err != nil {
		return nil, asConfigError(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Read at each scrape, key set fetches included: none is missed, even
	// those made before the metrics exist.
	metrics := admin.NewMetrics(reg, g.keys)

	if g.deny, err = startDenyList(ctx, cfg, log); err != nil {
		return nil, err
	}
	checker, endpoint, err := newOpaqueChecker(ctx, cfg, log, metrics.ObserveOpaque)
	if err != nil {
		return nil, err
	}
	g.opaqueEndpoint = endpoint

	issuers := make([]middleware.Issuer, 0, len(cfg.Issuers))
	for _, iss := range cfg.Issuers {
		set, _ := g.keys.Set(iss)
		issuers = append(issuers, middleware.Issuer{URL: iss, Keys: set})
	}
	opts := cfg.validatorOptions()
	opts.Opaque = checker
	if g.deny != nil {
		opts.Revoked = g.deny.Revoked
		admin.RegisterDenyList(reg, g.deny)
	}
	v, err := middleware.NewValidator(issuers, cfg.Audiences, opts)
	if err != nil {
		return nil, asConfigError(err)
	}
	admin.RegisterTokenCache(reg, v)
	dpopOpts := cfg.dpop.opts
	if g.replay, g.closeReplay, err = openReplayStore(cfg); err != nil {
		return nil, err
	}
	dpopOpts.Replay = g.replay
	ping := func(ctx context.Context) error { return storeUp(ctx, g.replay) }
	admin.RegisterDPoPReplayStore(reg, ping)
	if m, ok := g.replay.(*dpop.MemoryStore); ok {
		admin.RegisterDPoPMemoryStore(reg, m.ForgottenEarly)
	}
	if cfg.dpop.redisURL != "" {
		g.ready = append(g.ready, admin.Dependency{Name: "dpop_replay_store", Check: ping,
			Problem: "the DPoP replay store (TOKENWARD_DPOP_REPLAY_STORE) does not answer: DPoP requests are refused with 503"})
	}
	pc := proxy.Config{
		Validator:          v,
		Rules:              cfg.rules,
		ClaimHeaders:       cfg.claimHeaders,
		ScopesHeader:       cfg.ScopesHeader,
		StripAuthorization: cfg.StripAuthorization,
		Realm:              cfg.Realm,
		TrustedProxies:     cfg.TrustedProxies,
		ForwardClientCert:  cfg.ForwardClientCert,
		Logger:             log,
		AccessLog:          cfg.AccessLog,
		Metrics:            metrics,
		ForwardAuth: proxy.ForwardAuthOptions{AllowRequestLine: cfg.ForwardAuthAllowRequestLine,
			PathPrefix: cfg.ForwardAuthPathPrefix},
		AllowedOrigins:   cfg.AllowedOrigins,
		DPoP:             dpopOpts,
		ForwardDPoPProof: cfg.ForwardDPoPProof,
		TokenTypeHeader:  cfg.TokenTypeHeader,
	}
	if cfg.Resource != "" {
		if pc.Resource, err = resource.New(cfg.Resource, v, cfg.resourceOptions()); err != nil {
			return nil, asConfigError(err)
		}
	}
	if cfg.RulesFile != "" {
		g.rules = startRulesReloader(cfg, log)
		pc.Rules, pc.RuleSet = nil, g.rules.set
		admin.RegisterRules(reg, g.rules.status)
	}
	if cfg.tls != nil {
		g.tls = startTLSReloader(cfg, log)
		admin.RegisterTLS(reg, g.tls.status)
	}
	var h http.Handler
	switch cfg.Mode {
	case modeForwardAuth:
		var fa *proxy.ForwardAuth
		if fa, err = proxy.NewForwardAuth(pc); err == nil && cfg.GRPCAddr != "" {
			// The same decision as the HTTP handler's: ForwardAuth.Check.
			g.grpc, err = extauthz.New(fa, extauthz.Options{Ready: g.keys.Ready})
		}
		h = fa
	default:
		h, err = proxy.New(cfg.Upstream, pc, proxy.UpstreamOptions{ResponseHeaderTimeout: cfg.UpstreamTimeout,
			StandardTransport: cfg.UpstreamTransport == "standard"})
	}
	if err != nil {
		return nil, asConfigError(err)
	}
	g.handler, g.gatherer, g.registry = h, reg, reg
	return g, nil
}

// asConfigError reports a constructor's errors as configuration problems.
// loadConfig checks everything the constructors check, so this is a net.
func asConfigError(err error) error {
	ce := &configError{}
	for _, e := range unjoin(err) {
		ce.problems = append(ce.problems, e.Error())
	}
	return ce
}
