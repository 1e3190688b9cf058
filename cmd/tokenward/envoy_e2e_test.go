package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// grpcClient connects to the binary's gRPC ext_authz listener, found in its
// "listening" log line.
func grpcClient(t *testing.T, srv *server) *grpc.ClientConn {
	t.Helper()
	addr := srv.stderr.waitLog(t, "listening", "server", "grpc ext_authz").str("addr")
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// envoyCheck is Envoy's question about one request: lower-case header names
// and pseudo-headers, header values given as pairs.
func envoyCheck(method, path string, headers ...string) *authv3.CheckRequest {
	hm := &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":method", Value: method}, {Key: ":path", Value: path}, {Key: ":authority", Value: "api.example.com"},
	}}
	for i := 0; i+1 < len(headers); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: headers[i], RawValue: []byte(headers[i+1])})
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "api.example.com", HeaderMap: hm,
		}},
	}}
}

// TestGRPCExtAuthz runs the binary with TOKENWARD_GRPC_ADDR beside the HTTP
// forward-auth listener: gRPC health is SERVING once the issuer's keys are
// loaded; Check allows with the identity headers (and removes a client's
// copies), denies with tokenward's status, challenge and body; the
// decisions are counted in /metrics; SIGTERM stops it gracefully.
func TestGRPCExtAuthz(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_MODE":       "forward-auth",
		"TOKENWARD_ISSUERS":    iss.URL(),
		"TOKENWARD_AUDIENCES":  audience,
		"TOKENWARD_RULES_FILE": testRulesFile(t),
		"TOKENWARD_GRPC_ADDR":  "127.0.0.1:0",
	})
	conn := grpcClient(t, srv)
	ctx := context.Background()

	// Readiness: Watch until SERVING (the keys load in the background).
	wctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	w, err := healthpb.NewHealthClient(conn).Watch(wctx, &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		got, err := w.Recv()
		if err != nil {
			t.Fatalf("health never SERVING: %v", err)
		}
		if got.Status == healthpb.HealthCheckResponse_SERVING {
			break
		}
	}

	reader := mint(t, iss, map[string]any{"sub": "auth0|alice", "scope": "read:contacts"})
	writer := mint(t, iss, map[string]any{"sub": "auth0|bob", "scope": "write:contacts"})
	c := authv3.NewAuthorizationClient(conn)
	for _, tc := range []struct {
		name      string
		req       *authv3.CheckRequest
		status    int
		set       map[string]string // allow: exactly these
		remove    []string          // allow: exactly these
		challenge string            // deny: WWW-Authenticate contains
	}{
		{"allow", envoyCheck("GET", "/api/contacts/7?fields=name", "authorization", "Bearer "+reader, "x-auth-subject", "auth0|mallory"),
			200, map[string]string{"x-auth-subject": "auth0|alice"}, nil, ""},
		{"no token", envoyCheck("GET", "/api/contacts/7"), 401, nil, nil, `Bearer realm="api"`},
		{"insufficient scope", envoyCheck("GET", "/api/contacts/7", "authorization", "Bearer "+writer), 403, nil, nil,
			`error="insufficient_scope"`},
		{"path parameter", envoyCheck("GET", "/static/..;/admin", "authorization", "Bearer "+reader), 400, nil, nil,
			`error="invalid_request"`},
		{"public route", envoyCheck("GET", "/status", "authorization", "Bearer "+reader, "x-auth-subject", "auth0|mallory",
			"x_auth_subject", "auth0|mallory"), 200, map[string]string{}, []string{"x-auth-subject", "x_auth_subject"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Check(ctx, tc.req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if ok := resp.GetOkResponse(); ok != nil {
				if tc.status != 200 || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
					t.Fatalf("allowed with gRPC status %d, want HTTP %d", resp.GetStatus().GetCode(), tc.status)
				}
				set := map[string]string{}
				for _, o := range ok.GetHeaders() {
					set[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
				}
				if len(set) != len(tc.set) {
					t.Errorf("set %q, want %q", set, tc.set)
				}
				for k, v := range tc.set {
					if set[k] != v {
						t.Errorf("set %q, want %q", set, tc.set)
					}
				}
				rm := slices.Sorted(slices.Values(ok.GetHeadersToRemove()))
				if !slices.Equal(rm, tc.remove) {
					t.Errorf("headers_to_remove %q, want %q", rm, tc.remove)
				}
				return
			}
			d := resp.GetDeniedResponse()
			if d == nil || codes.Code(resp.GetStatus().GetCode()) == codes.OK {
				t.Fatalf("neither allow nor deny: %v", resp)
			}
			if got := int(d.GetStatus().GetCode()); got != tc.status {
				t.Fatalf("status %d, want %d; body %s", got, tc.status, d.GetBody())
			}
			challenge := ""
			for _, o := range d.GetHeaders() {
				if o.GetHeader().GetKey() == "www-authenticate" {
					challenge = o.GetHeader().GetValue()
				}
			}
			if !strings.Contains(challenge, tc.challenge) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", challenge, tc.challenge)
			}
			if !strings.HasPrefix(d.GetBody(), `{"error":`) {
				t.Errorf("body %q", d.GetBody())
			}
		})
	}

	// The HTTP forward-auth listener answers alongside.
	r := do(t, srv.client, "GET", srv.url+"/auth", func(r *http.Request) {
		r.Header.Set("X-Forwarded-Method", "GET")
		r.Header.Set("X-Forwarded-Uri", "/api/contacts/7")
	})
	if r.status != 401 {
		t.Errorf("HTTP forward-auth: status %d, want 401", r.status)
	}

	m := do(t, srv.client, "GET", srv.adminURL+"/metrics", nil)
	for _, want := range []string{
		`tokenward_requests_total{outcome="allowed",reason=""} 1`,
		`tokenward_requests_total{outcome="public",reason=""} 1`,
		`tokenward_requests_total{outcome="denied",reason="no_token"} 2`, // gRPC and HTTP
		`tokenward_requests_total{outcome="denied",reason="insufficient_scope"} 1`,
	} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := srv.exit(t); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
	srv.stderr.waitLog(t, "stopped")
}

// TestGRPCExtAuthzIssuerDown: while the issuer's keys have never loaded,
// gRPC health is NOT_SERVING and Check denies with 503 and Retry-After.
func TestGRPCExtAuthzIssuerDown(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	iss.SetDown(true)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_MODE":      "forward-auth",
		"TOKENWARD_ISSUERS":   iss.URL(),
		"TOKENWARD_AUDIENCES": audience,
		"TOKENWARD_GRPC_ADDR": "127.0.0.1:0",
	})
	conn := grpcClient(t, srv)
	ctx := context.Background()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health %v while the issuer is down, want NOT_SERVING", h.Status)
	}
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, envoyCheck("GET", "/api", "authorization", "Bearer "+mint(t, iss, nil)))
	if err != nil {
		t.Fatal(err)
	}
	d := resp.GetDeniedResponse()
	if d == nil || d.GetStatus().GetCode() != 503 {
		t.Fatalf("answer %v, want a 503 deny", resp)
	}
	retry := ""
	for _, o := range d.GetHeaders() {
		if o.GetHeader().GetKey() == "retry-after" {
			retry = o.GetHeader().GetValue()
		}
	}
	if retry == "" {
		t.Errorf("no Retry-After in %v", d.GetHeaders())
	}
}

// TestForwardAuthRequestLineBinary: TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE
// and _PATH_PREFIX reach the handler: a question without original-request
// headers is judged on its request line, prefix removed.
func TestForwardAuthRequestLineBinary(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_MODE":                            "forward-auth",
		"TOKENWARD_ISSUERS":                         iss.URL(),
		"TOKENWARD_AUDIENCES":                       audience,
		"TOKENWARD_RULES_FILE":                      testRulesFile(t),
		"TOKENWARD_FORWARD_AUTH_ALLOW_REQUEST_LINE": "true",
		"TOKENWARD_FORWARD_AUTH_PATH_PREFIX":        "/ext-authz",
	})
	reader := mint(t, iss, map[string]any{"sub": "auth0|alice", "scope": "read:contacts"})
	writer := mint(t, iss, map[string]any{"sub": "auth0|bob", "scope": "write:contacts"})
	for _, tc := range []struct {
		path, token  string
		forwardedURI string // a client's X-Forwarded-Uri that Envoy passed on
		status       int
	}{
		{"/ext-authz/api/contacts/7", reader, "", 200},
		{"/ext-authz/api/contacts/7", writer, "", 403},
		{"/ext-authz/status", "", "", 200},
		{"/api/contacts/7", reader, "", 400},
		{"/ext-authz/api/contacts/7", reader, "/api/contacts/7", 200},
		// The client names a public path for a request Envoy forwards to
		// a protected one.
		{"/ext-authz/api/contacts/7", "", "/status", 400},
	} {
		r := do(t, srv.client, "GET", srv.url+tc.path, func(r *http.Request) {
			if tc.token != "" {
				bearer(tc.token)(r)
			}
			if tc.forwardedURI != "" {
				r.Header.Set("X-Forwarded-Method", "GET")
				r.Header.Set("X-Forwarded-Uri", tc.forwardedURI)
			}
		})
		if r.status != tc.status {
			t.Errorf("%s: status %d, want %d; body %s", tc.path, r.status, tc.status, r.body)
		}
		if tc.status == 200 && tc.token == reader && r.header.Get("X-Auth-Subject") != "auth0|alice" {
			t.Errorf("%s: X-Auth-Subject %q", tc.path, r.header.Get("X-Auth-Subject"))
		}
	}
}

// TestGRPCConnectionBound: with TOKENWARD_GRPC_MAX_CONNECTIONS gateways
// connected, the next connection is closed at once, before any HTTP/2
// (counted in /metrics under listener="grpc"); once one gateway leaves, a
// new one is served.
func TestGRPCConnectionBound(t *testing.T) {
	t.Parallel()
	const bound = 2
	iss := newIssuer(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_MODE":                 "forward-auth",
		"TOKENWARD_ISSUERS":              iss.URL(),
		"TOKENWARD_AUDIENCES":            audience,
		"TOKENWARD_GRPC_ADDR":            "127.0.0.1:0",
		"TOKENWARD_GRPC_MAX_CONNECTIONS": fmt.Sprint(bound),
	})
	addr := srv.stderr.waitLog(t, "listening", "server", "grpc ext_authz").str("addr")
	check := func(conn *grpc.ClientConn) error {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	held := make([]*grpc.ClientConn, bound)
	for i := range held {
		held[i] = grpcClient(t, srv)
		if err := check(held[i]); err != nil {
			t.Fatalf("gateway %d within the bound: %v", i, err)
		}
	}

	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetDeadline(time.Now().Add(waitTimeout))
	if got, err := io.ReadAll(over); err != nil || len(got) != 0 {
		t.Fatalf("connection over the bound: read %q, %v; want it closed without a byte", got, err)
	}
	if v, _ := metric(t, srv, `tokenward_connections_refused_total{listener="grpc"}`); v != 1 {
		t.Errorf("refused gRPC connections %v, want 1", v)
	}
	if v, _ := metric(t, srv, `tokenward_connections_open{listener="grpc"}`); v != bound {
		t.Errorf("open gRPC connections %v, want %d", v, bound)
	}

	held[0].Close()
	waitMetric(t, srv, `tokenward_connections_open{listener="grpc"}`, func(v float64) bool { return v < bound })
	if err := check(grpcClient(t, srv)); err != nil {
		t.Errorf("a new gateway after one left: %v", err)
	}
}
