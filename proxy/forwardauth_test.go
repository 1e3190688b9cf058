package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
)

func startForwardAuth(tb testing.TB, cfg proxy.Config) *httptest.Server {
	tb.Helper()
	fa, err := proxy.NewForwardAuth(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(fa)
	tb.Cleanup(srv.Close)
	return srv
}

func TestForwardAuth(t *testing.T) {
	iss := newIssuer(t)
	cfg := defaultConfig(t, iss)
	cfg.ScopesHeader = "X-Auth-Scopes"
	srv := startForwardAuth(t, cfg)
	tok := func(scope string) string { return withScope(t, iss, scope) }
	orig := func(kind, method, uri string) http.Header {
		h := http.Header{}
		if method != "" {
			h.Set("X-"+kind+"-Method", method)
		}
		if uri != "" {
			h.Set(map[string]string{"Forwarded": "X-Forwarded-Uri", "Original": "X-Original-URI"}[kind], uri)
		}
		return h
	}

	tests := []struct {
		name        string
		req         request
		want        int
		wantSubject string // on 200: X-Auth-Subject in the response, "" for none
		wantChall   []string
	}{
		{"X-Forwarded-*: allowed", request{path: "/auth", token: tok("api read:contacts"),
			header: orig("Forwarded", "GET", "/api/contacts/1")}, 200, "auth0|test-user", nil},
		{"X-Original-*: allowed", request{path: "/auth", token: tok("api read:contacts"),
			header: orig("Original", "GET", "/api/contacts/1?x=1")}, 200, "auth0|test-user", nil},
		{"rules apply to the original method", request{method: "GET", path: "/auth", token: tok("api read:contacts"),
			header: withJSON(orig("Forwarded", "POST", "/api/contacts/"))}, 403, "",
			[]string{`error="insufficient_scope"`, `scope="api admin write:contacts"`}},
		{"rules apply to the original URI", request{path: "/api/contacts/", token: tok("api read:contacts"),
			header: orig("Original", "GET", "/files/x")}, 403, "", []string{`scope="api read:files"`}},
		{"both families, agreeing", request{path: "/auth", token: tok("api read:contacts"),
			header: http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/api/contacts/?a=1"},
				"X-Original-Method": {"GET"}, "X-Original-Uri": {"/api/contacts/?a=1"}}}, 200, "auth0|test-user", nil},
		{"ingress-nginx X-Original-URL", request{path: "/auth", token: tok("api read:contacts"),
			header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Url": {"https://api.example.com/api/contacts/1"}}},
			200, "auth0|test-user", nil},
		{"ingress-nginx X-Original-URL host pattern", request{path: "/auth", token: tok("api"),
			header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Url": {"https://admin.example.com/public/x"}}},
			403, "", []string{`scope="admin api"`}},
		{"no token", request{path: "/auth", header: orig("Forwarded", "GET", "/api/contacts/")}, 401, "",
			[]string{`realm="api"`}},
		{"bad token", request{path: "/auth", token: "a.b.c", header: orig("Forwarded", "GET", "/api/contacts/")}, 401, "",
			[]string{`error="invalid_token"`}},
		{"malformed Authorization", request{path: "/auth", header: http.Header{"Authorization": {"Bearer a b"},
			"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/x"}}}, 400, "", []string{`error="invalid_request"`}},
		{"original host pattern", request{path: "/auth", token: tok("api"), header: http.Header{
			"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/public/x"}, "X-Forwarded-Host": {"admin.example.com"}}},
			403, "", []string{`scope="admin api"`}},
		{"original host pattern, other case (Traefik passes the client's Host)", request{path: "/auth", token: tok("api"),
			header: http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/public/x"}, "X-Forwarded-Host": {"ADMIN.example.com."}}},
			403, "", []string{`scope="admin api"`}},
		{"original host pattern, other case, no token", request{path: "/auth",
			header: http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/public/x"}, "X-Forwarded-Host": {"Admin.Example.com"}}},
			401, "", nil},
		{"public route: no token", request{path: "/auth", header: orig("Forwarded", "GET", "/public/x")}, 200, "", nil},
		{"public route: valid token and spoofed identity: no identity", request{path: "/auth", token: tok("api"),
			header: http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/public/x"},
				"X-Auth-Subject": {"auth0|admin"}, "X-Auth-Scopes": {"admin"}}}, 200, "", nil},
		{"public route: bad token ignored", request{path: "/auth", token: "a.b.c",
			header: orig("Original", "GET", "/status")}, 200, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, srv, tc.req)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tc.want, body)
			}
			if len(tc.wantChall) > 0 {
				wantChallenge(t, resp, tc.wantChall...)
			}
			if got := resp.Header.Get("X-Auth-Subject"); got != tc.wantSubject {
				t.Errorf("response X-Auth-Subject = %q, want %q", got, tc.wantSubject)
			}
			if tc.want == 200 {
				if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control = %q, want no-store", cc)
				}
				scopes := resp.Header.Get("X-Auth-Scopes")
				if (tc.wantSubject == "") != (scopes == "") {
					t.Errorf("response X-Auth-Scopes = %q with subject %q", scopes, tc.wantSubject)
				}
			} else if resp.Header.Get("X-Auth-Subject") != "" || resp.Header.Get("X-Auth-Scopes") != "" {
				t.Errorf("a refusal carries identity headers")
			}
		})
	}
}

// TestForwardAuthAmbiguousOriginal: a gateway sets one family of headers
// and passes on whatever else the client sent, so the original request is
// judged only when every source present agrees, and never from the auth
// request's own path.
func TestForwardAuthAmbiguousOriginal(t *testing.T) {
	iss := newIssuer(t)
	srv := startForwardAuth(t, defaultConfig(t, iss))
	token := withScope(t, iss, "api")
	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
	}{
		{"no original headers, public path", "/public/x", nil},
		{"no original headers, protected path", "/api/contacts/", nil},
		{"method only", "/public/x", http.Header{"X-Forwarded-Method": {"GET"}}},
		{"URI only", "/public/x", http.Header{"X-Forwarded-Uri": {"/public/x"}}},
		{"families disagree on the URI", "/auth", http.Header{
			"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/public/x"},
			"X-Original-Method": {"GET"}, "X-Original-Uri": {"/api/contacts/"}}},
		{"families disagree on the method", "/auth", http.Header{
			"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/public/x"},
			"X-Original-Method": {"POST"}, "X-Original-Uri": {"/public/x"}}},
		{"families disagree on the query", "/auth", http.Header{
			"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/public/x?a=1"},
			"X-Original-Method": {"GET"}, "X-Original-Uri": {"/public/x?a=2"}}},
		{"X-Original-URL disagrees", "/auth", http.Header{
			"X-Original-Method": {"GET"}, "X-Original-Uri": {"/public/x"},
			"X-Original-Url": {"https://api.example.com/api/contacts/"}}},
		{"X-Original-URL host disagrees", "/auth", http.Header{
			"X-Original-Method": {"GET"}, "X-Forwarded-Host": {"api.example.com"},
			"X-Original-Url": {"https://admin.example.com/public/x"}}},
		{"X-Original-URL not absolute", "/auth", http.Header{
			"X-Original-Method": {"GET"}, "X-Original-Url": {"/public/x"}}},
		{"two URIs in one family", "/auth", http.Header{
			"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/public/x", "/api/contacts/"}}},
		{"two hosts", "/auth", http.Header{
			"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/public/x"},
			"X-Forwarded-Host": {"www.example.com", "admin.example.com"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, srv, request{path: tc.path, token: token, header: tc.header})
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400 (body %s)", resp.StatusCode, body)
			}
			if resp.Header.Get("X-Auth-Subject") != "" {
				t.Error("identity in a refusal")
			}
		})
	}
}

func TestForwardAuthMalformedOriginal(t *testing.T) {
	iss := newIssuer(t)
	srv := startForwardAuth(t, defaultConfig(t, iss))
	token := withScope(t, iss, "api")
	for _, tc := range []struct{ name, method, uri string }{
		{"dot segments", "GET", "/public/../admin"},
		{"encoded dot segments", "GET", "/public/%2e%2e/admin"},
		{"empty segment", "GET", "//admin"},
		{"encoded slash", "GET", "/public%2F..%2Fadmin"},
		{"backslash", "GET", `/public\..\admin`},
		{"not a request URI", "GET", "public/x"},
		{"absolute URL with a bad host", "GET", "http://[::1/x"},
		{"bad escape", "GET", "/a%zz"},
		{"lower-case method", "get", "/public/x"},
		{"method with a space", "GET X", "/public/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, kind := range []string{"Forwarded", "Original"} {
				h := http.Header{"X-" + kind + "-Method": {tc.method}}
				if kind == "Forwarded" {
					h.Set("X-Forwarded-Uri", tc.uri)
				} else {
					h.Set("X-Original-URI", tc.uri)
				}
				resp, body := do(t, srv, request{path: "/auth", token: token, header: h})
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("%s: status %d, want 400 (body %s)", kind, resp.StatusCode, body)
				}
				if resp.Header.Get("X-Auth-Subject") != "" {
					t.Errorf("%s: identity in a refusal", kind)
				}
			}
		})
	}
}

// TestForwardAuthKeysUnavailable: 503, as in proxy mode.
func TestForwardAuthKeysUnavailable(t *testing.T) {
	iss := newIssuer(t)
	iss.SetDown(true)
	keys, err := jwks.NewRemote(iss.JWKSURL(), jwks.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: iss.URL(), Keys: keys}}, []string{audience}, middleware.ValidatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := startForwardAuth(t, proxy.Config{Validator: v, Rules: mustRules(t, testRules)})
	resp, _ := do(t, srv, request{path: "/auth", token: withScope(t, iss, "api"),
		header: http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/x"}}})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestForwardAuthEnvoyHeadersToRemove: Envoy's ext_authz copies to the
// upstream request only the allowed headers an answer has, so a client's own
// X-Auth-Subject would pass wherever tokenward sets none. An allowing answer
// names every configured identity header it lacks in
// X-Envoy-Auth-Headers-To-Remove, which Envoy removes from the request: all
// of them on a public route, the absent claims' on a protected one.
func TestForwardAuthEnvoyHeadersToRemove(t *testing.T) {
	iss := newIssuer(t)
	cfg := defaultConfig(t, iss)
	cfg.ClaimHeaders = append(cfg.ClaimHeaders, proxy.ClaimHeader{Claim: "org.id", Header: "X-Auth-Org"})
	cfg.ScopesHeader = "X-Auth-Scopes"
	srv := startForwardAuth(t, cfg)
	orig := func(uri string) http.Header {
		return http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {uri},
			"X-Auth-Subject": {"auth0|admin"}, "X-Auth-Org": {"org_admin"}, "X-Auth-Scopes": {"admin"}}
	}
	withOrg := mint(t, iss, map[string]any{"scope": "api", "org": map[string]any{"id": "org_42"}})
	// Every allow also names the headers an upstream may read as the
	// request's host or path: Envoy passes a client's copies on.
	const route = "X-Forwarded-Host, Forwarded, X-Original-URL, X-Rewrite-URL, " +
		"X-Original-URI, X-Original-Method, X-Forwarded-Uri, X-Forwarded-Method, DPoP"
	tests := []struct {
		name   string
		req    request
		status int
		remove []string // nil: no X-Envoy-Auth-Headers-To-Remove
	}{
		{"every identity header set", request{path: "/auth", token: withOrg, header: orig("/x")}, 200, []string{route}},
		{"a configured claim absent", request{path: "/auth", token: withScope(t, iss, "api"), header: orig("/x")},
			200, []string{"X-Auth-Org, " + route}},
		{"public route, no token", request{path: "/auth", header: orig("/public/x")},
			200, []string{"X-Auth-Subject, X-Auth-Org, X-Auth-Scopes, " + route}},
		{"public route, valid token", request{path: "/auth", token: withOrg, header: orig("/public/x")},
			200, []string{"X-Auth-Subject, X-Auth-Org, X-Auth-Scopes, " + route}},
		{"refused", request{path: "/auth", header: orig("/x")}, 401, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, srv, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tc.status, body)
			}
			got := resp.Header.Values("X-Envoy-Auth-Headers-To-Remove")
			if !slices.Equal(got, tc.remove) {
				t.Errorf("X-Envoy-Auth-Headers-To-Remove %q, want %q", got, tc.remove)
			}
			// What the answer sets and what it removes cover every
			// identity header: none is left for the client's copy.
			if tc.status == 200 {
				removed := strings.Join(got, ",")
				for _, h := range []string{"X-Auth-Subject", "X-Auth-Org", "X-Auth-Scopes"} {
					if (resp.Header.Get(h) != "") == strings.Contains(removed, h) {
						t.Errorf("%s: set %q, removed %v; want exactly one of the two", h, resp.Header.Get(h), strings.Contains(removed, h))
					}
				}
			}
		})
	}
}

// TestForwardAuthNormalizationContract (issue 9, findings 1 and 2): the
// proxy's contract applies to the original request a gateway asks about, from
// every header family, and to the client's headers the gateway passes on.
func TestForwardAuthNormalizationContract(t *testing.T) {
	iss := newIssuer(t)
	srv := startForwardAuth(t, contractConfig(t, iss, contractRules))
	readUsers, admin := withScope(t, iss, "read:users"), withScope(t, iss, "admin")
	traefik := func(method, uri string, more ...string) http.Header {
		h := http.Header{"X-Forwarded-Method": {method}, "X-Forwarded-Uri": {uri}}
		for i := 0; i+1 < len(more); i += 2 {
			h[more[i]] = append(h[more[i]], more[i+1])
		}
		return h
	}
	nginx := func(method, uri string) http.Header {
		return http.Header{"X-Original-Method": {method}, "X-Original-Uri": {uri}}
	}
	ingress := func(method, url string) http.Header {
		return http.Header{"X-Original-Method": {method}, "X-Original-Url": {url}}
	}
	tests := []struct {
		name   string
		header http.Header
		token  string
		want   int
	}{
		{"..; escapes a public subtree (Traefik)", traefik("GET", "/static/..;/admin/users"), "", 400},
		{"..; escapes a public subtree (NGINX)", nginx("GET", "/static/..;/admin/users"), "", 400},
		{"..; escapes a public subtree (ingress-nginx)", ingress("GET", "http://api.example.com/static/..;/admin/users"), "", 400},
		{"..;jsessionid", traefik("GET", "/static/..;jsessionid=x/admin/users"), "", 400},
		{"; hides a segment", nginx("GET", "/admin;x/users"), readUsers, 400},
		{"%3B", traefik("GET", "/admin%3Bx/users"), readUsers, 400},
		{"lower-case method", traefik("delete", "/api/users/5"), readUsers, 400},
		{"methods differing in case", http.Header{"X-Forwarded-Method": {"DELETE"}, "X-Original-Method": {"delete"},
			"X-Forwarded-Uri": {"/api/users/5"}}, admin, 400},
		{"method override", traefik("POST", "/api/users/5", "X-Http-Method-Override", "DELETE"), readUsers, 400},
		{"method override with _ for -", traefik("POST", "/api/users/5", "X_http_method_override", "DELETE"), readUsers, 400},
		{"_method query", traefik("POST", "/api/users/5?_method=DELETE"), readUsers, 400},
		{"fragment", traefik("GET", "/api/users/5#/x"), admin, 400},
		{"fragment in X-Original-URL", ingress("GET", "http://api.example.com/api/users/5#/x"), admin, 400},
		{"POST of a form: every method's rules", traefik("POST", "/api/users/5", "Content-Type", "application/x-www-form-urlencoded"), readUsers, 403},
		{"POST of JSON", traefik("POST", "/api/users/5", "Content-Type", "application/json"), readUsers, 200},
		// Rack parses a POST without a Content-Type as a form, and the
		// gateway sends neither the body nor (NGINX's recipe) its length.
		{"POST without a Content-Type: every method's rules", traefik("POST", "/api/users/5"), readUsers, 403},
		{"trailing slash: DELETE's scope", traefik("DELETE", "/api/users/5/"), readUsers, 403},
		{"trailing slash, admin", traefik("DELETE", "/api/users/5/"), admin, 200},
		{"upper-case path", nginx("GET", "/ADMIN/users"), readUsers, 403},
		{"upper-case path, absolute form", ingress("DELETE", "http://api.example.com/API/USERS/5"), readUsers, 403},
		{"public", traefik("GET", "/static/x"), "", 200},
		{"its scope", nginx("GET", "/api/users/5"), readUsers, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, srv, request{path: "/auth", token: tc.token, header: tc.header})
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tc.want, body)
			}
			if tc.want == http.StatusBadRequest {
				wantChallenge(t, resp, `error="invalid_request"`)
			}
		})
	}
}

// FuzzForwardAuthContract: whatever original method, URI and extra header a
// client makes a gateway ask about, a request without a token is allowed only
// if an upstream that reads paths loosely (drops ";params" and a fragment,
// resolves dot segments, ignores case, honours method overrides) would serve
// the public GET /static/ subtree, and the answer is never other than 200,
// 400, 401 or 403.
func FuzzForwardAuthContract(f *testing.F) {
	iss := newIssuer(f)
	fa, err := proxy.NewForwardAuth(contractConfig(f, iss, contractRules))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][4]string{
		{"GET", "/static/x", "", ""},
		{"GET", "/static/..;/admin/users", "", ""},
		{"GET", "/static/..;jsessionid=x/admin/users", "", ""},
		{"GET", "/static/%2e%2e/admin", "", ""},
		{"get", "/static/x", "", ""},
		{"GET", "/STATIC/x", "", ""},
		{"GET", "/static/x#/../../admin", "", ""},
		{"GET", "/static/x?_method=DELETE", "", ""},
		{"GET", "/static/x", "X_HTTP_Method_Override", "DELETE"},
		{"POST", "/static/x", "Content-Type", "application/x-www-form-urlencoded"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, method, uri, name, value string) {
		req := httptest.NewRequest("GET", "/auth", nil)
		req.Header["X-Forwarded-Method"] = []string{method}
		req.Header["X-Forwarded-Uri"] = []string{uri}
		if name != "" {
			req.Header[name] = []string{value}
		}
		rec := httptest.NewRecorder()
		fa.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
			return
		case http.StatusOK:
		default:
			t.Fatalf("%s %q (%s: %q): status %d", method, uri, name, value, rec.Code)
		}
		if method != "GET" && method != "HEAD" {
			t.Fatalf("%s %q allowed without a token: only GET /static/ is public", method, uri)
		}
		if alias := strings.ToLower(strings.ReplaceAll(name, "_", "-")); alias == "x-http-method-override" ||
			alias == "x-http-method" || alias == "x-method-override" {
			t.Fatalf("%s %q allowed with %s: %q", method, uri, name, value)
		}
		if p := looseUpstreamPath(uri); !strings.HasPrefix(p, "/static/") {
			t.Fatalf("%s %q allowed without a token, but a loose upstream serves %q", method, uri, p)
		}
		_, query, _ := strings.Cut(uri, "?")
		for pair := range strings.FieldsFuncSeq(query, func(r rune) bool { return r == '&' || r == ';' }) {
			key, _, _ := strings.Cut(pair, "=")
			if d, err := url.QueryUnescape(key); err == nil {
				key = d
			}
			key, _, _ = strings.Cut(strings.NewReplacer(".", "_", " ", "_").Replace(strings.ToLower(key)), "[")
			if key == "_method" {
				t.Fatalf("%s %q allowed with a _method parameter", method, uri)
			}
		}
	})
}

// looseUpstreamPath reads a request target as the loosest of the upstreams
// the contract names would: without query or fragment, decoded, without
// ";params", in lower case, with dot and empty segments resolved.
func looseUpstreamPath(target string) string {
	p, _, _ := strings.Cut(target, "#")
	p, _, _ = strings.Cut(p, "?")
	if d, err := url.PathUnescape(p); err == nil {
		p = d
	}
	var out []string
	for seg := range strings.SplitSeq(strings.ReplaceAll(strings.ToLower(p), `\`, "/"), "/") {
		seg, _, _ = strings.Cut(seg, ";")
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	return "/" + strings.Join(out, "/") + map[bool]string{true: "/"}[strings.HasSuffix(p, "/") && len(out) > 0]
}

// withJSON marks h's request as a JSON one: a POST with no Content-Type may be
// a form, whose _method field would make it any method.
func withJSON(h http.Header) http.Header {
	h.Set("Content-Type", "application/json")
	return h
}
