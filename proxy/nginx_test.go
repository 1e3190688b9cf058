package proxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/nginxtest"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
)

// nginxConfig is the forward-auth recipe the README shows; this test runs it.
const nginxConfig = "testdata/nginx-forward-auth.conf"

// TestNGINXForwardAuth runs the documented NGINX configuration against
// tokenward's forward-auth handler and a test API.
func TestNGINXForwardAuth(t *testing.T) {
	bin := nginxtest.Require(t)
	conf, err := os.ReadFile(nginxConfig)
	if err != nil {
		t.Fatal(err)
	}

	// Tokens of iss verify; tokens of down name an issuer whose keys have
	// never loaded, for the 503.
	iss := newIssuer(t)
	down := newIssuer(t)
	down.SetDown(true)
	downKeys, err := jwks.NewRemote(down.JWKSURL(), jwks.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(downKeys.Close)
	v, err := middleware.NewValidator([]middleware.Issuer{
		{URL: iss.URL(), Keys: staticKeys(t, iss)},
		{URL: down.URL(), Keys: downKeys},
	}, []string{audience}, middleware.ValidatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	auth := startForwardAuth(t, proxy.Config{
		Validator:    v,
		Rules:        mustRules(t, testRules),
		ClaimHeaders: []proxy.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}},
	})
	up := newUpstream(t)
	vars := nginxtest.Vars{Tokenward: hostOf(auth), API: hostOf(up.Server)}

	spoofed := http.Header{"X-Auth-Subject": {"auth0|admin"}, "X_Auth_Subject": {"auth0|admin"}}
	tok := func(scope string) string { return withScope(t, iss, scope) }
	downToken := mint(t, down, map[string]any{"scope": "api"})

	t.Run("recipe", func(t *testing.T) {
		ngx := nginxtest.Start(t, bin, string(conf), vars)
		tests := []struct {
			name        string
			req         request
			raw         string // a raw request line target instead of req
			want        int
			wantSubject string // what the upstream sees; "" for no X-Auth-Subject
			wantHeader  map[string]string
			// upstreamHeader: what the upstream sees of these headers; ""
			// for none.
			upstreamHeader map[string]string
		}{
			// Upstreams behind a proxy may read X-Forwarded-Host as the
			// request's host (Werkzeug's ProxyFix, Django, Express) and
			// X-Original-URL or X-Rewrite-URL as its path: the upstream
			// must see the host tokenward judged, and no client copy.
			{name: "client's host and URL headers do not reach the upstream", want: 200,
				req: request{host: "www.example.com", path: "/public/x", header: http.Header{
					"X-Forwarded-Host": {"admin.example.com"}, "Forwarded": {"host=admin.example.com"},
					"X-Original-Url": {"/admin/users"}, "X-Rewrite-Url": {"/admin/users"}}},
				upstreamHeader: map[string]string{"X-Forwarded-Host": "www.example.com", "Forwarded": "",
					"X-Original-Url": "", "X-Rewrite-Url": ""}},
			{name: "valid token", want: 200, wantSubject: "auth0|test-user",
				req: request{path: "/api/contacts/1", token: tok("api read:contacts")}},
			{name: "valid token, spoofed subject overwritten", want: 200, wantSubject: "auth0|test-user",
				req: request{path: "/api/contacts/1", token: tok("api read:contacts"), header: spoofed}},
			{name: "public route, spoofed subject removed", want: 200,
				req: request{path: "/public/x", header: spoofed}},
			{name: "public route with a token: no identity", want: 200,
				req: request{path: "/public/x", token: tok("api"), header: spoofed}},
			{name: "token without the claim: spoofed subject removed", want: 200,
				req: request{path: "/x", token: mint(t, iss, map[string]any{"scope": "api", "sub": nil}), header: spoofed}},
			{name: "no token", want: 401,
				req:        request{path: "/api/contacts/"},
				wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="api"`}},
			{name: "bad token", want: 401,
				req:        request{path: "/api/contacts/", token: "a.b.c"},
				wantHeader: map[string]string{"WWW-Authenticate": `error="invalid_token"`}},
			{name: "insufficient scope", want: 403,
				req:        request{path: "/api/contacts/", token: tok("api")},
				wantHeader: map[string]string{"WWW-Authenticate": `error="insufficient_scope", error_description="insufficient scope", scope="api read:contacts"`}},
			{name: "original method judged", want: 403,
				req: request{method: "POST", path: "/api/contacts/", token: tok("api read:contacts"),
					header: withJSON(http.Header{})},
				wantHeader: map[string]string{"WWW-Authenticate": `scope="api admin write:contacts"`}},
			{name: "malformed Authorization (400)", want: 400,
				req:        request{path: "/x", header: http.Header{"Authorization": {"Bearer a b"}}},
				wantHeader: map[string]string{"WWW-Authenticate": `error="invalid_request"`}},
			{name: "non-canonical URI (400)", want: 400, raw: "/public/../api/contacts/"},
			{name: "issuer keys unavailable (503)", want: 503,
				req:        request{path: "/x", token: downToken},
				wantHeader: map[string]string{"Retry-After": middleware.RetryAfterSeconds}},
			{name: "the auth location is internal", want: 404, req: request{path: "/_tokenward"}},
			// NGINX sends the client's headers to tokenward too: a client
			// naming a public URI in X-Forwarded-* must not get its real
			// request judged by it.
			{name: "client-sent X-Forwarded-Uri", want: 401, req: request{path: "/api/contacts/",
				header: http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/public/x"}}}},
			{name: "client-sent X-Forwarded-Uri with a token", want: 403, req: request{path: "/api/contacts/", token: tok("api"),
				header: http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/elsewhere"}}}},
			{name: "client-sent X-Original-URL", want: 401, req: request{path: "/api/contacts/",
				header: http.Header{"X-Original-Url": {"http://api.example.com/public/x"}}}},
			{name: "client-sent X-Forwarded-Host", want: 403, req: request{host: "admin.example.com", path: "/x", token: tok("api"),
				header: http.Header{"X-Forwarded-Host": {"www.example.com"}}}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var resp *http.Response
				var body string
				if tc.raw != "" {
					resp, body = rawRequest(t, strings.TrimPrefix(ngx.URL, "http://"),
						"GET "+tc.raw+" HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
				} else {
					resp, body = doAt(t, ngx.Client, ngx.URL, tc.req)
				}
				if resp.StatusCode != tc.want {
					t.Fatalf("status %d, want %d (body %.200s)", resp.StatusCode, tc.want, body)
				}
				for h, want := range tc.wantHeader {
					got := resp.Header.Values(h)
					if len(got) != 1 || !strings.Contains(got[0], want) {
						t.Errorf("%s = %q, want one value containing %q", h, got, want)
					}
				}
				if tc.want != 200 {
					up.none(t)
					return
				}
				s := up.last(t)
				if body != "upstream" {
					t.Errorf("body %q, want the upstream's", body)
				}
				var subjects []string
				for k, vs := range s.header {
					if http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-")) == "X-Auth-Subject" {
						subjects = append(subjects, fmt.Sprintf("%s: %q", k, vs))
					}
				}
				want := []string(nil)
				if tc.wantSubject != "" {
					want = []string{fmt.Sprintf("X-Auth-Subject: %q", []string{tc.wantSubject})}
				}
				if fmt.Sprint(subjects) != fmt.Sprint(want) {
					t.Errorf("upstream got %v, want %v", subjects, want)
				}
				for h, want := range tc.upstreamHeader {
					if got := s.header.Values(h); want == "" && len(got) != 0 || want != "" && (len(got) != 1 || got[0] != want) {
						t.Errorf("upstream got %s %q, want %q", h, got, want)
					}
				}
			})
		}
	})

	// Without @tokenward_error, NGINX answers 500 for tokenward's 400 and
	// 503: auth_request accepts only 2xx, 401 and 403.
	t.Run("without the error mapping", func(t *testing.T) {
		const mapping = "error_page 500 = @tokenward_error;"
		if !bytes.Contains(conf, []byte(mapping)) {
			t.Fatalf("%s no longer contains %q", nginxConfig, mapping)
		}
		ngx := nginxtest.Start(t, bin, strings.Replace(string(conf), mapping, "", 1), vars)
		for _, req := range []request{
			{path: "/x", header: http.Header{"Authorization": {"Bearer a b"}}}, // tokenward: 400
			{path: "/x", token: downToken},                                     // tokenward: 503
		} {
			resp, body := doAt(t, ngx.Client, ngx.URL, req)
			if resp.StatusCode != http.StatusInternalServerError {
				t.Errorf("status %d, want NGINX's 500 (body %.200s)", resp.StatusCode, body)
			}
			if resp.Header.Get("Retry-After") != "" {
				t.Errorf("Retry-After %q passed without the mapping", resp.Header.Get("Retry-After"))
			}
			up.none(t)
		}
		log, _ := os.ReadFile(filepath.Join(ngx.Dir, "error.log"))
		if !bytes.Contains(log, []byte("auth request unexpected status: 400")) ||
			!bytes.Contains(log, []byte("auth request unexpected status: 503")) {
			t.Errorf("error.log does not record the unexpected statuses:\n%s", log)
		}
	})

	// tokenward unreachable: NGINX answers 500, the request does not pass.
	t.Run("tokenward unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gone := ln.Addr().String()
		ln.Close()
		ngx := nginxtest.Start(t, bin, string(conf), nginxtest.Vars{Tokenward: gone, API: hostOf(up.Server)})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", ngx.URL+"/public/x", nil)
		resp, err := ngx.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("status %d, want 500", resp.StatusCode)
		}
		up.none(t)
	})
}

// nginxClientCertConfig is the certificate-bound-token recipe the README
// shows; TestNGINXClientCert runs it.
const nginxClientCertConfig = "testdata/nginx-client-cert.conf"

// TestNGINXClientCert: behind a real NGINX that terminates TLS and passes
// $ssl_client_escaped_cert on as X-Forwarded-Client-Cert Cert=, a
// certificate-bound token passes with its certificate only, whatever
// certificate headers the client adds, and the API never sees them.
func TestNGINXClientCert(t *testing.T) {
	bin := nginxtest.Require(t)
	conf, err := os.ReadFile(nginxClientCertConfig)
	if err != nil {
		t.Fatal(err)
	}
	tlsDir := t.TempDir()
	ca := newTestCA(t)
	server := ca.issue(t, "localhost", x509.ExtKeyUsageServerAuth)
	writePEM(t, filepath.Join(tlsDir, "server.pem"), "CERTIFICATE", server.Cert.Raw)
	writePEM(t, filepath.Join(tlsDir, "server-key.pem"), "PRIVATE KEY", server.keyDER)
	writePEM(t, filepath.Join(tlsDir, "client-ca.pem"), "CERTIFICATE", ca.cert.Raw)
	alice := ca.issue(t, "alice", x509.ExtKeyUsageClientAuth)
	mallory := ca.issue(t, "mallory", x509.ExtKeyUsageClientAuth)

	iss := newIssuer(t)
	bound := mint(t, iss, map[string]any{"scope": "api read:contacts", "cnf": map[string]any{"x5t#S256": alice.X5T()}})
	plain := withScope(t, iss, "api read:contacts")
	up := newUpstream(t)
	cfg := defaultConfig(t, iss)
	cfg.TrustedProxies = []string{"127.0.0.1", "::1"} // NGINX
	tw := startProxy(t, up.URL, cfg, proxy.UpstreamOptions{})

	ngx := nginxtest.Start(t, bin, strings.ReplaceAll(string(conf), "/etc/nginx/tls/", tlsDir+"/"),
		nginxtest.Vars{Tokenward: hostOf(tw)})
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	base := strings.Replace(ngx.URL, "http://", "https://", 1)
	for _, tc := range []struct {
		name   string
		cert   *issued
		token  string
		header http.Header
		want   int
	}{
		{"its certificate", &alice, bound, nil, 200},
		{"another certificate", &mallory, bound, nil, 401},
		{"no certificate", nil, bound, nil, 401},
		{"no certificate, asserted in headers", nil, bound, http.Header{"Client-Cert": {alice.ClientCertHeader()},
			"X-Forwarded-Client-Cert": {alice.XFCCHash()}}, 401},
		{"another certificate, its own asserted", &mallory, bound, http.Header{"Client-Cert": {alice.ClientCertHeader()}}, 401},
		{"bearer token, no certificate", nil, plain, nil, 200},
		{"bearer token, a certificate", &mallory, plain, nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}
			if tc.cert != nil {
				tr.TLSClientConfig.Certificates = []tls.Certificate{tc.cert.TLS}
			}
			defer tr.CloseIdleConnections()
			resp, body := doAt(t, &http.Client{Transport: tr}, base, request{path: "/api/contacts/1", token: tc.token, header: tc.header})
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.want)
			}
			if tc.want != 200 {
				up.none(t)
				return
			}
			for k := range up.last(t).header {
				if strings.Contains(strings.ToLower(k), "cert") {
					t.Errorf("the API received %s", k)
				}
			}
		})
	}

	// A TLS client we did not write: curl --cert/--key.
	t.Run("curl", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("curl is not on PATH; CI must install it (apt-get install -y curl)")
			}
			t.Skip("curl is not on PATH (apt-get install -y curl)")
		}
		dir := t.TempDir()
		writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.cert.Raw)
		for name, c := range map[string]issued{"alice": alice, "mallory": mallory} {
			writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", c.Cert.Raw)
			writePEM(t, filepath.Join(dir, name+"-key.pem"), "PRIVATE KEY", c.keyDER)
		}
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(ngx.URL, "http://"))
		for _, tc := range []struct {
			cert string // "" for none
			want string
		}{{"alice", "200"}, {"mallory", "401"}, {"", "401"}} {
			args := []string{"-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", filepath.Join(dir, "ca.pem"),
				"--resolve", "localhost:" + port + ":127.0.0.1", "-H", "Authorization: Bearer " + bound}
			if tc.cert != "" {
				args = append(args, "--cert", filepath.Join(dir, tc.cert+".pem"), "--key", filepath.Join(dir, tc.cert+"-key.pem"))
			}
			out, err := exec.Command(curl, append(args, "https://localhost:"+port+"/api/contacts/1")...).CombinedOutput()
			if err != nil || string(out) != tc.want {
				t.Errorf("curl with certificate %q: %s (%v), want %s", tc.cert, out, err, tc.want)
			}
			if tc.want == "200" {
				up.last(t)
			} else {
				up.none(t)
			}
		}
	})
}
