package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/proxy"
)

// TestForwardAuthRequestLine: with AllowRequestLine (Envoy's ext_authz HTTP
// service with its defaults), a question without any original-request
// header is judged on its own method and path, PathPrefix removed, under
// the same route rules and normalization contract; with any of the headers
// present they must name the request line's request (Envoy passes on a
// client's copies that its allowed_headers match), else 400; off, such a
// question is a 400.
func TestForwardAuthRequestLine(t *testing.T) {
	iss := newIssuer(t)
	serve := func(t *testing.T, opts proxy.ForwardAuthOptions) *httptest.Server {
		cfg := defaultConfig(t, iss)
		cfg.ForwardAuth = opts
		fa, err := proxy.NewForwardAuth(cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(fa)
		t.Cleanup(srv.Close)
		return srv
	}
	reader := withScope(t, iss, "api read:contacts")
	apiOnly := withScope(t, iss, "api")
	on := serve(t, proxy.ForwardAuthOptions{AllowRequestLine: true, PathPrefix: "/auth"})
	noPrefix := serve(t, proxy.ForwardAuthOptions{AllowRequestLine: true})
	off := serve(t, proxy.ForwardAuthOptions{})

	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		srv     *httptest.Server
		raw     string // the request line's method and target
		token   string
		header  http.Header
		status  int
		subject string
		desc    string // error_description contains, on 400
	}{
		{"prefix removed, route rule applied", on, "GET /auth/api/contacts/7?fields=name", reader, nil, 200, "auth0|test-user", ""},
		{"the derived path's scopes, not the auth path's", on, "GET /auth/api/contacts/7", apiOnly, nil, 403, "", ""},
		{"the derived path's method", on, "DELETE /auth/api/contacts/7", reader, nil, 403, "", ""},
		{"public derived path", on, "GET /auth/status", "", nil, 200, "", ""},
		{"no token", on, "GET /auth/api/contacts/7", "", nil, 401, "", ""},
		{"without the prefix", on, "GET /api/contacts/7", reader, nil, 400, "", "original request URI"},
		{"prefix not followed by a segment", on, "GET /authz/status", reader, nil, 400, "", "original request URI"},
		{"prefix alone", on, "GET /auth", reader, nil, 400, "", "original request URI"},
		{"absolute form", on, "GET http://api.example.com/auth/status", reader, nil, 400, "", "original request URI"},
		{"path parameter after the prefix", on, "GET /auth/static/..;/admin", reader, nil, 400, "", "path"},
		{"dot segment after the prefix", on, "GET /auth/status/../api/contacts/7", "", nil, 400, "", "not canonical"},
		{"method parameter", on, "GET /auth/status?_method=DELETE", "", nil, 400, "", "_method"},
		{"no prefix configured", noPrefix, "GET /api/contacts/7", reader, nil, 200, "auth0|test-user", ""},
		// Envoy passes on the client's own headers that its allowed_headers
		// match, and sets none of these: they must name the request Envoy
		// asks about, its request line, or a client picks the route judged.
		{"headers present and agreeing", on, "GET /auth/api/contacts/7?fields=name", reader,
			h("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/api/contacts/7?fields=name", "X-Forwarded-Host", "API.example.com"), 200, "auth0|test-user", ""},
		{"headers present, agreeing, checked with the request line's rules", on, "GET /auth/api/contacts/7", apiOnly,
			h("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/api/contacts/7"), 403, "", ""},
		{"client's headers name a public path", on, "GET /auth/api/contacts/7", "",
			h("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/status"), 400, "", "original request URI"},
		{"client's headers name a weaker method", on, "DELETE /auth/api/contacts/7", reader,
			h("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/api/contacts/7"), 400, "", "original request URI"},
		{"client's headers name another query", on, "GET /auth/api/contacts/7?a=1", reader,
			h("X-Original-Method", "GET", "X-Original-URI", "/api/contacts/7?a=2"), 400, "", "original request URI"},
		{"client's headers name another host", on, "GET /auth/api/contacts/7", reader,
			h("X-Original-Method", "GET", "X-Original-URL", "http://public.example.com/api/contacts/7"), 400, "", "original request URI"},
		{"headers naming the request line's path without the prefix's removal", on, "GET /auth/status", "",
			h("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/auth/status"), 400, "", "original request URI"},
		{"headers present, request line without the prefix", on, "GET /_tokenward", reader,
			h("X-Original-Method", "GET", "X-Original-URI", "/api/contacts/7"), 400, "", "original request URI"},
		{"headers present, no prefix configured, request line elsewhere", noPrefix, "GET /_tokenward", reader,
			h("X-Original-Method", "GET", "X-Original-URI", "/api/contacts/7"), 400, "", "original request URI"},
		{"headers present but disagreeing", on, "GET /auth/status", reader,
			h("X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/status", "X-Original-URI", "/api/contacts/7"), 400, "", "original request URI"},
		{"only a host header present", on, "GET /auth/status", reader, h("X-Forwarded-Host", "api.example.com"), 400, "", "original request URI"},
		{"only a method header present", on, "GET /auth/status", reader, h("X-Original-Method", "GET"), 400, "", "original request URI"},
		{"off: the request line is never judged", off, "GET /api/contacts/7", reader, nil, 400, "", "original request URI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.raw + " HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\nX-Auth-Subject: auth0|mallory\r\n"
			if tc.token != "" {
				raw += "Authorization: Bearer " + tc.token + "\r\n"
			}
			for k, vs := range tc.header {
				for _, v := range vs {
					raw += k + ": " + v + "\r\n"
				}
			}
			resp, body := rawRequest(t, strings.TrimPrefix(tc.srv.URL, "http://"), raw+"\r\n")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get("X-Auth-Subject"); got != tc.subject {
				t.Errorf("X-Auth-Subject %q, want %q", got, tc.subject)
			}
			if tc.status == 200 && tc.subject == "" && !strings.Contains(resp.Header.Get("X-Envoy-Auth-Headers-To-Remove"), "X-Auth-Subject") {
				t.Errorf("a public allow does not remove the client's X-Auth-Subject: %q", resp.Header)
			}
			if tc.desc != "" && !strings.Contains(body, tc.desc) {
				t.Errorf("body %s, want it to mention %q", body, tc.desc)
			}
		})
	}
}

// TestForwardAuthPathPrefixChecked: a prefix is refused unless it is a
// canonical path, and without AllowRequestLine.
func TestForwardAuthPathPrefixChecked(t *testing.T) {
	iss := newIssuer(t)
	for _, tc := range []struct {
		opts proxy.ForwardAuthOptions
		ok   bool
	}{
		{proxy.ForwardAuthOptions{AllowRequestLine: true, PathPrefix: "/auth"}, true},
		{proxy.ForwardAuthOptions{AllowRequestLine: true, PathPrefix: "/ext/authz"}, true},
		{proxy.ForwardAuthOptions{AllowRequestLine: true}, true},
		{proxy.ForwardAuthOptions{PathPrefix: "/auth"}, false},
		{proxy.ForwardAuthOptions{AllowRequestLine: true, PathPrefix: "/auth/"}, false},
		{proxy.ForwardAuthOptions{AllowRequestLine: true, PathPrefix: "/"}, false},
		{proxy.ForwardAuthOptions{AllowRequestLine: true, PathPrefix: "auth"}, false},
		{proxy.ForwardAuthOptions{AllowRequestLine: true, PathPrefix: "/a/../auth"}, false},
		{proxy.ForwardAuthOptions{AllowRequestLine: true, PathPrefix: "/a//b"}, false},
		{proxy.ForwardAuthOptions{AllowRequestLine: true, PathPrefix: "/auth;x"}, false},
		{proxy.ForwardAuthOptions{AllowRequestLine: true, PathPrefix: "/a%2fb"}, false},
		{proxy.ForwardAuthOptions{AllowRequestLine: true, PathPrefix: "/auth?x"}, false},
		{proxy.ForwardAuthOptions{AllowRequestLine: true, PathPrefix: "/auth#x"}, false},
		{proxy.ForwardAuthOptions{AllowRequestLine: true, PathPrefix: "/a\\b"}, false},
	} {
		cfg := defaultConfig(t, iss)
		cfg.ForwardAuth = tc.opts
		_, err := proxy.NewForwardAuth(cfg)
		if (err == nil) != tc.ok {
			t.Errorf("%+v: error %v, want ok %v", tc.opts, err, tc.ok)
		}
	}
}
