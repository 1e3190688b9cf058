package proxy_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
	"github.com/tokenward/tokenward/scopes"
)

// TestProxyRoutes sends requests through the proxy and checks who gets
// through: the most specific rule wins, methods and hosts count, requests
// matching no rule need a valid token and the global scopes, and public
// routes need nothing and ignore whatever token comes.
func TestProxyRoutes(t *testing.T) {
	iss := newIssuer(t)
	up := newUpstream(t)
	srv := startProxy(t, up.URL, defaultConfig(t, iss), proxy.UpstreamOptions{})
	tok := func(scope string) string { return withScope(t, iss, scope) }
	const bad = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln" // well-formed, not verifiable

	tests := []struct {
		name      string
		req       request
		want      int
		wantScope string // for 403: the scope attribute of the challenge
	}{
		{"rule scopes granted", request{path: "/api/contacts/", token: tok("api read:contacts")}, 200, ""},
		{"rule scopes missing", request{path: "/api/contacts/1", token: tok("api")}, 403, "api read:contacts"},
		{"global scope missing on a rule", request{path: "/api/contacts/1", token: tok("read:contacts")}, 403, "api read:contacts"},
		{"more specific wins: its scopes suffice", request{path: "/api/contacts/7/notes", token: tok("api read:notes")}, 200, ""},
		{"more specific wins: the parent's do not", request{path: "/api/contacts/7/notes", token: tok("api read:contacts")}, 403, "api read:notes"},
		{"HEAD matches a GET pattern", request{method: "HEAD", path: "/api/contacts/", token: tok("api")}, 403, "api read:contacts"},
		{"any_scopes: one of them", request{method: "POST", path: "/api/contacts/", token: tok("api admin")}, 200, ""},
		{"any_scopes: the other", request{method: "POST", path: "/api/contacts/", token: tok("api write:contacts")}, 200, ""},
		{"any_scopes: none", request{method: "POST", path: "/api/contacts/", token: tok("api read:contacts")}, 403, "api admin write:contacts"},
		{"method pattern", request{method: "DELETE", path: "/api/contacts/1", token: tok("api read:contacts")}, 403, "admin api"},
		{"method without a rule falls back", request{method: "PUT", path: "/api/contacts/1", token: tok("api")}, 200, ""},
		{"{rest...}", request{path: "/files/a/b/c.txt", token: tok("api read:files")}, 200, ""},
		{"{rest...} scopes missing", request{path: "/files/a/b/c.txt", token: tok("api")}, 403, "api read:files"},
		{"subtree without its slash", request{path: "/api/contacts", token: tok("api")}, 403, "api read:contacts"},
		{"host pattern", request{host: "admin.example.com", path: "/anything", token: tok("api")}, 403, "admin api"},
		{"host pattern granted", request{host: "admin.example.com", path: "/anything", token: tok("api admin")}, 200, ""},
		{"host pattern beats a public path", request{host: "admin.example.com", path: "/public/x"}, 401, ""},
		{"unmatched: valid token and global scope", request{path: "/elsewhere", token: tok("api")}, 200, ""},
		{"unmatched: no global scope", request{path: "/elsewhere", token: tok("")}, 403, "api"},
		{"unmatched: no token", request{path: "/elsewhere"}, 401, ""},
		{"unmatched: bad token", request{path: "/elsewhere", token: bad}, 401, ""},
		{"public: no token", request{path: "/public/x"}, 200, ""},
		{"public: bad token ignored", request{path: "/public/x", token: bad}, 200, ""},
		{"public: malformed Authorization ignored", request{path: "/public/x",
			header: http.Header{"Authorization": {"Bearer a b"}}}, 200, ""},
		{"public: exact path", request{path: "/status"}, 200, ""},
		{"public exact path is not a subtree", request{path: "/status/x"}, 401, ""},
		{"public is per method", request{method: "POST", path: "/public/x"}, 401, ""},
		{"public subtree does not open its parent", request{path: "/public"}, 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, srv, tc.req)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tc.want, body)
			}
			switch tc.want {
			case 200:
				s := up.last(t)
				if s.requestURI != tc.req.path {
					t.Errorf("upstream got %s, want %s", s.requestURI, tc.req.path)
				}
			case 401:
				up.none(t)
				wantChallenge(t, resp, `realm="api"`)
			case 403:
				up.none(t)
				wantChallenge(t, resp, `error="insufficient_scope"`, `scope="`+tc.wantScope+`"`)
				var e struct{ Error, Scope string }
				if tc.req.method == "HEAD" {
					break // no body
				}
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != "insufficient_scope" || e.Scope != tc.wantScope {
					t.Errorf("body %s, want insufficient_scope with scope %q", body, tc.wantScope)
				}
			}
		})
	}
}

// TestProxyKeysUnavailable: an issuer whose keys never loaded gets 503 with
// Retry-After, not 401.
func TestProxyKeysUnavailable(t *testing.T) {
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
	up := newUpstream(t)
	srv := startProxy(t, up.URL, proxy.Config{Validator: v, Rules: mustRules(t, testRules)}, proxy.UpstreamOptions{})
	resp, body := do(t, srv, request{path: "/elsewhere", token: withScope(t, iss, "api")})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("status %d Retry-After %q (body %s), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	up.none(t)
}

// TestIdentityHeaders: client-sent identity headers never reach the
// upstream; on success they are set from the verified claims only.
func TestIdentityHeaders(t *testing.T) {
	iss := newIssuer(t)
	up := newUpstream(t)
	claimHeaders, err := proxy.ParseClaimHeaders("sub=X-Auth-Subject, https://example.com/roles=X-Auth-Roles, " +
		"org.id=X-Auth-Org, missing=X-Auth-Missing, note=X-Auth-Note, email_verified=X-Auth-Verified, " +
		"org=X-Auth-Org-Json")
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig(t, iss)
	cfg.ClaimHeaders = claimHeaders
	cfg.ScopesHeader = "X-Auth-Scopes"
	srv := startProxy(t, up.URL, cfg, proxy.UpstreamOptions{})

	spoofed := http.Header{
		"X-Auth-Subject": {"auth0|admin", "second"},
		"X-Auth-Roles":   {"superuser"},
		"X-Auth-Missing": {"spoofed"},
		"X-Auth-Scopes":  {"admin"},
		// Spellings that CGI, WSGI, Rack and PHP read as X-Auth-Subject.
		"X_auth_subject": {"auth0|admin"},
		"X-Auth_Subject": {"auth0|admin"},
		"X_AUTH_SCOPES":  {"admin"},
	}
	identityHeaders := []string{"X-Auth-Subject", "X-Auth-Roles", "X-Auth-Org", "X-Auth-Missing", "X-Auth-Note",
		"X-Auth-Verified", "X-Auth-Org-Json", "X-Auth-Scopes"}

	full := mint(t, iss, map[string]any{
		"sub":                       "auth0|user-1",
		"scope":                     "api read:contacts",
		"https://example.com/roles": []any{"editor", "viewer"},
		"org":                       map[string]any{"id": "org_42", "name": "Northwind"},
		"note":                      "line one\r\nX-Injected: yes\nline three",
		"email_verified":            true,
	})
	crlfSubject := mint(t, iss, map[string]any{"sub": "auth0|evil\r\nX-Injected: yes", "scope": "api"})

	fullWant := map[string]string{
		"X-Auth-Subject":  "auth0|user-1",
		"X-Auth-Roles":    "editor,viewer",
		"X-Auth-Org":      "org_42",
		"X-Auth-Org-Json": `{"id":"org_42","name":"Northwind"}`,
		"X-Auth-Note":     "line one  X-Injected: yes line three",
		"X-Auth-Verified": "true",
		"X-Auth-Scopes":   "api read:contacts",
	}
	tests := []struct {
		name string
		req  request
		want map[string]string // identity header → value; absent from the map means absent
	}{
		{"protected route, every claim; absent claim, absent header", request{path: "/api/contacts/", token: full, header: spoofed}, fullWant},
		{"CR LF in the subject", request{path: "/elsewhere", token: crlfSubject},
			map[string]string{"X-Auth-Subject": "auth0|evil  X-Injected: yes", "X-Auth-Scopes": "api"}},
		{"public route, no token", request{path: "/public/x", header: spoofed}, nil},
		{"public route, valid token: no identity forwarded", request{path: "/public/x", token: full, header: spoofed}, nil},
		// A client naming our headers in Connection must not make the proxy
		// drop them as hop-by-hop after setting them.
		{"identity headers named in Connection", request{path: "/elsewhere", token: full,
			header: http.Header{"Connection": {"X-Auth-Subject, X-Auth-Scopes"}}}, fullWant},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, srv, tc.req)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d (%s), want 200", resp.StatusCode, body)
			}
			got := up.last(t).header
			// Every spelling of an identity header the upstream received,
			// by the name a CGI-style gateway reads it as.
			spellings := map[string][]string{}
			for k := range got {
				alias := http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))
				spellings[alias] = append(spellings[alias], k)
			}
			for _, h := range identityHeaders {
				want, wanted := tc.want[h]
				switch {
				case !wanted && len(spellings[h]) > 0:
					t.Errorf("upstream got %v (%s); want no %s", spellings[h], sprintHeader(got), h)
				case wanted && (len(spellings[h]) != 1 || len(got[h]) != 1 || got[h][0] != want):
					t.Errorf("upstream got %v, %s: %q; want %s: [%q] only", spellings[h], h, got[h], h, want)
				}
			}
			if v, ok := got["X-Injected"]; ok {
				t.Errorf("upstream got X-Injected: %q", v)
			}
			for h, vs := range got {
				for _, v := range vs {
					if strings.ContainsAny(v, "\r\n") {
						t.Errorf("upstream header %s has CR or LF: %q", h, v)
					}
				}
			}
		})
	}
}

func TestStripAuthorization(t *testing.T) {
	iss := newIssuer(t)
	for _, strip := range []bool{false, true} {
		t.Run(fmt.Sprint("strip=", strip), func(t *testing.T) {
			up := newUpstream(t)
			cfg := defaultConfig(t, iss)
			cfg.StripAuthorization = strip
			srv := startProxy(t, up.URL, cfg, proxy.UpstreamOptions{})
			token := withScope(t, iss, "api")
			if resp, body := do(t, srv, request{path: "/x", token: token}); resp.StatusCode != 200 {
				t.Fatalf("status %d (%s)", resp.StatusCode, body)
			}
			got := up.last(t).header.Get("Authorization")
			want := "Bearer " + token
			if strip {
				want = ""
			}
			if got != want {
				t.Errorf("upstream Authorization = %.30q…, want %.30q…", got, want)
			}
		})
	}
}

// TestForwardedHeaders: what the client claims about addresses and hosts is
// replaced by what the proxy saw; the Host asked for reaches the upstream.
func TestForwardedHeaders(t *testing.T) {
	iss := newIssuer(t)
	up := newUpstream(t)
	srv := startProxy(t, up.URL, defaultConfig(t, iss), proxy.UpstreamOptions{})
	resp, body := do(t, srv, request{
		host: "api.example.com", path: "/x?q=1", token: withScope(t, iss, "api"),
		header: http.Header{
			"X-Forwarded-For":   {"6.6.6.6"},
			"X-Forwarded-Host":  {"evil.example"},
			"X-Forwarded-Proto": {"https"},
			"Forwarded":         {"for=6.6.6.6;host=evil.example;proto=https"},
		},
	})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d (%s)", resp.StatusCode, body)
	}
	s := up.last(t)
	if s.host != "api.example.com" {
		t.Errorf("upstream Host = %q, want api.example.com", s.host)
	}
	if s.requestURI != "/x?q=1" {
		t.Errorf("upstream request URI = %q, want /x?q=1", s.requestURI)
	}
	want := map[string]string{
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Host":  "api.example.com",
		"X-Forwarded-Proto": "http",
		"Forwarded":         "",
	}
	for h, w := range want {
		if got := strings.Join(s.header[h], ", "); got != w {
			t.Errorf("upstream %s = %q, want %q", h, got, w)
		}
	}
}

// TestNonCanonicalPaths: a path whose meaning could differ between our route
// match and the upstream is refused before validation and never forwarded.
func TestNonCanonicalPaths(t *testing.T) {
	iss := newIssuer(t)
	up := newUpstream(t)
	srv := startProxy(t, up.URL, defaultConfig(t, iss), proxy.UpstreamOptions{})
	token := withScope(t, iss, "api")
	for _, path := range []string{
		"/public/../admin",
		"/public/./x",
		"/public/..",
		"//admin",
		"/public//x",
		"/a/%2e%2e/admin",
		"/public/%2E%2E/admin",
		"/public/%2e/x",
		"/a%2Fb",
		"/public%2f..%2fadmin",
		`/public\..\admin`,
		"/public/%5c..%5cadmin",
	} {
		for _, withToken := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s token=%v", path, withToken), func(t *testing.T) {
				auth := ""
				if withToken {
					auth = "Authorization: Bearer " + token + "\r\n"
				}
				resp, body := rawRequest(t, hostOf(srv), "GET "+path+" HTTP/1.1\r\nHost: api.example.com\r\n"+auth+"Connection: close\r\n\r\n")
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("status %d, want 400 (body %s)", resp.StatusCode, body)
				}
				if !strings.Contains(body, "invalid_request") {
					t.Errorf("body %s, want an invalid_request error", body)
				}
				up.none(t)
			})
		}
	}
	// Canonical paths with escapes that do not change the segments pass.
	for _, path := range []string{"/public/a%20b", "/public/caf%C3%A9", "/public/x?next=/../admin"} {
		t.Run(path, func(t *testing.T) {
			resp, body := rawRequest(t, hostOf(srv), "GET "+path+" HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200 (body %s)", resp.StatusCode, body)
			}
			if s := up.last(t); s.requestURI != path {
				t.Errorf("upstream got %q, want %q", s.requestURI, path)
			}
		})
	}
}

// upstreamError is the JSON body of a 502 or 504.
type upstreamError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func TestUpstreamDown(t *testing.T) {
	iss := newIssuer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused

	srv := startProxy(t, "http://"+addr, defaultConfig(t, iss), proxy.UpstreamOptions{})
	resp, body := do(t, srv, request{path: "/x", token: withScope(t, iss, "api")})
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502 (body %s)", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e upstreamError
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != "bad_gateway" {
		t.Errorf("body %s, want {\"error\":\"bad_gateway\",…}", body)
	}
	_, port, _ := net.SplitHostPort(addr)
	for _, leak := range []string{"dial", "refused", port, "127.0.0.1"} {
		if strings.Contains(body, leak) {
			t.Errorf("body %s leaks %q", body, leak)
		}
	}
	// A refused request does not even try the upstream.
	if resp, _ := do(t, srv, request{path: "/x"}); resp.StatusCode != 401 {
		t.Errorf("no token: status %d, want 401", resp.StatusCode)
	}
}

func TestUpstreamTimeout(t *testing.T) {
	iss := newIssuer(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // runs before slow.Close
	srv := startProxy(t, slow.URL, defaultConfig(t, iss), proxy.UpstreamOptions{ResponseHeaderTimeout: 50 * time.Millisecond})
	resp, body := do(t, srv, request{path: "/x", token: withScope(t, iss, "api")})
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504 (body %s)", resp.StatusCode, body)
	}
	var e upstreamError
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error != "upstream_timeout" {
		t.Errorf("body %s, want {\"error\":\"upstream_timeout\",…}", body)
	}
	if strings.Contains(body, "timeout awaiting") || strings.Contains(body, "127.0.0.1") {
		t.Errorf("body %s leaks an internal error", body)
	}
}

func TestUnixSocketUpstream(t *testing.T) {
	iss := newIssuer(t)
	sock := filepath.Join(t.TempDir(), "up.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	up := &upstream{got: make(chan seen, 8)}
	us := &http.Server{Handler: up.handler()}
	served := make(chan error, 1)
	go func() { served <- us.Serve(ln) }()
	t.Cleanup(func() {
		us.Close()
		<-served
	})

	srv := startProxy(t, "unix://"+sock, defaultConfig(t, iss), proxy.UpstreamOptions{})
	resp, body := do(t, srv, request{host: "api.example.com", path: "/over/unix", token: withScope(t, iss, "api")})
	if resp.StatusCode != 200 || body != "upstream" {
		t.Fatalf("status %d body %q, want 200 from the upstream", resp.StatusCode, body)
	}
	s := up.last(t)
	if s.requestURI != "/over/unix" || s.host != "api.example.com" || s.header.Get("X-Auth-Subject") != "auth0|test-user" {
		t.Errorf("upstream got %s host %q subject %q", s.requestURI, s.host, s.header.Get("X-Auth-Subject"))
	}
}

func TestH2CUpstream(t *testing.T) {
	iss := newIssuer(t)
	up := &upstream{got: make(chan seen, 8)}
	h2 := httptest.NewUnstartedServer(up.handler())
	h2.Config.Protocols = new(http.Protocols)
	h2.Config.Protocols.SetHTTP1(true)
	h2.Config.Protocols.SetUnencryptedHTTP2(true)
	h2.Start()
	t.Cleanup(h2.Close)

	srv := startProxy(t, "h2c://"+hostOf(h2), defaultConfig(t, iss), proxy.UpstreamOptions{})
	for range 2 { // the second request reuses the HTTP/2 connection
		resp, body := do(t, srv, request{path: "/h2", token: withScope(t, iss, "api")})
		if resp.StatusCode != 200 {
			t.Fatalf("status %d (%s)", resp.StatusCode, body)
		}
		if s := up.last(t); s.proto != 2 || s.header.Get("X-Auth-Subject") == "" {
			t.Errorf("upstream saw HTTP/%d, subject %q; want HTTP/2 with the subject", s.proto, s.header.Get("X-Auth-Subject"))
		}
	}
}

// TestServerSentEvents: an event reaches the client while the upstream is
// still streaming.
func TestServerSentEvents(t *testing.T) {
	iss := newIssuer(t)
	finish := make(chan struct{})
	sse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-finish:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: second\n\n")
	}))
	t.Cleanup(sse.Close)
	var once bool
	t.Cleanup(func() {
		if !once {
			close(finish)
		}
	})
	srv := startProxy(t, sse.URL, defaultConfig(t, iss), proxy.UpstreamOptions{})

	req, _ := http.NewRequest("GET", srv.URL+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+withScope(t, iss, "api"))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	events := make(chan string, 2)
	go func() {
		defer close(events)
		br := bufio.NewReader(resp.Body)
		for {
			var ev strings.Builder
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if line == "\n" {
					break
				}
				ev.WriteString(line)
			}
			events <- ev.String()
		}
	}()
	// The upstream has not finished: the first event must arrive anyway.
	if ev := within(t, events, "the first event"); ev != "data: first\n" {
		t.Fatalf("first event %q", ev)
	}
	once = true
	close(finish)
	if ev := within(t, events, "the second event"); ev != "data: second\n" {
		t.Fatalf("second event %q", ev)
	}
}

// TestUpgrade: a WebSocket-style upgrade is switched through to the upstream
// with identity, and bytes flow both ways afterwards.
func TestUpgrade(t *testing.T) {
	iss := newIssuer(t)
	subjects := make(chan string, 4)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		subjects <- r.Header.Get("X-Auth-Subject")
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		buf := make([]byte, 64)
		for {
			n, err := brw.Read(buf)
			if err != nil {
				return
			}
			if _, err := conn.Write(buf[:n]); err != nil {
				return
			}
		}
	}))
	t.Cleanup(echo.Close)
	srv := startProxy(t, echo.URL, defaultConfig(t, iss), proxy.UpstreamOptions{})

	t.Run("with a valid token", func(t *testing.T) {
		conn, err := net.Dial("tcp", hostOf(srv))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: api.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
			"X-Auth-Subject: spoofed\r\nAuthorization: Bearer %s\r\n\r\n", withScope(t, iss, "api"))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d, want 101", resp.StatusCode)
		}
		if sub := within(t, subjects, "the upstream"); sub != "auth0|test-user" {
			t.Errorf("upstream subject %q, want auth0|test-user", sub)
		}
		for _, msg := range []string{"ping", "pong!"} {
			if _, err := io.WriteString(conn, msg); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(br, buf); err != nil {
				t.Fatal(err)
			}
			if string(buf) != msg {
				t.Errorf("echo %q, want %q", buf, msg)
			}
		}
	})
	t.Run("without a token", func(t *testing.T) {
		resp, _ := rawRequest(t, hostOf(srv), "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		if resp.StatusCode != 401 {
			t.Errorf("status %d, want 401", resp.StatusCode)
		}
		select {
		case <-subjects:
			t.Error("the upgrade reached the upstream")
		default:
		}
	})
}

// TestChunkedRequestBody: a chunked upload is streamed: the upstream reads
// the first chunk before the client has sent the rest.
func TestChunkedRequestBody(t *testing.T) {
	iss := newIssuer(t)
	firstChunk := make(chan string, 1)
	type result struct {
		te   []string
		rest string
	}
	results := make(chan result, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, len("first;"))
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		firstChunk <- string(buf)
		rest, _ := io.ReadAll(r.Body)
		results <- result{r.TransferEncoding, string(rest)}
		io.WriteString(w, "stored")
	}))
	t.Cleanup(up.Close)
	srv := startProxy(t, up.URL, defaultConfig(t, iss), proxy.UpstreamOptions{})

	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", srv.URL+"/upload", pr)
	req.Header.Set("Authorization", "Bearer "+withScope(t, iss, "api"))
	type answer struct {
		resp *http.Response
		err  error
	}
	answers := make(chan answer, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		answers <- answer{resp, err}
	}()
	if _, err := io.WriteString(pw, "first;"); err != nil {
		t.Fatal(err)
	}
	if got := within(t, firstChunk, "the first chunk upstream"); got != "first;" {
		t.Fatalf("upstream read %q", got)
	}
	io.WriteString(pw, "second;third")
	pw.Close()
	a := within(t, answers, "the response")
	if a.err != nil {
		t.Fatal(a.err)
	}
	defer a.resp.Body.Close()
	if a.resp.StatusCode != 200 {
		t.Fatalf("status %d", a.resp.StatusCode)
	}
	r := within(t, results, "the upstream's result")
	if r.rest != "second;third" || len(r.te) != 1 || r.te[0] != "chunked" {
		t.Errorf("upstream got rest %q with Transfer-Encoding %q; want second;third, chunked", r.rest, r.te)
	}
}

func TestNewErrors(t *testing.T) {
	iss := newIssuer(t)
	cfg := defaultConfig(t, iss)
	tests := []struct {
		name     string
		upstream string
		cfg      proxy.Config
		want     []string
	}{
		{"no validator or rules", "http://127.0.0.1:1", proxy.Config{}, []string{"nil validator", "no rules"}},
		{"not a URL", "127.0.0.1:80", cfg, []string{"upstream"}},
		{"no host", "http:///x", cfg, []string{"no host"}},
		{"bad scheme", "ftp://example.com", cfg, []string{"scheme must be"}},
		{"unix without a path", "unix://", cfg, []string{"names no socket"}},
		{"query", "http://127.0.0.1:1/?a=b", cfg, []string{"query"}},
		{"forbidden claim header", "http://127.0.0.1:1", proxy.Config{Validator: cfg.Validator, Rules: cfg.Rules,
			ClaimHeaders: []proxy.ClaimHeader{{Claim: "sub", Header: "Authorization"}}}, []string{"cannot carry identity"}},
		{"forbidden scopes header", "http://127.0.0.1:1", proxy.Config{Validator: cfg.Validator, Rules: cfg.Rules,
			ScopesHeader: "Host"}, []string{"cannot carry identity"}},
		{"everything at once", "ftp://x", proxy.Config{ScopesHeader: "X Bad"}, []string{"nil validator", "no rules", "scheme", "X Bad"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := proxy.New(tc.upstream, tc.cfg, proxy.UpstreamOptions{})
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := proxy.NewForwardAuth(proxy.Config{}); err == nil {
		t.Error("NewForwardAuth without a validator succeeded")
	}
	var joined interface{ Unwrap() []error }
	_, err := proxy.New("ftp://x", proxy.Config{}, proxy.UpstreamOptions{})
	if !errors.As(err, &joined) || len(joined.Unwrap()) < 2 {
		t.Errorf("New error %v is not every problem joined", err)
	}
}

func TestProxyScopes(t *testing.T) {
	iss := newIssuer(t)
	p, err := proxy.New("http://127.0.0.1:1", defaultConfig(t, iss), proxy.UpstreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Scopes(httptest.NewRequest("POST", "/api/contacts/", nil)).String(); got != "api admin write:contacts" {
		t.Errorf("Scopes = %q", got)
	}
}

// contractRules are the rules of issue 9's findings 1 and 2. No global
// scopes: a request no rule matches needs a valid token and nothing more.
const contractRules = `
routes:
  - match: "GET /static/"
    public: true
  - match: "/admin/"
    scopes: ["admin"]
  - match: "DELETE /api/users/{id}"
    scopes: ["admin"]
  - match: "GET /api/users/{id}"
    scopes: ["read:users"]
`

// contractConfig is a configuration for iss with rules (YAML) and no global
// scopes.
func contractConfig(tb testing.TB, iss *jwkstest.Issuer, rules string) proxy.Config {
	tb.Helper()
	r, err := proxy.ParseRules([]byte(rules), scopes.Requirement{})
	if err != nil {
		tb.Fatal(err)
	}
	return proxy.Config{Validator: newValidator(tb, iss), Rules: r,
		ClaimHeaders: []proxy.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}}}
}

// contractCase is one request line of the normalization contract and what
// tokenward must answer.
type contractCase struct {
	name   string
	line   string // request line without " HTTP/1.1"
	header string // more header lines, each ending in \r\n
	token  string
	want   int
	body   string
}

// TestNormalizationContract (issue 9, findings 1 and 2): a request is
// forwarded only if every reasonable upstream would route it to the path and
// method whose rule tokenward applied; otherwise it is refused with 400.
// Servlet containers drop ";params" and then resolve dot segments, Werkzeug
// upper-cases methods, frameworks honour method-override headers and
// _method, Express routes /x/ as /x and /ADMIN as /admin.
func TestNormalizationContract(t *testing.T) {
	iss := newIssuer(t)
	up := newUpstream(t)
	srv := startProxy(t, up.URL, contractConfig(t, iss, contractRules), proxy.UpstreamOptions{})
	readUsers, admin := withScope(t, iss, "read:users"), withScope(t, iss, "admin")
	both := withScope(t, iss, "admin read:users")

	tests := []contractCase{
		// Finding 1: path parameters.
		{"..; escapes a public subtree", "GET /static/..;/admin/users", "", "", 400, ""},
		{"..;jsessionid escapes a public subtree", "GET /static/..;jsessionid=x/admin/users", "", "", 400, ""},
		{"; hides a segment from its rule", "GET /admin;x/users", "", readUsers, 400, ""},
		{"%3B as well", "GET /admin%3Bx/users", "", readUsers, 400, ""},
		{"%3b and ..", "GET /static/..%3b/admin/users", "", "", 400, ""},
		{"; at the end", "GET /api/users/5;x", "", readUsers, 400, ""},
		// Finding 2: methods.
		{"lower-case method", "delete /api/users/5", "", readUsers, 400, ""},
		{"mixed-case method", "Delete /api/users/5", "", readUsers, 400, ""},
		{"lower-case GET", "get /api/users/5", "", readUsers, 400, ""},
		{"X-HTTP-Method-Override", "POST /api/users/5", "X-HTTP-Method-Override: DELETE\r\n", readUsers, 400, ""},
		{"X-HTTP-Method", "POST /api/users/5", "X-HTTP-Method: DELETE\r\n", readUsers, 400, ""},
		{"X-Method-Override", "POST /api/users/5", "X-Method-Override: DELETE\r\n", readUsers, 400, ""},
		{"override in lower case", "POST /api/users/5", "x-http-method-override: delete\r\n", readUsers, 400, ""},
		{"override with _ for - (HTTP_X_HTTP_METHOD_OVERRIDE in WSGI)", "POST /api/users/5", "X_HTTP_Method_Override: DELETE\r\n", readUsers, 400, ""},
		{"override on a GET", "GET /api/users/5", "X-HTTP-Method-Override: DELETE\r\n", readUsers, 400, ""},
		{"override even to the same method", "DELETE /api/users/5", "X-HTTP-Method-Override: DELETE\r\n", admin, 400, ""},
		{"_method query", "POST /api/users/5?_method=DELETE", "", readUsers, 400, ""},
		{"_method query, encoded", "POST /api/users/5?x=1&%5Fmethod=DELETE", "", readUsers, 400, ""},
		{"_method query as PHP reads .method", "POST /api/users/5?.method=DELETE", "", readUsers, 400, ""},
		{"_method[] query", "POST /api/users/5?_METHOD[]=DELETE", "", readUsers, 400, ""},
		// A _method form field (Rails, Symfony, Laravel, Express'
		// method-override with a body getter): tokenward does not read the
		// body, so a POST that may carry one gets every method's rules.
		{"_method form field", "POST /api/users/5", "Content-Type: application/x-www-form-urlencoded\r\n", readUsers, 403, "_method=DELETE"},
		{"multipart form", "POST /api/users/5", "Content-Type: Multipart/Form-Data; boundary=x\r\n", readUsers, 403, "--x--\r\n"},
		{"body without Content-Type (Rack reads a form)", "POST /api/users/5", "", readUsers, 403, "_method=DELETE"},
		{"form with every method's scopes", "POST /api/users/5", "Content-Type: application/x-www-form-urlencoded\r\n", both, 200, "_method=DELETE"},
		{"JSON body", "POST /api/users/5", "Content-Type: application/json\r\n", readUsers, 200, `{"_method":"DELETE"}`},
		{"POST without a body", "POST /api/users/5", "", readUsers, 200, ""},
		// A fragment, which Werkzeug drops.
		{"fragment", "GET /api/users/5#/x", "", admin, 400, ""},
		{"encoded # is a character", "GET /api/users/5%23x", "", readUsers, 200, ""},
		// Finding 2: trailing slash, the stricter of both spellings.
		{"DELETE with a trailing slash needs DELETE's scope", "DELETE /api/users/5/", "", readUsers, 403, ""},
		{"DELETE with a trailing slash, admin", "DELETE /api/users/5/", "", admin, 200, ""},
		{"GET with a trailing slash needs GET's scope", "GET /api/users/5/", "", admin, 403, ""},
		{"GET with a trailing slash, its scope", "GET /api/users/5/", "", readUsers, 200, ""},
		{"subtree without its slash", "GET /admin", "", readUsers, 403, ""},
		// Path case: Express routes /ADMIN/users as /admin/users.
		{"upper-case path", "GET /ADMIN/users", "", readUsers, 403, ""},
		{"title-case path", "GET /Admin/Users", "", readUsers, 403, ""},
		{"upper-case path, admin", "GET /ADMIN/users", "", admin, 200, ""},
		{"upper-case DELETE", "DELETE /API/USERS/5", "", readUsers, 403, ""},
		{"upper-case with a trailing slash", "DELETE /Api/Users/5/", "", readUsers, 403, ""},
		{"upper-case public path is not public", "GET /STATIC/x", "", "", 401, ""},
		// What still passes.
		{"public", "GET /static/x", "", "", 200, ""},
		{"public, a token ignored", "GET /static/x/", "", readUsers, 200, ""},
		{"GET its scope", "GET /api/users/5", "", readUsers, 200, ""},
		{"DELETE its scope", "DELETE /api/users/5", "", admin, 200, ""},
		{"DELETE without it", "DELETE /api/users/5", "", readUsers, 403, ""},
		{"both scopes, a trailing slash", "GET /api/users/5/", "", both, 200, ""},
		{"a case-sensitive id", "GET /api/users/AbC", "", readUsers, 200, ""},
		{"a method token with -", "VERSION-CONTROL /elsewhere", "", readUsers, 200, ""},
		{"method as an ordinary query value", "GET /api/users/5?sort=method&x_method=1", "", readUsers, 200, ""},
	}
	runContract(t, srv, up, tests)
}

// runContract sends each case raw and checks the answer: a 400 must be
// tokenward's (invalid_request) and reach no upstream.
func runContract(t *testing.T, srv *httptest.Server, up *upstream, tests []contractCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for len(up.got) > 0 {
				<-up.got // what an earlier case let through, when it failed
			}
			raw := tc.line + " HTTP/1.1\r\nHost: api.example.com\r\n" + tc.header
			if tc.token != "" {
				raw += "Authorization: Bearer " + tc.token + "\r\n"
			}
			raw += fmt.Sprintf("Content-Length: %d\r\nConnection: close\r\n\r\n%s", len(tc.body), tc.body)
			resp, body := rawRequest(t, hostOf(srv), raw)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tc.want, body)
			}
			switch tc.want {
			case http.StatusOK:
				up.last(t)
			case http.StatusBadRequest:
				wantChallenge(t, resp, `error="invalid_request"`)
				fallthrough
			default:
				up.none(t)
			}
		})
	}
}

// TestNormalizationOptIns: the rules file's allow_method_override and
// allow_encoded_slash let through what they name, and the route is then the
// stricter of both readings.
func TestNormalizationOptIns(t *testing.T) {
	iss := newIssuer(t)
	up := newUpstream(t)
	const rules = `
allow_method_override: ["X-HTTP-Method-Override"]
allow_encoded_slash: true
routes:
  - match: "DELETE /api/users/{id}"
    scopes: ["admin"]
  - match: "GET /api/users/{id}"
    scopes: ["read:users"]
  - match: "GET /projects/{id}"
    scopes: ["read:projects"]
  - match: "GET /projects/secret/"
    scopes: ["admin"]
`
	srv := startProxy(t, up.URL, contractConfig(t, iss, rules), proxy.UpstreamOptions{})
	readUsers, admin := withScope(t, iss, "read:users"), withScope(t, iss, "admin")
	readProjects, both := withScope(t, iss, "read:projects"), withScope(t, iss, "admin read:projects")
	tests := []contractCase{
		{"override to a stricter method", "POST /api/users/5", "X-HTTP-Method-Override: DELETE\r\n", readUsers, 403, ""},
		{"override, the overriding method's scope", "POST /api/users/5", "X-HTTP-Method-Override: DELETE\r\n", admin, 200, ""},
		{"override with _ for -", "POST /api/users/5", "X_HTTP_Method_Override: DELETE\r\n", readUsers, 403, ""},
		{"override from GET: both methods' rules", "GET /api/users/5", "X-HTTP-Method-Override: DELETE\r\n", admin, 403, ""},
		{"override in lower case", "POST /api/users/5", "X-HTTP-Method-Override: delete\r\n", admin, 400, ""},
		{"override twice", "POST /api/users/5", "X-HTTP-Method-Override: DELETE\r\nX-HTTP-Method-Override: GET\r\n", admin, 400, ""},
		{"override in two spellings", "POST /api/users/5", "X-HTTP-Method-Override: GET\r\nX_HTTP_Method_Override: DELETE\r\n", admin, 400, ""},
		{"override list", "POST /api/users/5", "X-HTTP-Method-Override: GET, DELETE\r\n", admin, 400, ""},
		{"override header and a form", "POST /api/users/5", "X-HTTP-Method-Override: GET\r\nContent-Type: application/x-www-form-urlencoded\r\n", readUsers, 403, "_method=DELETE"},
		{"another override header stays refused", "POST /api/users/5", "X-HTTP-Method: DELETE\r\n", admin, 400, ""},
		{"_method stays refused", "POST /api/users/5?_method=DELETE", "", admin, 400, ""},
		{"encoded slash in a segment", "GET /projects/group%2Fname", "", readProjects, 200, ""},
		{"encoded slash read as a separator reaches a stricter rule", "GET /projects/secret%2Fx", "", readProjects, 403, ""},
		{"encoded slash, both rules' scopes", "GET /projects/secret%2Fx", "", both, 200, ""},
		{"encoded slash hiding a dot segment", "GET /projects/x%2F..%2Fsecret", "", both, 400, ""},
		{"encoded slash making an empty segment", "GET /projects/x%2F%2Fy", "", both, 400, ""},
	}
	runContract(t, srv, up, tests)

	// The upstream gets the path as the client sent it.
	resp, body := rawRequest(t, hostOf(srv), "GET /projects/group%2Fname HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer "+
		readProjects+"\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d (body %s)", resp.StatusCode, body)
	}
	if s := up.last(t); s.requestURI != "/projects/group%2Fname" {
		t.Errorf("upstream got %q, want /projects/group%%2Fname", s.requestURI)
	}
}
