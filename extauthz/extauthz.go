package extauthz

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
)

// ServiceName is the gRPC service Envoy calls, and the name health checks
// may ask about.
const ServiceName = "envoy.service.auth.v3.Authorization"

// maxMessageBytes bounds one CheckRequest: headers within
// proxy.MaxHeaderBytes (64 KiB; larger ones still fit, for a 400 deny) and
// the attributes around them (a peer certificate, metadata). A request body
// sent with with_request_body would exceed it: the call fails, and Envoy
// denies (failure_mode_allow false).
const maxMessageBytes = 256 << 10

// maxStreams bounds the calls in flight on one connection. A call's message
// is buffered as it arrives, and a client may send it as slowly as it likes:
// one connection can make the server hold maxStreams × maxMessageBytes (25
// MiB), where 1,024 × 1 MiB let four connections hold 4 GiB. Envoy opens
// another connection when a connection's calls are all in flight.
const maxStreams = 100

// Options tunes a [Server]. The zero value is always ready. Logs and
// metrics are the [proxy.ForwardAuth]'s.
type Options struct {
	// Ready reports whether every trusted issuer's keys have been loaded
	// (jwks.Registry.Ready); gRPC health answers NOT_SERVING while it is
	// false. Nil means always ready.
	Ready func() bool
	// HealthInterval is how often readiness is polled for health Watch
	// streams (Check asks at once). Zero means one second.
	HealthInterval time.Duration
}

// Server answers Envoy's ext_authz Check calls with [proxy.ForwardAuth]'s
// decision, and gRPC health checks (grpc.health.v1) with readiness.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	fa     *proxy.ForwardAuth
	opts   Options
	health *health.Server
	grpc   *grpc.Server
	stop   chan struct{} // closed by Stop and GracefulStop: ends the health poller
}

// New returns a server deciding with fa.
func New(fa *proxy.ForwardAuth, opts Options) (*Server, error) {
	if fa == nil {
		return nil, errors.New("extauthz: no forward-auth handler")
	}
	if opts.HealthInterval < 0 {
		return nil, errors.New("extauthz: negative health interval")
	}
	if opts.HealthInterval == 0 {
		opts.HealthInterval = time.Second
	}
	s := &Server{fa: fa, opts: opts, health: health.NewServer(), stop: make(chan struct{})}
	s.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(maxMessageBytes), grpc.MaxConcurrentStreams(maxStreams))
	authv3.RegisterAuthorizationServer(s.grpc, s)
	healthpb.RegisterHealthServer(s.grpc, healthService{s})
	s.updateHealth()
	return s, nil
}

// Serve accepts connections on ln until Stop or GracefulStop.
func (s *Server) Serve(ln net.Listener) error {
	go s.pollHealth()
	return s.grpc.Serve(ln)
}

// GracefulStop stops accepting calls and waits for those in flight, or until
// ctx ends, when it cuts them.
func (s *Server) GracefulStop(ctx context.Context) {
	s.health.Shutdown() // watchers hear NOT_SERVING
	s.closeStop()       // then their streams end: GracefulStop would wait for them
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
}

// Stop closes every connection at once.
func (s *Server) Stop() {
	s.closeStop()
	s.grpc.Stop()
}

func (s *Server) closeStop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
}

// pollHealth keeps Watch streams told about readiness.
func (s *Server) pollHealth() {
	t := time.NewTicker(s.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.updateHealth()
		}
	}
}

func (s *Server) updateHealth() {
	st := healthpb.HealthCheckResponse_SERVING
	if s.opts.Ready != nil && !s.opts.Ready() {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(ServiceName, st)
}

// healthService answers Check with readiness as it is now, not as last
// polled.
type healthService struct{ s *Server }

func (h healthService) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	select {
	case <-h.s.stop:
	default:
		h.s.updateHealth()
	}
	return h.s.health.Check(ctx, req)
}

func (h healthService) List(ctx context.Context, req *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	return h.s.health.List(ctx, req)
}

// Watch streams never end by themselves: each ends when the server stops,
// or a watching client (a mesh's health checker) would hold a graceful stop
// for its whole grace period.
func (h healthService) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return h.s.health.Watch(req, watchStream{stream, ctx})
}

// watchStream is a Watch stream whose context also ends with the server.
type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }

// Check answers one ext_authz question. Missing or malformed attributes, and
// headers beyond proxy.MaxHeaderBytes, get a 400 deny: never a gRPC error, so
// Envoy passes tokenward's answer to the client.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	gateway := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		gateway = p.Addr.String()
	}
	q, reason, why := question(req)
	if reason != "" {
		return response(s.fa.BadRequest(ctx, gateway, reason, why)), nil
	}
	q.Gateway = gateway
	return response(s.fa.Check(ctx, q)), nil
}

// question reads the original request from the attributes. reason is not
// "" when they cannot be judged: why is then the client's description.
func question(req *authv3.CheckRequest) (q proxy.Question, reason, why string) {
	attrs := req.GetAttributes()
	hr := attrs.GetRequest().GetHttp()
	// Without a host, a host-pattern rule (admin.example.com/) could not
	// match and a weaker one would.
	if hr == nil || hr.GetMethod() == "" || hr.GetPath() == "" || hr.GetHost() == "" {
		return q, "missing_attributes", "original request attributes are missing"
	}
	if hr.GetFragment() != "" {
		return q, "bad_original_uri", "original request URI is missing, malformed or not canonical"
	}
	h, ok := headers(hr)
	if !ok {
		// 400 rather than 431: Envoy's own limit (60 KiB by default) comes
		// first, so only a hand-made question gets here.
		return q, "headers_too_large", "request headers too large"
	}
	q = proxy.Question{Method: hr.GetMethod(), URI: hr.GetPath(), Host: hr.GetHost(), Scheme: hr.GetScheme(), Header: h}
	if sa := attrs.GetSource().GetAddress().GetSocketAddress(); sa != nil && sa.GetAddress() != "" {
		q.Peer = middleware.Peer{Addr: net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))}
	}
	return q, "", ""
}

// headers converts Envoy's headers (lower-case keys, pseudo-headers among
// them) into the client's headers with canonical keys. Envoy sends either
// header_map (encode_raw_headers: repeated headers stay apart) or headers
// (repeated headers joined with ","). false when they exceed
// proxy.MaxHeaderBytes, counted as HTTP/1.1 lines.
func headers(hr *authv3.AttributeContext_HttpRequest) (http.Header, bool) {
	h := http.Header{}
	size := 0
	add := func(k, v string) bool {
		size += len(k) + len(v) + 4 // ": " and CRLF
		if size > proxy.MaxHeaderBytes {
			return false
		}
		if k == "" || k[0] == ':' {
			return true // :method, :path, :authority are in their own fields
		}
		ck := http.CanonicalHeaderKey(k)
		h[ck] = append(h[ck], v)
		return true
	}
	if hm := hr.GetHeaderMap(); len(hm.GetHeaders()) > 0 {
		for _, hv := range hm.GetHeaders() {
			v := hv.GetValue()
			if raw := hv.GetRawValue(); len(raw) > 0 {
				v = string(raw)
			}
			if !add(hv.GetKey(), v) {
				return nil, false
			}
		}
		return h, true
	}
	for k, v := range hr.GetHeaders() {
		if !add(k, v) {
			return nil, false
		}
	}
	return h, true
}

// response turns forward-auth's answer into Envoy's.
func response(a proxy.Answer) *authv3.CheckResponse {
	if a.Status != http.StatusOK {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(code(a.Status))},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status:  &typev3.HttpStatus{Code: typev3.StatusCode(a.Status)},
				Headers: options(a.Header),
				Body:    string(a.Body),
			}},
		}
	}
	ok := &authv3.OkHttpResponse{Headers: options(a.Header), ResponseHeadersToAdd: options(a.ResponseHeader)}
	for _, name := range a.Remove {
		// Envoy's header names are lower-case; removal is case-insensitive.
		ok.HeadersToRemove = append(ok.HeadersToRemove, strings.ToLower(name))
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

// options sets each header, replacing any the request already has.
func options(h http.Header) []*corev3.HeaderValueOption {
	out := make([]*corev3.HeaderValueOption, 0, len(h))
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: strings.ToLower(k), Value: v},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			})
		}
	}
	return out
}

// code is the gRPC status that goes with an HTTP refusal; Envoy reads only
// whether it is OK, the HTTP status comes from the denied response.
func code(status int) codes.Code {
	switch status {
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	default:
		return codes.InvalidArgument
	}
}
