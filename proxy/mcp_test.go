package proxy_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/proxy"
	"github.com/tokenward/tokenward/resource"
)

const mcpResource = "https://api.example.com/mcp"

func withResource(t *testing.T, cfg proxy.Config) proxy.Config {
	t.Helper()
	h, err := resource.New(mcpResource, cfg.Validator, resource.Options{Scopes: []string{"read:contacts"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Resource = h
	return cfg
}

// TestResourceMetadataServed: the proxy and the forward-auth listener serve
// the metadata document at both well-known paths, without a token, as
// cacheable JSON, and never forward anything under the well-known prefix to
// the upstream. A forward-auth question about that path (with the original
// URI in its headers) is judged like any other.
func TestResourceMetadataServed(t *testing.T) {
	iss := newIssuer(t)
	up := newUpstream(t)
	cfg := withResource(t, defaultConfig(t, iss))
	px := startProxy(t, up.URL, cfg, proxy.UpstreamOptions{})
	fa, err := proxy.NewForwardAuth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fas := httptest.NewServer(fa)
	t.Cleanup(fas.Close)

	for name, srv := range map[string]*httptest.Server{"proxy": px, "forward-auth": fas} {
		for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
			resp, body := do(t, srv, request{path: path})
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" ||
				resp.Header.Get("Cache-Control") != "public, max-age=3600" {
				t.Errorf("%s GET %s: %d %v %q", name, path, resp.StatusCode, resp.Header, body)
			}
			var m resource.Metadata
			if err := json.Unmarshal([]byte(body), &m); err != nil || m.Resource != mcpResource ||
				len(m.AuthorizationServers) != 1 || m.AuthorizationServers[0] != iss.URL() {
				t.Errorf("%s GET %s: %q (%v)", name, path, body, err)
			}
		}
		// With a token, a method it refuses and a path it does not serve: never the upstream's.
		for _, req := range []request{
			{path: "/.well-known/oauth-protected-resource/mcp", token: withScope(t, iss, "api")},
			{method: "POST", path: "/.well-known/oauth-protected-resource/mcp", body: strings.NewReader("{}")},
			{path: "/.well-known/oauth-protected-resource/other", token: withScope(t, iss, "api")},
		} {
			resp, body := do(t, srv, req)
			if resp.StatusCode == 200 && req.method == "" && strings.HasSuffix(req.path, "/mcp") {
				continue
			}
			if resp.StatusCode != 405 && resp.StatusCode != 404 {
				t.Errorf("%s %s %s: %d %q, want 404 or 405", name, req.method, req.path, resp.StatusCode, body)
			}
		}
	}
	up.none(t)

	// A question about the upstream's own well-known path is a question.
	resp, _ := do(t, fas, request{path: "/.well-known/oauth-protected-resource", header: http.Header{
		"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/.well-known/oauth-protected-resource"}}})
	if resp.StatusCode != 401 {
		t.Errorf("forward-auth question about the well-known path: %d, want 401", resp.StatusCode)
	}
	wantChallenge(t, resp, `resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp"`)
}

// TestBadRequestNamesMetadata: the 400 answers that come before the
// decision (the normalization contract, a forward-auth question without
// its original URI) carry resource_metadata too.
func TestBadRequestNamesMetadata(t *testing.T) {
	iss := newIssuer(t)
	up := newUpstream(t)
	cfg := withResource(t, defaultConfig(t, iss))
	px := startProxy(t, up.URL, cfg, proxy.UpstreamOptions{})
	fa, err := proxy.NewForwardAuth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fas := httptest.NewServer(fa)
	t.Cleanup(fas.Close)
	const rm = `resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp"`
	for name, resp := range map[string]*http.Response{
		"proxy, path parameter": func() *http.Response {
			r, _ := do(t, px, request{path: "/api/contacts;x=1"})
			return r
		}(),
		"forward-auth, no original URI": func() *http.Response {
			r, _ := do(t, fas, request{path: "/auth"})
			return r
		}(),
		"forward-auth, path parameter": func() *http.Response {
			r, _ := do(t, fas, request{path: "/auth", header: http.Header{
				"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/api/contacts;x=1"}}})
			return r
		}(),
	} {
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d, want 400", name, resp.StatusCode)
		}
		wantChallenge(t, resp, `error="invalid_request"`, rm)
	}
	up.none(t)
}

// TestInsufficientScopeNamesScopes: a 403 names every scope of the route's
// requirement, for an any-of requirement too (all its alternatives: a
// token granted all of them passes; see the README), in every front end.
func TestInsufficientScopeNamesScopes(t *testing.T) {
	iss := newIssuer(t)
	up := newUpstream(t)
	cfg := withResource(t, defaultConfig(t, iss))
	cfg.Rules = mustRules(t, `
routes:
  - match: "POST /mcp"
    scopes: ["tools:call"]
    any_scopes: ["contacts:read", "contacts:admin"]
`)
	px := startProxy(t, up.URL, cfg, proxy.UpstreamOptions{})
	fa, err := proxy.NewForwardAuth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fas := httptest.NewServer(fa)
	t.Cleanup(fas.Close)
	grpc := startExtAuthz(t, fa)
	tok := withScope(t, iss, "api contacts:read")
	h := http.Header{"Authorization": {"Bearer " + tok}}
	const want = `error="insufficient_scope", error_description="insufficient scope", scope="api tools:call contacts:admin contacts:read", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/mcp"`

	resp, _ := do(t, px, request{method: "POST", path: "/mcp", token: tok, body: strings.NewReader("{}"),
		header: http.Header{"Content-Type": {"application/json"}}})
	got := []*http.Response{resp}
	resp, _ = do(t, fas, request{path: "/auth", token: tok, header: http.Header{
		"X-Forwarded-Method": {"POST"}, "X-Forwarded-Uri": {"/mcp"}, "Content-Type": {"application/json"}}})
	got = append(got, resp)
	h.Set("Content-Type", "application/json")
	resp, _ = checkGRPC(t, grpc, "POST", "/mcp", h)
	got = append(got, resp)
	for i, resp := range got {
		if resp.StatusCode != 403 || !strings.HasSuffix(resp.Header.Get("WWW-Authenticate"), want) {
			t.Errorf("front end %d: %d %q, want 403 ending %q", i, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
		}
	}
	up.none(t)
}

// TestAllowedOrigins: with allowed origins, a request whose Origin is not
// one of them gets 403 before anything else — a valid token, a public
// route, the metadata document — in the proxy, forward-auth and gRPC
// ext_authz; an allowed origin (any case) and no Origin at all are judged as
// usual; several Origin headers are refused.
func TestAllowedOrigins(t *testing.T) {
	iss := newIssuer(t)
	up := newUpstream(t)
	cfg := withResource(t, defaultConfig(t, iss))
	cfg.AllowedOrigins = []string{"https://app.example.com", "http://localhost:6274"}
	px := startProxy(t, up.URL, cfg, proxy.UpstreamOptions{})
	fa, err := proxy.NewForwardAuth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fas := httptest.NewServer(fa)
	t.Cleanup(fas.Close)
	grpc := startExtAuthz(t, fa)
	tok := withScope(t, iss, "api read:contacts")

	for _, tt := range []struct {
		name   string
		origin []string
		path   string
		status int
	}{
		{"other origin, valid token", []string{"https://evil.example.com"}, "/api/contacts/1", 403},
		{"other origin, public route", []string{"https://evil.example.com"}, "/health", 403},
		{"null origin", []string{"null"}, "/api/contacts/1", 403},
		{"allowed origin as a prefix", []string{"https://app.example.com.evil.com"}, "/api/contacts/1", 403},
		{"two origins", []string{"https://app.example.com", "https://app.example.com"}, "/api/contacts/1", 403},
		{"allowed origin", []string{"https://app.example.com"}, "/api/contacts/1", 200},
		{"allowed origin, other case", []string{"HTTP://LOCALHOST:6274"}, "/api/contacts/1", 200},
		{"no origin", nil, "/api/contacts/1", 200},
	} {
		h := http.Header{"Authorization": {"Bearer " + tok}}
		if tt.origin != nil {
			h["Origin"] = tt.origin
		}
		resp, body := do(t, px, request{path: tt.path, header: h.Clone()})
		answers := map[string]*http.Response{"proxy": resp}
		fh := h.Clone()
		fh.Set("X-Forwarded-Method", "GET")
		fh.Set("X-Forwarded-Uri", tt.path)
		answers["forward-auth"], _ = do(t, fas, request{path: "/auth", header: fh})
		answers["grpc"], _ = checkGRPC(t, grpc, "GET", tt.path, h.Clone())
		for name, resp := range answers {
			if resp.StatusCode != tt.status {
				t.Errorf("%s: %s: %d, want %d (%q)", tt.name, name, resp.StatusCode, tt.status, body)
			}
		}
		if tt.status == 403 && !strings.Contains(body, "forbidden_origin") {
			t.Errorf("%s: body %q", tt.name, body)
		}
		if tt.status == 403 {
			up.none(t)
		} else {
			up.last(t)
		}
	}
	// The document too.
	for _, srv := range []*httptest.Server{px, fas} {
		resp, _ := do(t, srv, request{path: "/.well-known/oauth-protected-resource/mcp", header: http.Header{"Origin": {"https://evil.example.com"}}})
		if resp.StatusCode != 403 {
			t.Errorf("metadata from another origin: %d, want 403", resp.StatusCode)
		}
	}

	for _, bad := range [][]string{{"https://app.example.com/"}, {"app.example.com"}, {"https://app.example.com/x"}, {"ftp://a"}, {}} {
		c := cfg
		c.AllowedOrigins = bad
		if _, err := proxy.New(up.URL, c, proxy.UpstreamOptions{}); err == nil {
			t.Errorf("proxy.New accepted allowed origins %q", bad)
		}
	}
}

// TestMCPStreamThroughProxy: MCP's Streamable HTTP through the proxy, on
// both upstream paths (lean and net/http's Transport): the answer to a POST
// (a body) and to a GET (no body) is a server-sent-event stream that the
// client reads event by event while the upstream is still writing — the
// upstream sends its second event only once the client has the first, so a
// buffering proxy hangs the test — and Mcp-Session-Id and Last-Event-ID
// pass both ways.
func TestMCPStreamThroughProxy(t *testing.T) {
	for _, standard := range []bool{false, true} {
		name := "lean"
		if standard {
			name = "standard"
		}
		t.Run(name, func(t *testing.T) {
			iss := newIssuer(t)
			next := make(chan struct{})
			seen := make(chan http.Header, 4)
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen <- r.Header.Clone()
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "text/event-stream")
				w.Header().Set("Mcp-Session-Id", "session-1")
				w.WriteHeader(200)
				io.WriteString(w, "id: 1\ndata: {\"n\":1}\n\n")
				w.(http.Flusher).Flush()
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
				io.WriteString(w, "id: 2\ndata: {\"n\":2}\n\n")
			}))
			t.Cleanup(up.Close)
			cfg := withResource(t, defaultConfig(t, iss))
			cfg.Rules = mustRules(t, `
routes:
  - match: "/mcp"
    scopes: ["tools:call"]
`)
			px := startProxy(t, up.URL, cfg, proxy.UpstreamOptions{StandardTransport: standard})
			tok := withScope(t, iss, "api tools:call")

			for _, method := range []string{"POST", "GET"} {
				var body io.Reader
				if method == "POST" {
					body = strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`)
				}
				req, _ := http.NewRequestWithContext(waitCtx(t), method, px.URL+"/mcp", body)
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Accept", "application/json, text/event-stream")
				req.Header.Set("Mcp-Session-Id", "session-1")
				req.Header.Set("Last-Event-ID", "0")
				if method == "POST" {
					req.Header.Set("Content-Type", "application/json")
				}
				resp, err := px.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				h := within(t, seen, "the upstream's request")
				if h.Get("Mcp-Session-Id") != "session-1" || h.Get("Last-Event-ID") != "0" {
					t.Errorf("%s: the upstream saw %v", method, h)
				}
				if resp.Header.Get("Mcp-Session-Id") != "session-1" || resp.Header.Get("Content-Type") != "text/event-stream" {
					t.Errorf("%s: the client got %v", method, resp.Header)
				}
				br := bufio.NewReader(resp.Body)
				read := func(want string) {
					got := make(chan string, 1)
					go func() {
						var b strings.Builder
						for {
							line, err := br.ReadString('\n')
							b.WriteString(line)
							if err != nil || line == "\n" {
								got <- b.String()
								return
							}
						}
					}()
					if ev := within(t, got, "an event"); ev != want {
						t.Errorf("%s: event %q, want %q", method, ev, want)
					}
				}
				read("id: 1\ndata: {\"n\":1}\n\n")
				next <- struct{}{} // only now does the upstream write the second
				read("id: 2\ndata: {\"n\":2}\n\n")
				resp.Body.Close()
			}
		})
	}
}
