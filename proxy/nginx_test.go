package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/tokenward/tokenward/internal/syncbuf"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
)

// nginxConfig is the forward-auth recipe the README shows; this test runs it.
const nginxConfig = "testdata/nginx-forward-auth.conf"

// requireNGINX returns the nginx binary, skipping the test when there is none
// locally and failing in CI, where it is installed with apt-get.
func requireNGINX(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("nginx")
	if err != nil {
		// Debian and Ubuntu install it in /usr/sbin, not on every user's PATH.
		path, err = exec.LookPath("/usr/sbin/nginx")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("nginx is not on PATH; CI must install it (apt-get install -y nginx)")
		}
		t.Skip("nginx is not on PATH (apt-get install -y nginx)")
	}
	out, err := exec.Command(path, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -V: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("http_auth_request_module")) {
		t.Fatalf("%s was built without http_auth_request_module, which forward-auth needs; nginx -V says:\n%s", path, out)
	}
	return path
}

// nginxVars fill the template.
type nginxVars struct {
	Listen, Tokenward, API, Dir string
}

// nginxServer is an NGINX running in the foreground for one test.
type nginxServer struct {
	url    string
	client *http.Client
	dir    string
}

// startNGINX runs nginx with conf (the template, rendered) until the test
// ends, and waits until it accepts connections.
func startNGINX(t *testing.T, bin, conf string, vars nginxVars) *nginxServer {
	t.Helper()
	dir := t.TempDir()
	// NGINX cannot be handed a listener: pick a free loopback port and
	// release it for NGINX to bind.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	vars.Listen = ln.Addr().String()
	ln.Close()
	vars.Dir = dir

	tmpl, err := template.New("nginx.conf").Option("missingkey=error").Parse(conf)
	if err != nil {
		t.Fatal(err)
	}
	var rendered bytes.Buffer
	if err := tmpl.Execute(&rendered, vars); err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, rendered.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	errorLog := filepath.Join(dir, "error.log")
	// -e (NGINX 1.19.5+) keeps NGINX from opening the default error log
	// before it reads the configuration; older versions only warn.
	args := []string{"-p", dir, "-e", errorLog, "-c", confPath}
	out, err := exec.Command(bin, append([]string{"-t", "-q"}, args...)...).CombinedOutput()
	if err != nil && bytes.Contains(out, []byte("invalid option")) {
		args = args[2:]
		out, err = exec.Command(bin, append([]string{"-t", "-q"}, args...)...).CombinedOutput()
	}
	if err != nil {
		t.Fatalf("nginx -t rejects the configuration: %v\n%s", err, out)
	}

	var output syncbuf.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // fast shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(errorLog)
			t.Logf("nginx output:\n%s\nerror.log:\n%s", output.String(), log)
		}
	})

	// NGINX gives no readiness signal: poll its port, bounded.
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := net.DialTimeout("tcp", vars.Listen, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(errorLog)
			t.Fatalf("nginx did not listen on %s within 10s: %v\n%s\n%s", vars.Listen, err, output.String(), log)
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(errorLog)
			t.Fatalf("nginx exited: %v\n%s\n%s", err, output.String(), log)
		case <-tick.C:
		}
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &nginxServer{url: "http://" + vars.Listen, client: &http.Client{Transport: tr}, dir: dir}
}

// TestNGINXForwardAuth runs the documented NGINX configuration against
// tokenward's forward-auth handler and a test API.
func TestNGINXForwardAuth(t *testing.T) {
	bin := requireNGINX(t)
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
	vars := nginxVars{Tokenward: hostOf(auth), API: hostOf(up.Server)}

	spoofed := http.Header{"X-Auth-Subject": {"auth0|admin"}, "X_Auth_Subject": {"auth0|admin"}}
	tok := func(scope string) string { return withScope(t, iss, scope) }
	downToken := mint(t, down, map[string]any{"scope": "api"})

	t.Run("recipe", func(t *testing.T) {
		ngx := startNGINX(t, bin, string(conf), vars)
		tests := []struct {
			name        string
			req         request
			raw         string // a raw request line target instead of req
			want        int
			wantSubject string // what the upstream sees; "" for no X-Auth-Subject
			wantHeader  map[string]string
		}{
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
					resp, body = rawRequest(t, strings.TrimPrefix(ngx.url, "http://"),
						"GET "+tc.raw+" HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
				} else {
					resp, body = doAt(t, ngx.client, ngx.url, tc.req)
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
		ngx := startNGINX(t, bin, strings.Replace(string(conf), mapping, "", 1), vars)
		for _, req := range []request{
			{path: "/x", header: http.Header{"Authorization": {"Bearer a b"}}}, // tokenward: 400
			{path: "/x", token: downToken},                                     // tokenward: 503
		} {
			resp, body := doAt(t, ngx.client, ngx.url, req)
			if resp.StatusCode != http.StatusInternalServerError {
				t.Errorf("status %d, want NGINX's 500 (body %.200s)", resp.StatusCode, body)
			}
			if resp.Header.Get("Retry-After") != "" {
				t.Errorf("Retry-After %q passed without the mapping", resp.Header.Get("Retry-After"))
			}
			up.none(t)
		}
		log, _ := os.ReadFile(filepath.Join(ngx.dir, "error.log"))
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
		ngx := startNGINX(t, bin, string(conf), nginxVars{Tokenward: gone, API: hostOf(up.Server)})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", ngx.url+"/public/x", nil)
		resp, err := ngx.client.Do(req)
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
