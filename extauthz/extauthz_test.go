package extauthz_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/tokenward/tokenward/extauthz"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
	"github.com/tokenward/tokenward/scopes"
)

const audience = "https://api.example.com"

const rules = `
routes:
  - match: "GET /api/contacts/"
    scopes: ["read:contacts"]
  - match: "GET /status"
    public: true
`

// fixture is a forward-auth decision trusting iss (keys loaded) and down
// (keys never loaded), served over gRPC on loopback.
type fixture struct {
	iss, down *jwkstest.Issuer
	srv       *extauthz.Server
	client    authv3.AuthorizationClient
	conn      *grpc.ClientConn
}

func newFixture(t testing.TB, opts extauthz.Options) *fixture {
	t.Helper()
	f := &fixture{iss: jwkstest.NewIssuer(), down: jwkstest.NewIssuer()}
	t.Cleanup(f.iss.Close)
	t.Cleanup(f.down.Close)
	f.down.SetDown(true)
	resp, err := http.Get(f.iss.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := jwks.NewStatic(body)
	if err != nil {
		t.Fatal(err)
	}
	unloaded, err := jwks.NewRemote(f.down.JWKSURL(), jwks.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unloaded.Close)
	v, err := middleware.NewValidator([]middleware.Issuer{
		{URL: f.iss.URL(), Keys: keys}, {URL: f.down.URL(), Keys: unloaded},
	}, []string{audience}, middleware.ValidatorOptions{CacheSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	r, err := proxy.ParseRules([]byte(rules), scopes.All("api"))
	if err != nil {
		t.Fatal(err)
	}
	fa, err := proxy.NewForwardAuth(proxy.Config{Validator: v, Rules: r, Realm: "contacts",
		ClaimHeaders: []proxy.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}}, ScopesHeader: "X-Auth-Scopes"})
	if err != nil {
		t.Fatal(err)
	}
	if f.srv, err = extauthz.New(fa, opts); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ln) }()
	f.conn, err = grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.conn.Close()
		f.srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	f.client = authv3.NewAuthorizationClient(f.conn)
	return f
}

func (f *fixture) token(t testing.TB, iss *jwkstest.Issuer, scope string) string {
	t.Helper()
	tok, err := iss.Mint(iss.Claims(audience, map[string]any{"scope": scope}))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// envoyRequest describes a request as Envoy does: lower-case names,
// pseudo-headers, the source address.
func envoyRequest(method, path string, headers ...string) *authv3.CheckRequest {
	hm := &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":method", Value: method}, {Key: ":path", Value: path}, {Key: ":authority", Value: "api.example.com"},
	}}
	for i := 0; i+1 < len(headers); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: headers[i], RawValue: []byte(headers[i+1])})
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "203.0.113.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50123}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "api.example.com", HeaderMap: hm, Protocol: "HTTP/1.1", Scheme: "https",
		}},
	}}
}

// answer is a CheckResponse as Envoy reads it.
type answer struct {
	status  int               // 200 for an allow
	headers map[string]string // set on the request (allow) or the response (deny)
	remove  []string          // headers_to_remove (allow)
	body    string            // deny
}

func read(t *testing.T, resp *authv3.CheckResponse) answer {
	t.Helper()
	a := answer{headers: map[string]string{}}
	var opts []*corev3.HeaderValueOption
	if ok := resp.GetOkResponse(); ok != nil {
		if c := codes.Code(resp.GetStatus().GetCode()); c != codes.OK {
			t.Fatalf("allow with gRPC status %v", c)
		}
		a.status, opts, a.remove = http.StatusOK, ok.GetHeaders(), ok.GetHeadersToRemove()
	} else if d := resp.GetDeniedResponse(); d != nil {
		if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
			t.Fatal("deny with gRPC status OK: Envoy would let the request pass")
		}
		a.status, opts, a.body = int(d.GetStatus().GetCode()), d.GetHeaders(), d.GetBody()
	} else {
		t.Fatalf("neither allow nor deny: %v", resp)
	}
	for _, o := range opts {
		k := o.GetHeader().GetKey()
		if k != strings.ToLower(k) {
			t.Errorf("header %q is not lower-case", k)
		}
		if _, dup := a.headers[k]; dup {
			t.Errorf("header %q set twice", k)
		}
		if o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("header %q appended: a client's copy would survive", k)
		}
		a.headers[k] = o.GetHeader().GetValue()
	}
	return a
}

// TestCheck: the answers table through a real gRPC client, with the identity
// headers set or removed so that no client copy reaches the upstream.
func TestCheck(t *testing.T) {
	f := newFixture(t, extauthz.Options{})
	read1 := f.token(t, f.iss, "api read:contacts")
	noScope := f.token(t, f.iss, "api")
	fromDown := f.token(t, f.down, "api read:contacts")
	bare := `Bearer realm="contacts"`
	tests := []struct {
		name      string
		req       *authv3.CheckRequest
		status    int
		headers   map[string]string // exactly these
		remove    []string          // exactly these, any order
		bodyError string
	}{
		{"allow with identity headers", envoyRequest("GET", "/api/contacts/1?page=2", "authorization", "Bearer "+read1,
			"x-auth-subject", "admin", "x_auth_subject", "admin", "X-AUTH_scopes", "admin"),
			200, map[string]string{"x-auth-subject": "auth0|test-user", "x-auth-scopes": "api read:contacts"},
			[]string{"x_auth_subject", "x-auth_scopes"}, ""},
		{"no token", envoyRequest("GET", "/api/contacts/1"), 401,
			map[string]string{"www-authenticate": bare, "content-type": "application/json", "cache-control": "no-store",
				"x-content-type-options": "nosniff"}, nil, "unauthorized"},
		{"bad token", envoyRequest("GET", "/api/contacts/1", "authorization", "Bearer a.b.c"), 401,
			map[string]string{"www-authenticate": `Bearer realm="contacts", error="invalid_token", error_description="token claims are not base64url"`,
				"content-type": "application/json", "cache-control": "no-store", "x-content-type-options": "nosniff"}, nil, "invalid_token"},
		{"insufficient scope", envoyRequest("GET", "/api/contacts/1", "authorization", "Bearer "+noScope), 403,
			map[string]string{"www-authenticate": `Bearer realm="contacts", error="insufficient_scope", error_description="insufficient scope", scope="api read:contacts"`,
				"content-type": "application/json", "cache-control": "no-store", "x-content-type-options": "nosniff"}, nil, "insufficient_scope"},
		{"path parameter", envoyRequest("GET", "/static/..;/admin", "authorization", "Bearer "+read1), 400,
			map[string]string{"www-authenticate": `Bearer realm="contacts", error="invalid_request", error_description="request path has a ';' (path parameter)"`,
				"content-type": "application/json", "cache-control": "no-store", "x-content-type-options": "nosniff"}, nil, "invalid_request"},
		{"method override", envoyRequest("GET", "/status", "x-http-method-override", "DELETE"), 400,
			map[string]string{"www-authenticate": `Bearer realm="contacts", error="invalid_request", error_description="method override is not allowed"`,
				"content-type": "application/json", "cache-control": "no-store", "x-content-type-options": "nosniff"}, nil, "invalid_request"},
		{"issuer keys never loaded", envoyRequest("GET", "/api/contacts/1", "authorization", "Bearer "+fromDown), 503,
			map[string]string{"retry-after": middleware.RetryAfterSeconds, "content-type": "application/json",
				"cache-control": "no-store", "x-content-type-options": "nosniff"}, nil, "temporarily_unavailable"},
		{"public route removes client identity", envoyRequest("GET", "/status", "authorization", "Bearer "+read1,
			"x-auth-subject", "admin", "x_auth_subject", "admin"),
			200, map[string]string{}, []string{"x-auth-subject", "x-auth-scopes", "x_auth_subject"}, ""},
		{"public route without client headers", envoyRequest("GET", "/status"),
			200, map[string]string{}, []string{"x-auth-subject", "x-auth-scopes"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := f.client.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			a := read(t, resp)
			if a.status != tt.status {
				t.Errorf("status %d, want %d (body %q)", a.status, tt.status, a.body)
			}
			if !equalMaps(a.headers, tt.headers) {
				t.Errorf("headers %q, want %q", a.headers, tt.headers)
			}
			slices.Sort(a.remove)
			slices.Sort(tt.remove)
			if !slices.Equal(a.remove, tt.remove) {
				t.Errorf("headers_to_remove %q, want %q", a.remove, tt.remove)
			}
			if tt.bodyError == "" {
				if a.body != "" {
					t.Errorf("allow with a body %q", a.body)
				}
				return
			}
			var body struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal([]byte(a.body), &body); err != nil || body.Error != tt.bodyError {
				t.Errorf("body %q, want JSON with error %q", a.body, tt.bodyError)
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestCheckHeadersMap: Envoy without encode_raw_headers sends the headers
// map (repeated headers joined with ","), which is read as well.
func TestCheckHeadersMap(t *testing.T) {
	f := newFixture(t, extauthz.Options{})
	tok := f.token(t, f.iss, "api read:contacts")
	for _, tt := range []struct {
		name    string
		headers map[string]string
		status  int
	}{
		{"token", map[string]string{":path": "/api/contacts/1", "authorization": "Bearer " + tok}, 200},
		{"two tokens joined", map[string]string{"authorization": "Bearer " + tok + ",Bearer " + tok}, 400},
		{"no token", map[string]string{}, 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := envoyRequest("GET", "/api/contacts/1")
			req.Attributes.Request.Http.HeaderMap = nil
			req.Attributes.Request.Http.Headers = tt.headers
			resp, err := f.client.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if a := read(t, resp); a.status != tt.status {
				t.Errorf("status %d, want %d (body %q)", a.status, tt.status, a.body)
			}
		})
	}
}

// TestCheckBadInput: what Envoy never sends, or a hand-made client may, is
// a 400 deny, never a gRPC error or a panic.
func TestCheckBadInput(t *testing.T) {
	f := newFixture(t, extauthz.Options{})
	tok := f.token(t, f.iss, "api read:contacts")
	withHTTP := func(edit func(*authv3.AttributeContext_HttpRequest)) *authv3.CheckRequest {
		req := envoyRequest("GET", "/api/contacts/1", "authorization", "Bearer "+tok)
		edit(req.Attributes.Request.Http)
		return req
	}
	huge := strings.Repeat("a", proxy.MaxHeaderBytes)
	for _, tt := range []struct {
		name string
		req  *authv3.CheckRequest
	}{
		{"empty", &authv3.CheckRequest{}},
		{"no request", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}},
		{"no http", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}}},
		{"no method", withHTTP(func(h *authv3.AttributeContext_HttpRequest) { h.Method = "" })},
		{"no path", withHTTP(func(h *authv3.AttributeContext_HttpRequest) { h.Path = "" })},
		{"no host", withHTTP(func(h *authv3.AttributeContext_HttpRequest) { h.Host = "" })},
		{"lower-case method", withHTTP(func(h *authv3.AttributeContext_HttpRequest) { h.Method = "get" })},
		{"asterisk", withHTTP(func(h *authv3.AttributeContext_HttpRequest) { h.Path = "*" })},
		{"absolute form", withHTTP(func(h *authv3.AttributeContext_HttpRequest) { h.Path = "http://api.example.com/api/contacts/1" })},
		{"authority form", withHTTP(func(h *authv3.AttributeContext_HttpRequest) { h.Method, h.Path = "CONNECT", "api.example.com:443" })},
		{"fragment field", withHTTP(func(h *authv3.AttributeContext_HttpRequest) { h.Fragment = "x" })},
		{"fragment in path", withHTTP(func(h *authv3.AttributeContext_HttpRequest) { h.Path = "/api/contacts/1#/x" })},
		{"dot segment", withHTTP(func(h *authv3.AttributeContext_HttpRequest) { h.Path = "/status/../api/contacts/1" })},
		{"encoded slash", withHTTP(func(h *authv3.AttributeContext_HttpRequest) { h.Path = "/status%2F..%2Fapi" })},
		{"control byte", withHTTP(func(h *authv3.AttributeContext_HttpRequest) { h.Path = "/api/\x00" })},
		{"huge header", withHTTP(func(h *authv3.AttributeContext_HttpRequest) {
			h.HeaderMap.Headers = append(h.HeaderMap.Headers, &corev3.HeaderValue{Key: "x-big", Value: huge})
		})},
		{"huge headers map", withHTTP(func(h *authv3.AttributeContext_HttpRequest) {
			h.HeaderMap = nil
			h.Headers = map[string]string{"authorization": "Bearer " + tok, "x-big": huge}
		})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := f.client.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			a := read(t, resp)
			if a.status != http.StatusBadRequest || !strings.Contains(a.headers["www-authenticate"], `error="invalid_request"`) {
				t.Errorf("status %d, WWW-Authenticate %q; want 400 invalid_request", a.status, a.headers["www-authenticate"])
			}
		})
	}
}

// FuzzCheck: any method, path and header give an allow or a deny, never a
// gRPC error or a panic, and an allow never lets a client identity header
// through.
func FuzzCheck(f *testing.F) {
	f.Add("GET", "/api/contacts/1", "x-auth-subject", "admin")
	f.Add("GET", "/static/..;/admin", "authorization", "Bearer a.b.c")
	f.Add("POST", "/status?_method=DELETE", "content-type", "application/x-www-form-urlencoded")
	f.Add("GET", "/status", "x_auth_subject", "admin")
	f.Add("", "", ":path", "")
	fx := newFixture(f, extauthz.Options{})
	f.Fuzz(func(t *testing.T, method, path, key, value string) {
		resp, err := fx.srv.Check(context.Background(), envoyRequest(method, path, key, value))
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if ok := resp.GetOkResponse(); ok != nil {
			// No token can be valid here: an allow is a public route, which
			// must remove every spelling of the identity headers.
			lk := strings.ToLower(key)
			if strings.ReplaceAll(lk, "_", "-") == "x-auth-subject" && !slices.Contains(ok.GetHeadersToRemove(), lk) {
				t.Errorf("client's %q kept on an allow: remove %q", key, ok.GetHeadersToRemove())
			}
		} else if resp.GetDeniedResponse() == nil {
			t.Fatalf("neither allow nor deny")
		}
	})
}

// TestHealth: gRPC health answers NOT_SERVING until the issuer keys are
// loaded, for the server as a whole and for the ext_authz service, in Check
// and in Watch streams.
func TestHealth(t *testing.T) {
	var ready atomic.Bool
	f := newFixture(t, extauthz.Options{Ready: ready.Load, HealthInterval: time.Millisecond})
	hc := healthpb.NewHealthClient(f.conn)
	ctx := context.Background()
	for _, service := range []string{"", extauthz.ServiceName} {
		got, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("%q before keys: %v, want NOT_SERVING", service, got.Status)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{Service: extauthz.ServiceName})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.Recv(); err != nil || got.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch first: %v, %v; want NOT_SERVING", got, err)
	}
	ready.Store(true)
	if got, err := w.Recv(); err != nil || got.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch after keys loaded: %v, %v; want SERVING", got, err)
	}
	for _, service := range []string{"", extauthz.ServiceName} {
		got, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%q after keys: %v, want SERVING", service, got.Status)
		}
	}
	ready.Store(false) // Check asks at once, not at the next poll
	if got, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || got.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("after keys lost: %v, %v; want NOT_SERVING", got, err)
	}
}

// TestGracefulStopEndsWatch: a health Watch stream (a mesh's health
// checker keeps one open) ends when the server stops gracefully, so the
// stop completes by itself instead of being cut when its grace runs out.
func TestGracefulStopEndsWatch(t *testing.T) {
	f := newFixture(t, extauthz.Options{Ready: func() bool { return true }, HealthInterval: time.Millisecond})
	w, err := healthpb.NewHealthClient(f.conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.Recv(); err != nil || got.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: %v, %v; want SERVING", got, err)
	}
	grace, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		f.srv.GracefulStop(grace)
		close(stopped)
	}()
	// The stream ends (after NOT_SERVING, if that arrives first).
	for {
		got, err := w.Recv()
		if err != nil {
			break
		}
		if got.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("Watch while stopping: %v, want NOT_SERVING or the end", got.Status)
		}
	}
	<-stopped // never cut: the grace context is cancelled only below
	cancel()
}

// BenchmarkCheck: one allowed question with a cached token, in process
// (without gRPC's transport), next to proxy's BenchmarkProxyForwardAuthCached.
func BenchmarkCheck(b *testing.B) {
	f := newFixture(b, extauthz.Options{})
	req := envoyRequest("GET", "/api/contacts/1", "authorization", "Bearer "+f.token(b, f.iss, "api read:contacts"),
		"user-agent", "bench", "accept", "*/*")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := f.srv.Check(ctx, req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatalf("not allowed: %v %v", resp, err)
		}
	}
}

// TestConnectionMemoryBound: what one connection can make the server hold
// while messages arrive is bounded by the calls it may run at once (the
// server's SETTINGS_MAX_CONCURRENT_STREAMS) times the largest message. A
// stream that declares a message and sends it slowly holds its buffer for
// as long as it likes: with 1,024 streams of 1 MiB, four connections held
// 4 GiB of heap. A message over the limit fails the call (Envoy then
// denies); one just under it, headers over proxy.MaxHeaderBytes, is still
// a 400 deny.
func TestConnectionMemoryBound(t *testing.T) {
	const maxHeld = 32 << 20 // per connection
	f := newFixture(t, extauthz.Options{})
	tok := f.token(t, f.iss, "api read:contacts")

	// The server's SETTINGS, read from a raw HTTP/2 connection.
	conn, err := net.Dial("tcp", f.conn.Target())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 9)
	if _, err := io.ReadFull(conn, head); err != nil {
		t.Fatal(err)
	}
	if head[3] != 0x4 { // SETTINGS
		t.Fatalf("first frame of type %d, want SETTINGS", head[3])
	}
	payload := make([]byte, int(head[0])<<16|int(head[1])<<8|int(head[2]))
	if _, err := io.ReadFull(conn, payload); err != nil {
		t.Fatal(err)
	}
	streams := -1
	for i := 0; i+6 <= len(payload); i += 6 {
		if id := int(payload[i])<<8 | int(payload[i+1]); id == 0x3 { // MAX_CONCURRENT_STREAMS
			streams = int(payload[i+2])<<24 | int(payload[i+3])<<16 | int(payload[i+4])<<8 | int(payload[i+5])
		}
	}
	if streams < 1 {
		t.Fatalf("no SETTINGS_MAX_CONCURRENT_STREAMS in %x: unbounded calls per connection", payload)
	}

	// The largest message: find it with the real client, to within 1 KiB.
	check := func(n int) error {
		req := envoyRequest("GET", "/api/contacts/1", "authorization", "Bearer "+tok)
		req.Attributes.Request.Http.Body = strings.Repeat("b", n)
		_, err := f.client.Check(context.Background(), req)
		return err
	}
	if err := check(64 << 10); err != nil {
		t.Fatalf("a 64 KiB message fails: %v", err)
	}
	lo, hi := 64<<10, 64<<20 // lo passes; hi is beyond any sane limit
	if err := check(hi); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a %d-byte message: %v, want ResourceExhausted", hi, err)
	}
	for hi-lo > 1<<10 {
		mid := lo + (hi-lo)/2
		if check(mid) == nil {
			lo = mid
		} else {
			hi = mid
		}
	}
	if held := streams * hi; held > maxHeld {
		t.Errorf("one connection may hold %d streams x %d bytes = %d MiB, want at most %d MiB",
			streams, hi, held>>20, maxHeld>>20)
	}

	// Headers just over proxy.MaxHeaderBytes fit in a message: a 400 deny.
	req := envoyRequest("GET", "/api/contacts/1", "authorization", "Bearer "+tok,
		"x-big", strings.Repeat("a", proxy.MaxHeaderBytes))
	resp, err := f.client.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("headers over the limit: %v, want a deny", err)
	}
	if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != 400 {
		t.Errorf("headers over the limit: status %d, want 400", got)
	}
}

// TestCheckRemovesRouteHeaders: Envoy passes a client's X-Forwarded-Host,
// Forwarded, X-Original-URL and X-Rewrite-URL on to the upstream, which may
// take them for the host or path of the request (Werkzeug's ProxyFix,
// Django's USE_X_FORWARDED_HOST, Express' trust proxy): tokenward judged
// the attributes' host and path, so an allow removes each such header the
// client sent, in the spelling it sent, as the proxy does.
func TestCheckRemovesRouteHeaders(t *testing.T) {
	f := newFixture(t, extauthz.Options{})
	tok := f.token(t, f.iss, "api read:contacts")
	for _, tc := range []struct {
		name string
		req  *authv3.CheckRequest
	}{
		{"public route", envoyRequest("GET", "/status",
			"x-forwarded-host", "admin.example.com", "forwarded", "host=admin.example.com",
			"x-original-url", "/admin/users", "x-rewrite-url", "/admin/users",
			"x_forwarded_host", "admin.example.com", "x-forwarded-uri", "/admin/users")},
		{"protected route", envoyRequest("GET", "/api/contacts/1", "authorization", "Bearer "+tok,
			"x-forwarded-host", "admin.example.com", "forwarded", "host=admin.example.com",
			"x-original-url", "/admin/users", "x-rewrite-url", "/admin/users",
			"x_forwarded_host", "admin.example.com", "x-forwarded-uri", "/admin/users")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.client.Check(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			ok := resp.GetOkResponse()
			if ok == nil {
				t.Fatalf("not allowed: %v", resp)
			}
			for _, want := range []string{"x-forwarded-host", "forwarded", "x-original-url", "x-rewrite-url", "x_forwarded_host", "x-forwarded-uri"} {
				if !slices.Contains(ok.HeadersToRemove, want) {
					t.Errorf("headers_to_remove %q lacks %q: the upstream gets the client's copy", ok.HeadersToRemove, want)
				}
			}
			for _, h := range ok.Headers {
				if slices.Contains(ok.HeadersToRemove, h.Header.Key) {
					t.Errorf("%q both set and removed (Envoy removes after setting)", h.Header.Key)
				}
			}
		})
	}
}
