package proxy_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/processtest"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
)

// caddyConfig is the forward_auth recipe the README shows; this test runs it.
const caddyConfig = "testdata/caddy-forward-auth.Caddyfile"

// caddyHarness goes before the recipe: no admin API (no fixed port), no
// automatic HTTPS (no certificates, no listener on :443), loopback only.
const caddyHarness = `{
	admin off
	auto_https off
	default_bind 127.0.0.1
}

`

// requireCaddy returns the caddy binary, skipping the test when there is none
// locally and failing in CI, where it is installed with apt-get.
func requireCaddy(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("caddy")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("caddy is not on PATH; CI must install it (apt-get install -y caddy)")
		}
		t.Skip("caddy is not on PATH (apt-get install -y caddy)")
	}
	return path
}

// caddyServer is a Caddy running in the foreground for one test.
type caddyServer struct {
	url    string
	addr   string
	client *http.Client
}

// startCaddy runs caddy with the harness and recipe until the test ends, the
// recipe's environment variables pointing at tokenward and api, and waits
// until it accepts connections.
func startCaddy(t *testing.T, bin, recipe, tokenward, api string) *caddyServer {
	t.Helper()
	dir := t.TempDir()
	addr := processtest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)

	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(caddyHarness+recipe), 0o600); err != nil {
		t.Fatal(err)
	}
	// Caddy keeps its state (autosave.json, instance id) under HOME and the
	// XDG directories: the test's own.
	env := append(os.Environ(),
		"HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir,
		// Any host, this port: the test sends other Host headers.
		"SITE=http://:"+port, "TOKENWARD="+tokenward, "API="+api)
	args := []string{"--config", conf, "--adapter", "caddyfile"}
	validate := exec.Command(bin, append([]string{"validate"}, args...)...)
	validate.Env = env
	if out, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("caddy validate rejects the configuration: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, append([]string{"run"}, args...)...)
	cmd.Env = env
	// Without the admin API Caddy gives no readiness signal.
	processtest.Serve(t, "caddy", cmd, addr, nil)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &caddyServer{url: "http://" + addr, addr: addr, client: &http.Client{Transport: tr}}
}

// subjects lists the upstream's headers that an upstream folding "_" into
// "-" would read as X-Auth-Subject.
func subjects(h http.Header) []string {
	var out []string
	for k, vs := range h {
		if http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-")) == "X-Auth-Subject" {
			out = append(out, fmt.Sprintf("%s: %q", k, vs))
		}
	}
	return out
}

// TestCaddyForwardAuth runs the documented Caddyfile against tokenward's
// forward-auth handler and a test API.
func TestCaddyForwardAuth(t *testing.T) {
	bin := requireCaddy(t)
	recipe, err := os.ReadFile(caddyConfig)
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

	spoofed := func() http.Header {
		return http.Header{"X-Auth-Subject": {"auth0|admin"}, "X_Auth_Subject": {"auth0|admin"},
			"X-Auth_subject": {"auth0|admin"}}
	}
	tok := func(scope string) string { return withScope(t, iss, scope) }
	noSub := mint(t, iss, map[string]any{"scope": "api", "sub": nil})
	downToken := mint(t, down, map[string]any{"scope": "api"})

	t.Run("recipe", func(t *testing.T) {
		cdy := startCaddy(t, bin, string(recipe), hostOf(auth), hostOf(up.Server))
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
			{name: "valid token", want: 200, wantSubject: "auth0|test-user",
				req: request{path: "/api/contacts/1", token: tok("api read:contacts")}},
			// Upstreams behind a proxy may read X-Forwarded-Host or
			// Forwarded as the request's host (Werkzeug's ProxyFix) and
			// X-Original-URL or X-Rewrite-URL as its path.
			{name: "client's host and URL headers do not reach the upstream", want: 200,
				req: request{host: "www.example.com", path: "/public/x", header: http.Header{
					"X-Forwarded-Host": {"admin.example.com"}, "Forwarded": {"host=admin.example.com"},
					"X-Original-Url": {"/admin/users"}, "X-Rewrite-Url": {"/admin/users"}}},
				upstreamHeader: map[string]string{"X-Forwarded-Host": "www.example.com", "Forwarded": "",
					"X-Original-Url": "", "X-Rewrite-Url": ""}},
			{name: "valid token, spoofed subject overwritten", want: 200, wantSubject: "auth0|test-user",
				req: request{path: "/api/contacts/1", token: tok("api read:contacts"), header: spoofed()}},
			{name: "public route, spoofed subject removed", want: 200,
				req: request{path: "/public/x", header: spoofed()}},
			{name: "public route with a token: no identity", want: 200,
				req: request{path: "/public/x", token: tok("api"), header: spoofed()}},
			{name: "token without the claim: spoofed subject removed", want: 200,
				req: request{path: "/x", token: noSub, header: spoofed()}},
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
			{name: "host judged", want: 403,
				req:        request{host: "admin.example.com", path: "/x", token: tok("api")},
				wantHeader: map[string]string{"WWW-Authenticate": `scope="admin api"`}},
			{name: "malformed Authorization (400)", want: 400,
				req:        request{path: "/x", header: http.Header{"Authorization": {"Bearer a b"}}},
				wantHeader: map[string]string{"WWW-Authenticate": `error="invalid_request"`}},
			{name: "path parameter with dot segment (400)", want: 400, raw: "/static/..;/admin/users"},
			{name: "dot segment (400)", want: 400, raw: "/public/../api/contacts/"},
			{name: "issuer keys unavailable (503)", want: 503,
				req:        request{path: "/x", token: downToken},
				wantHeader: map[string]string{"Retry-After": middleware.RetryAfterSeconds}},
			// Caddy sends the client's headers to tokenward too: a client
			// naming a public URI in them must not get its real request
			// judged by it.
			{name: "client-sent X-Forwarded-Uri", want: 401, req: request{path: "/api/contacts/",
				header: http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/public/x"}}}},
			{name: "client-sent X-Original-URI", want: 401, req: request{path: "/api/contacts/",
				header: http.Header{"X-Original-Method": {"GET"}, "X-Original-Uri": {"/public/x"}}}},
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
					resp, body = rawRequest(t, cdy.addr,
						"GET "+tc.raw+" HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
				} else {
					resp, body = doAt(t, cdy.client, cdy.url, tc.req)
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
				want := []string(nil)
				if tc.wantSubject != "" {
					want = []string{fmt.Sprintf("X-Auth-Subject: %q", []string{tc.wantSubject})}
				}
				if got := subjects(s.header); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("upstream got %v, want %v", got, want)
				}
				for h, want := range tc.upstreamHeader {
					if got := s.header.Values(h); want == "" && len(got) != 0 || want != "" && (len(got) != 1 || got[0] != want) {
						t.Errorf("upstream got %s %q, want %q", h, got, want)
					}
				}
			})
		}
	})

	// Why the recipe has its cleanup lines: without each, the upstream
	// gets an X-Auth-Subject tokenward did not send.
	t.Run("without the cleanup", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			remove []string // lines of the recipe left out
			header string   // a client's header
		}{
			// Caddy 2.6 sends "{http.reverse_proxy.header.X-Auth-Subject}".
			{"placeholder text", []string{
				"\t\t@unset header_regexp X-Auth-Subject ^\\{http\\.reverse_proxy\\.header\\.\n",
				"\t\trequest_header @unset -X-Auth-Subject\n"}, "X-Auth-Subject"},
			{"underscores", []string{"\t\trequest_header -*_*\n"}, "X_Auth_Subject"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				conf := string(recipe)
				for _, line := range tc.remove {
					if !strings.Contains(conf, line) {
						t.Fatalf("%s no longer contains %q", caddyConfig, line)
					}
					conf = strings.Replace(conf, line, "", 1)
				}
				cdy := startCaddy(t, bin, conf, hostOf(auth), hostOf(up.Server))
				for _, req := range []request{
					{path: "/public/x", header: http.Header{tc.header: {"auth0|admin"}}},
					{path: "/x", token: noSub, header: http.Header{tc.header: {"auth0|admin"}}},
				} {
					resp, body := doAt(t, cdy.client, cdy.url, req)
					if resp.StatusCode != 200 {
						t.Fatalf("status %d, want 200 (body %.200s)", resp.StatusCode, body)
					}
					got := subjects(up.last(t).header)
					t.Logf("%s: the upstream got %v", req.path, got)
					if len(got) == 0 {
						t.Errorf("%s: the upstream got no X-Auth-Subject: this Caddy needs no such line", req.path)
					}
				}
			})
		}
	})

	// tokenward unreachable: Caddy answers 502, the request does not pass.
	t.Run("tokenward unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gone := ln.Addr().String()
		ln.Close()
		cdy := startCaddy(t, bin, string(recipe), gone, hostOf(up.Server))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", cdy.url+"/public/x", nil)
		resp, err := cdy.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("status %d, want 502", resp.StatusCode)
		}
		up.none(t)
	})
}
