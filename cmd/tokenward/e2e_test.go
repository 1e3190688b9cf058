package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks/jwkstest"
)

// TestAnswers runs every row of DESIGN.md's answer table through the binary
// in proxy mode, with route rules (scopes, any_scopes, public) and global
// required scopes.
func TestAnswers(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	other := newIssuer(t) // a real issuer, not trusted
	up := echoUpstream(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":         iss.URL(),
		"TOKENWARD_AUDIENCES":       audience + ", https://second.example.com",
		"TOKENWARD_UPSTREAM":        up.URL,
		"TOKENWARD_RULES_FILE":      testRulesFile(t),
		"TOKENWARD_REQUIRED_SCOPES": "api:access",
		"TOKENWARD_REALM":           "contacts",
		"TOKENWARD_MAX_TOKEN_BYTES": "4096",
	})

	now := time.Now()
	good := mint(t, iss, map[string]any{"scope": "api:access read:contacts"})
	secondAud := mint(t, iss, map[string]any{"scope": "api:access read:contacts", "aud": []string{"https://second.example.com", iss.URL() + "userinfo"}})
	writer := mint(t, iss, map[string]any{"scope": "api:access", "permissions": []string{"write:contacts"}})
	admin := mint(t, iss, map[string]any{"scp": []string{"api:access", "admin"}})
	apiOnly := mint(t, iss, map[string]any{"scope": "api:access"})
	noAPIAccess := mint(t, iss, map[string]any{"scope": "read:contacts"})
	expired := mint(t, iss, map[string]any{"scope": "api:access read:contacts", "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})
	notYet := mint(t, iss, map[string]any{"scope": "api:access read:contacts", "nbf": now.Add(time.Hour).Unix()})
	future := mint(t, iss, map[string]any{"scope": "api:access read:contacts", "iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()})
	wrongAud := mint(t, iss, map[string]any{"scope": "api:access read:contacts", "aud": "https://other.example.com"})
	noExp := mint(t, iss, map[string]any{"scope": "api:access read:contacts", "exp": nil})
	must := func(tok string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	untrusted := must(other.Mint(other.Claims(audience, map[string]any{"scope": "api:access read:contacts"})))
	stranger, err := jwkstest.NewKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	claims := iss.Claims(audience, map[string]any{"scope": "api:access read:contacts"})
	unknownKid := must(stranger.Sign(nil, claims))
	badSig := must(stranger.Sign(map[string]any{"kid": iss.SigningKey().ID}, claims))
	hs256 := must(iss.MintWithHeader(map[string]any{"alg": "HS256"}, claims))
	algNone := must(iss.MintWithHeader(map[string]any{"alg": "none"}, claims))
	dpop := must(iss.MintWithHeader(map[string]any{"typ": "dpop+jwt"}, claims))
	atJWT := must(iss.MintWithHeader(map[string]any{"typ": "at+jwt"}, claims))
	crit := must(iss.MintWithHeader(map[string]any{"crit": []string{"exp"}}, claims))

	header := func(kv ...string) func(*http.Request) {
		return func(r *http.Request) {
			for i := 0; i+1 < len(kv); i += 2 {
				r.Header.Add(kv[i], kv[i+1])
			}
		}
	}
	const (
		bare         = `Bearer realm="contacts"`
		invalidToken = `Bearer realm="contacts", error="invalid_token"`
		invalidReq   = `Bearer realm="contacts", error="invalid_request"`
		insufficient = `Bearer realm="contacts", error="insufficient_scope"`
	)
	for _, tc := range []struct {
		name       string
		method     string
		path       string
		edit       func(*http.Request)
		status     int
		challenge  string // prefix of WWW-Authenticate; "" for none
		errorCode  string // "error" in the JSON body; "" when the upstream answered
		descriptn  string // in error_description, if set
		scopeParam string // scope="…" in the challenge, if set
	}{
		// Allowed.
		{"valid token, scoped route", "GET", "/api/contacts/1", bearer(good), 200, "", "", "", ""},
		{"scheme is case-insensitive (bearer)", "GET", "/api/contacts/1", header("Authorization", "bearer "+good), 200, "", "", "", ""},
		{"scheme is case-insensitive (BEARER)", "GET", "/api/contacts/1", header("Authorization", "BEARER "+good), 200, "", "", "", ""},
		{"aud array with one accepted audience", "GET", "/api/contacts/1", bearer(secondAud), 200, "", "", "", ""},
		{"typ at+jwt", "GET", "/api/contacts/1", bearer(atJWT), 200, "", "", "", ""},
		{"any_scopes: permissions claim", "POST", "/api/contacts/", bearer(writer), 200, "", "", "", ""},
		{"any_scopes: scp array", "POST", "/api/contacts/", bearer(admin), 200, "", "", "", ""},
		{"no rule matches: valid token with the global scope", "GET", "/elsewhere", bearer(apiOnly), 200, "", "", "", ""},
		{"public route, no token", "GET", "/status", nil, 200, "", "", "", ""},
		{"public route, garbage token ignored", "GET", "/status", bearer("garbage"), 200, "", "", "", ""},

		// 401 without an error code.
		{"no token", "GET", "/api/contacts/1", nil, 401, bare, "unauthorized", "", ""},
		{"no token, unmatched route", "GET", "/elsewhere", nil, 401, bare, "unauthorized", "", ""},
		{"another scheme (Basic)", "GET", "/api/contacts/1", header("Authorization", "Basic dXNlcjpwYXNz"), 401, bare, "unauthorized", "", ""},
		{"public rule is method-specific", "POST", "/status", nil, 401, bare, "unauthorized", "", ""},

		// 400.
		{"no token after Bearer", "GET", "/api/contacts/1", header("Authorization", "Bearer"), 400, invalidReq, "invalid_request", "", ""},
		{"no token after Bearer and a space", "GET", "/api/contacts/1", header("Authorization", "Bearer "), 400, invalidReq, "invalid_request", "", ""},
		{"two tokens", "GET", "/api/contacts/1", header("Authorization", "Bearer "+good+" "+good), 400, invalidReq, "invalid_request", "more than one token", ""},
		{"two Authorization headers", "GET", "/api/contacts/1", header("Authorization", "Bearer "+good, "Authorization", "Bearer "+good), 400, invalidReq, "invalid_request", "more than one Authorization header", ""},
		{"dot segments in the path", "GET", "/status/../api/contacts/1", bearer(apiOnly), 400, `Bearer realm="`, "invalid_request", "not canonical", ""},

		// 401 invalid_token.
		{"bad signature", "GET", "/api/contacts/1", bearer(badSig), 401, invalidToken, "invalid_token", "signature invalid", ""},
		{"unknown key", "GET", "/api/contacts/1", bearer(unknownKid), 401, invalidToken, "invalid_token", "signing key not found", ""},
		{"untrusted issuer", "GET", "/api/contacts/1", bearer(untrusted), 401, invalidToken, "invalid_token", "issuer not trusted", ""},
		{"wrong audience", "GET", "/api/contacts/1", bearer(wrongAud), 401, invalidToken, "invalid_token", "audience not accepted", ""},
		{"alg HS256", "GET", "/api/contacts/1", bearer(hs256), 401, invalidToken, "invalid_token", "signing algorithm not accepted", ""},
		{"alg none", "GET", "/api/contacts/1", bearer(algNone), 401, invalidToken, "invalid_token", "signing algorithm not accepted", ""},
		{"typ dpop+jwt", "GET", "/api/contacts/1", bearer(dpop), 401, invalidToken, "invalid_token", "token type not accepted", ""},
		{"crit header", "GET", "/api/contacts/1", bearer(crit), 401, invalidToken, "invalid_token", "", ""},
		{"expired", "GET", "/api/contacts/1", bearer(expired), 401, invalidToken, "invalid_token", "token expired", ""},
		{"no exp", "GET", "/api/contacts/1", bearer(noExp), 401, invalidToken, "invalid_token", "", ""},
		{"not yet valid", "GET", "/api/contacts/1", bearer(notYet), 401, invalidToken, "invalid_token", "token not yet valid", ""},
		{"issued in the future", "GET", "/api/contacts/1", bearer(future), 401, invalidToken, "invalid_token", "token issued in the future", ""},
		{"unparsable", "GET", "/api/contacts/1", bearer("abc.def.ghi"), 401, invalidToken, "invalid_token", "", ""},
		{"opaque", "GET", "/api/contacts/1", bearer("2YotnFZFEjr1zCsicMWpAA"), 401, invalidToken, "invalid_token", "", ""},
		{"too large", "GET", "/api/contacts/1", bearer(strings.Repeat("a", 5000) + ".b.c"), 401, invalidToken, "invalid_token", "token too large", ""},

		// 403.
		{"missing the route's scope", "GET", "/api/contacts/1", bearer(apiOnly), 403, insufficient, "insufficient_scope", "", "api:access read:contacts"},
		{"missing the global scope", "GET", "/api/contacts/1", bearer(noAPIAccess), 403, insufficient, "insufficient_scope", "", "api:access read:contacts"},
		{"missing the global scope, unmatched route", "GET", "/elsewhere", bearer(noAPIAccess), 403, insufficient, "insufficient_scope", "", "api:access"},
		{"any_scopes: none of them", "POST", "/api/contacts/", bearer(good), 403, insufficient, "insufficient_scope", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, srv.client, tc.method, srv.url+tc.path, tc.edit)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tc.status, r.body)
			}
			got := r.header.Get("WWW-Authenticate")
			if tc.challenge == bare && got != bare || !strings.HasPrefix(got, tc.challenge) || tc.challenge == "" && got != "" {
				t.Errorf("WWW-Authenticate %q, want %q…", got, tc.challenge)
			}
			if tc.scopeParam != "" && !strings.Contains(got, `scope="`+tc.scopeParam+`"`) {
				t.Errorf("WWW-Authenticate %q has no scope=%q", got, tc.scopeParam)
			}
			if tc.status == 403 && !strings.Contains(got, `scope="`) {
				t.Errorf("WWW-Authenticate %q has no scope", got)
			}
			if tc.errorCode == "" {
				s := r.seen(t)
				if s.Method != tc.method || s.Path != tc.path {
					t.Errorf("upstream saw %s %s, want %s %s", s.Method, s.Path, tc.method, tc.path)
				}
				return
			}
			body := r.json(t)
			if body["error"] != tc.errorCode {
				t.Errorf("error %v, want %q", body["error"], tc.errorCode)
			}
			if d, _ := body["error_description"].(string); tc.descriptn != "" && !strings.Contains(d, tc.descriptn) {
				t.Errorf("error_description %q, want %q", d, tc.descriptn)
			}
			if strings.Contains(string(r.body), good[:40]) {
				t.Errorf("body echoes the token: %s", r.body)
			}
		})
	}

	t.Run("admin endpoints", func(t *testing.T) {
		if r := do(t, srv.client, "GET", srv.adminURL+"/healthz", nil); r.status != 200 {
			t.Errorf("/healthz: %d", r.status)
		}
		if r := do(t, srv.client, "GET", srv.adminURL+"/readyz", nil); r.status != 200 {
			t.Errorf("/readyz: %d %s", r.status, r.body)
		}
		r := do(t, srv.client, "GET", srv.adminURL+"/metrics", nil)
		for _, want := range []string{
			`tokenward_requests_total{outcome="denied",reason="not_yet_valid"} 1`,
			`tokenward_requests_total{outcome="public",reason=""} 2`,
			`tokenward_jwks_refreshes_total{issuer="` + iss.URL() + `",result="success"}`,
			`tokenward_jwks_loaded{issuer="` + iss.URL() + `"} 1`,
			"go_goroutines",
			"process_resident_memory_bytes",
		} {
			if !strings.Contains(string(r.body), want) {
				t.Errorf("/metrics has no %q", want)
			}
		}
		// The fetch that loaded the keys is counted, though it was made
		// before the metrics existed.
		success := `tokenward_jwks_refreshes_total{issuer="` + iss.URL() + `",result="success"} `
		if i := strings.Index(string(r.body), success); i < 0 || strings.HasPrefix(string(r.body[i+len(success):]), "0\n") {
			t.Errorf("/metrics counts no successful key set fetch")
		}
	})

	t.Run("logs never hold a token", func(t *testing.T) {
		logs := srv.stderr.String()
		for _, tok := range []string{good, expired, badSig, wrongAud} {
			sig := tok[strings.LastIndexByte(tok, '.')+1:]
			if strings.Contains(logs, sig) || strings.Contains(logs, tok[:60]) {
				t.Fatalf("the logs contain a token")
			}
		}
		srv.stderr.waitLog(t, "request refused", "reason", "expired")
	})
}

// TestIssuerDownSinceStart: 503 with Retry-After and /readyz 503 while the
// issuer has been unreachable since start; requests pass once it is back.
func TestIssuerDownSinceStart(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	iss.SetDown(true)
	up := echoUpstream(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":                   iss.URL(),
		"TOKENWARD_AUDIENCES":                 audience,
		"TOKENWARD_UPSTREAM":                  up.URL,
		"TOKENWARD_JWKS_MIN_REFRESH_INTERVAL": "200ms",
	})
	token := mint(t, iss, nil)

	if r := do(t, srv.client, "GET", srv.adminURL+"/readyz", nil); r.status != 503 {
		t.Fatalf("/readyz while the issuer is down: %d, want 503", r.status)
	}
	r := do(t, srv.client, "GET", srv.url+"/api", bearer(token))
	if r.status != 503 {
		t.Fatalf("status %d, want 503; body %s", r.status, r.body)
	}
	if ra := r.header.Get("Retry-After"); ra == "" {
		t.Errorf("no Retry-After")
	} else if _, err := strconv.Atoi(ra); err != nil {
		t.Errorf("Retry-After %q is not seconds", ra)
	}
	if e := r.json(t)["error"]; e != "temporarily_unavailable" {
		t.Errorf("error %v", e)
	}

	iss.SetDown(false)
	// The binary offers no signal of recovery but /readyz: poll it, bounded.
	ready := false
	for deadline := time.Now().Add(waitTimeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if do(t, srv.client, "GET", srv.adminURL+"/readyz", nil).status == 200 {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatal("/readyz never became 200 after the issuer came back")
	}
	if r := do(t, srv.client, "GET", srv.url+"/api", bearer(token)); r.status != 200 {
		t.Fatalf("after recovery: status %d, body %s", r.status, r.body)
	}
}

// TestUpstreamUnreachable answers 502 when nothing listens upstream.
func TestUpstreamUnreachable(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":   iss.URL(),
		"TOKENWARD_AUDIENCES": audience,
		"TOKENWARD_UPSTREAM":  dead,
	})
	r := do(t, srv.client, "GET", srv.url+"/api", bearer(mint(t, iss, nil)))
	if r.status != 502 {
		t.Fatalf("status %d, want 502; body %s", r.status, r.body)
	}
	if e := r.json(t)["error"]; e != "bad_gateway" {
		t.Errorf("error %v", e)
	}
	// Without a token it is still a 401: the upstream is not even tried.
	if r := do(t, srv.client, "GET", srv.url+"/api", nil); r.status != 401 {
		t.Errorf("no token: status %d, want 401", r.status)
	}
}

// TestHeaderTooLarge: a 1 MiB header gets 431.
func TestHeaderTooLarge(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	up := echoUpstream(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":   iss.URL(),
		"TOKENWARD_AUDIENCES": audience,
		"TOKENWARD_UPSTREAM":  up.URL,
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(waitTimeout))
	// The server answers before it has read everything and then closes, so
	// the write runs on its own and its error (a reset) does not matter.
	wrote := make(chan error, 1)
	go func() {
		req := "GET /api HTTP/1.1\r\nHost: tokenward\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\n\r\n"
		_, err := io.WriteString(conn, req)
		wrote <- err
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
	conn.Close()
	<-wrote
}

// TestIdentityHeaders: claim headers reach the upstream (a namespaced claim,
// an array claim joined), client-sent copies are stripped on protected and
// public routes, and Authorization is forwarded unless stripped.
func TestIdentityHeaders(t *testing.T) {
	t.Parallel()
	for _, strip := range []bool{false, true} {
		t.Run(fmt.Sprintf("strip_authorization=%v", strip), func(t *testing.T) {
			t.Parallel()
			iss := newIssuer(t)
			up := echoUpstream(t)
			srv := serveBinary(t, map[string]string{
				"TOKENWARD_ISSUERS":             iss.URL(),
				"TOKENWARD_AUDIENCES":           audience,
				"TOKENWARD_UPSTREAM":            up.URL,
				"TOKENWARD_RULES_FILE":          testRulesFile(t),
				"TOKENWARD_CLAIM_HEADERS":       "sub=X-Auth-Subject, https://example.com/org=X-Auth-Org, https://example.com/roles=X-Auth-Roles",
				"TOKENWARD_SCOPES_HEADER":       "X-Auth-Scopes",
				"TOKENWARD_STRIP_AUTHORIZATION": strconv.FormatBool(strip),
			})
			full := mint(t, iss, map[string]any{
				"sub":                       "auth0|alice",
				"scope":                     "read:contacts openid",
				"https://example.com/org":   "northwind",
				"https://example.com/roles": []string{"admin", "editor"},
			})
			bare := mint(t, iss, map[string]any{"sub": "auth0|bob", "scope": "read:contacts"})
			spoof := func(token string) func(*http.Request) {
				return func(r *http.Request) {
					if token != "" {
						r.Header.Set("Authorization", "Bearer "+token)
					}
					r.Header["X-Auth-Subject"] = []string{"auth0|mallory"}
					r.Header["x-auth-roles"] = []string{"superuser"} // not canonical: still the same header
					r.Header.Add("X-Auth-Org", "evil")
					r.Header.Add("X-Auth-Scopes", "admin")
				}
			}

			s := do(t, srv.client, "GET", srv.url+"/api/contacts/1", spoof(full)).seen(t)
			want := map[string][]string{
				"X-Auth-Subject": {"auth0|alice"},
				"X-Auth-Org":     {"northwind"},
				"X-Auth-Roles":   {"admin,editor"},
				"X-Auth-Scopes":  {"openid read:contacts"},
			}
			for h, v := range want {
				if got := s.Header[h]; strings.Join(got, "|") != strings.Join(v, "|") {
					t.Errorf("protected route: upstream got %s %q, want %q", h, got, v)
				}
			}
			//lint:ignore SA1008 the non-canonical key is the point: a client-sent copy must not survive
			if _, ok := s.Header["x-auth-roles"]; ok {
				t.Errorf("protected route: the client's non-canonical x-auth-roles reached the upstream")
			}
			if got := s.Header.Get("Authorization"); (got == "") != strip {
				t.Errorf("Authorization at the upstream: %q (strip %v)", got, strip)
			}

			// A token without the namespaced claims: their headers are absent,
			// not the client's.
			s = do(t, srv.client, "GET", srv.url+"/api/contacts/1", spoof(bare)).seen(t)
			if got := s.Header["X-Auth-Subject"]; len(got) != 1 || got[0] != "auth0|bob" {
				t.Errorf("X-Auth-Subject %q", got)
			}
			for _, h := range []string{"X-Auth-Org", "X-Auth-Roles"} {
				if got, ok := s.Header[h]; ok {
					t.Errorf("%s reached the upstream: %q", h, got)
				}
			}

			// Public route: no identity at all, with or without a token.
			for _, token := range []string{"", full} {
				s = do(t, srv.client, "GET", srv.url+"/status", spoof(token)).seen(t)
				for h := range s.Header {
					if strings.HasPrefix(strings.ToLower(h), "x-auth-") {
						t.Errorf("public route (token %v): %s %q reached the upstream", token != "", h, s.Header[h])
					}
				}
			}
		})
	}
}

// TestServerSentEvents: an event reaches the client while the upstream's
// response is still open.
func TestServerSentEvents(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: second\n\n")
	}))
	t.Cleanup(up.Close)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":   iss.URL(),
		"TOKENWARD_AUDIENCES": audience,
		"TOKENWARD_UPSTREAM":  up.URL,
	})

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.url+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+mint(t, iss, nil))
	req.Header.Set("Accept", "text/event-stream")
	resp, err := srv.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	readEvent := func() string {
		t.Helper()
		var ev strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the stream after %q: %v", ev.String(), err)
			}
			if line == "\n" {
				return ev.String()
			}
			ev.WriteString(line)
		}
	}
	// The upstream holds its response open until the first event has come
	// through: a buffering proxy would time out here.
	if ev := readEvent(); ev != "data: first\n" {
		t.Fatalf("first event %q", ev)
	}
	releaseOnce.Do(func() { close(release) })
	if ev := readEvent(); ev != "data: second\n" {
		t.Fatalf("second event %q", ev)
	}
}

// TestLargeUploadStreamed: a 64 MiB body is streamed to the upstream, which
// sees the first bytes before the client has sent the rest, and the binary's
// memory does not grow with the body.
func TestLargeUploadStreamed(t *testing.T) {
	t.Parallel()
	const (
		chunk = 1 << 20
		total = 64 << 20
	)
	iss := newIssuer(t)
	firstBytes := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/upload" {
			return // warm-up
		}
		buf := make([]byte, 32<<10)
		n, err := r.Body.Read(buf)
		if n == 0 {
			http.Error(w, fmt.Sprintf("no first bytes: %v", err), http.StatusBadRequest)
			return
		}
		close(firstBytes)
		rest, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d", int64(n)+rest)
	}))
	t.Cleanup(up.Close)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":   iss.URL(),
		"TOKENWARD_AUDIENCES": audience,
		"TOKENWARD_UPSTREAM":  up.URL,
	})
	token := mint(t, iss, nil)
	// Warm up (keys loaded, connections made) before the baseline.
	if r := do(t, srv.client, "GET", srv.url+"/warmup", bearer(token)); r.status != 200 {
		t.Fatalf("warm-up: %d", r.status)
	}
	pid := srv.cmd.Process.Pid
	before := vmKB(t, pid, "VmRSS")

	pr, pw := io.Pipe()
	sent := make(chan error, 1)
	go func() {
		buf := make([]byte, chunk)
		if _, err := pw.Write(buf); err != nil {
			sent <- err
			return
		}
		select {
		case <-firstBytes:
		case <-time.After(waitTimeout):
			err := errors.New("the upstream did not get the first bytes while the client was still sending")
			pw.CloseWithError(err)
			sent <- err
			return
		}
		for n := chunk; n < total; n += chunk {
			if _, err := pw.Write(buf); err != nil {
				sent <- err
				return
			}
		}
		sent <- pw.Close()
	}()
	req, _ := http.NewRequest("POST", srv.url+"/upload", pr)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := srv.client.Do(req)
	if err != nil {
		pr.CloseWithError(err)
		<-sent
		t.Fatalf("upload: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := <-sent; err != nil {
		t.Fatalf("sending: %v", err)
	}
	if resp.StatusCode != 200 || string(body) != strconv.Itoa(total) {
		t.Fatalf("status %d, body %q; want 200 and %d", resp.StatusCode, body, total)
	}
	peak := vmKB(t, pid, "VmHWM")
	growth := (peak - before) >> 10
	t.Logf("RSS before %d MiB, peak %d MiB", before>>10, peak>>10)
	if growth >= 100 {
		t.Errorf("RSS grew by %d MiB for a %d MiB upload, want < 100", growth, total>>20)
	}
}

// TestGracefulShutdown: SIGTERM during a slow request lets it complete with
// 200, and the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	arrived := make(chan struct{})
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-release:
			io.WriteString(w, "finished")
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(up.Close)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":        iss.URL(),
		"TOKENWARD_AUDIENCES":      audience,
		"TOKENWARD_UPSTREAM":       up.URL,
		"TOKENWARD_SHUTDOWN_GRACE": "30s",
	})
	token := mint(t, iss, nil)

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", srv.url+"/slow", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.client.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b), err}
	}()
	select {
	case <-arrived:
	case r := <-done:
		t.Fatalf("the request ended before reaching the upstream: %+v", r)
	case <-time.After(waitTimeout):
		t.Fatal("the request never reached the upstream")
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	srv.stderr.wait(t, "shutdown log line", func(s string) bool { return strings.HasPrefix(parseLog(s).str("msg"), "shutting down") })
	select {
	case r := <-done:
		t.Fatalf("the in-flight request ended at SIGTERM: %+v", r)
	default:
	}
	releaseOnce.Do(func() { close(release) })
	r := <-done
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Fatalf("in-flight request: %+v, want 200 finished", r)
	}
	if code := srv.exit(t); code != 0 {
		t.Fatalf("exit status %d, want 0", code)
	}
	srv.stderr.waitLog(t, "stopped")
}

// TestForwardAuth: 200 with identity headers, 401 and 403, from the original
// method and URI in X-Forwarded-* (Traefik, Envoy) or X-Original-* (NGINX).
func TestForwardAuth(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_MODE":          "forward-auth",
		"TOKENWARD_ISSUERS":       iss.URL(),
		"TOKENWARD_AUDIENCES":     audience,
		"TOKENWARD_RULES_FILE":    testRulesFile(t),
		"TOKENWARD_SCOPES_HEADER": "X-Auth-Scopes",
	})
	reader := mint(t, iss, map[string]any{"sub": "auth0|alice", "scope": "read:contacts"})
	writer := mint(t, iss, map[string]any{"sub": "auth0|bob", "permissions": []string{"write:contacts"}})
	traefik := func(method, uri, token string) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("X-Forwarded-Method", method)
			r.Header.Set("X-Forwarded-Uri", uri)
			r.Header.Set("Content-Type", "application/json") // the client's, passed on
			r.Header.Set("X-Auth-Subject", "auth0|mallory")
			if token != "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
		}
	}
	nginx := func(method, uri, token string) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("X-Original-Method", method)
			r.Header.Set("X-Original-URI", uri)
			r.Header.Set("X-Auth-Subject", "auth0|mallory")
			if token != "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		edit    func(*http.Request)
		status  int
		subject string // X-Auth-Subject of the answer
	}{
		{"traefik: valid token and scope", traefik("GET", "/api/contacts/7?fields=name", reader), 200, "auth0|alice"},
		{"nginx: valid token and scope", nginx("GET", "/api/contacts/7", reader), 200, "auth0|alice"},
		{"any_scopes", traefik("POST", "/api/contacts/", writer), 200, "auth0|bob"},
		{"POST that may be a form gets every method's rules", func(r *http.Request) {
			traefik("POST", "/api/contacts/", writer)(r)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}, 403, ""},
		{"no token", traefik("GET", "/api/contacts/7", ""), 401, ""},
		{"nginx: no token", nginx("GET", "/api/contacts/7", ""), 401, ""},
		{"missing scope", traefik("GET", "/api/contacts/7", writer), 403, ""},
		{"nginx: missing scope", nginx("POST", "/api/contacts/", reader), 403, ""},
		{"public route forwards no identity", traefik("GET", "/status", reader), 200, ""},
		{"not canonical", traefik("GET", "/status/../api/contacts/7", reader), 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, srv.client, "GET", srv.url+"/auth", tc.edit)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tc.status, r.body)
			}
			if got := r.header.Get("X-Auth-Subject"); got != tc.subject {
				t.Errorf("X-Auth-Subject %q, want %q", got, tc.subject)
			}
			switch tc.status {
			case 200:
				if tc.subject != "" && r.header.Get("X-Auth-Scopes") == "" {
					t.Errorf("no X-Auth-Scopes")
				}
			case 401:
				if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="api"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
			case 403:
				if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_scope"`) || !strings.Contains(got, `scope="`) {
					t.Errorf("WWW-Authenticate %q", got)
				}
			}
		})
	}
}

// TestConfigErrors: every problem is reported at once, naming its variable,
// with exit status 2 and nothing listening.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	badRules := writeFile(t, "rules.yaml", "routes:\n  - match: \"GET /a\"\n    scopse: [x]\n")
	badJWKS := writeFile(t, "jwks.json", `{"keys": []}`)
	for _, tc := range []struct {
		name  string
		env   map[string]string
		wants []string
	}{
		{
			name: "nothing set",
			env:  map[string]string{},
			wants: []string{
				"TOKENWARD_ISSUERS is not set",
				"TOKENWARD_AUDIENCES is not set",
				"TOKENWARD_UPSTREAM is not set",
			},
		},
		{
			name: "everything wrong",
			env: map[string]string{
				"TOKENWARD_ISSUERS":                   "http://login.example.com/, https://tenant.auth0.com/",
				"TOKENWARD_AUDIENCES":                 audience,
				"TOKENWARD_JWKS_URIS":                 "https://tenant.auth0.com/=file://" + badJWKS + ",https://unknown.example.com/=https://unknown.example.com/jwks,nonsense",
				"TOKENWARD_ALGORITHMS":                "RS256,HS256,RS257",
				"TOKENWARD_LEEWAY":                    "thirty seconds",
				"TOKENWARD_RULES_FILE":                badRules,
				"TOKENWARD_MODE":                      "sidecar",
				"TOKENWARD_CLAIM_HEADERS":             "sub=X-Auth-Subject,email",
				"TOKENWARD_MAX_TOKEN_BYTES":           "-5",
				"TOKENWARD_CACHE_SIZE":                "-1",
				"TOKENWARD_CACHE_MAX_BYTES":           "64MiB",
				"TOKENWARD_JWKS_REFRESH_INTERVAL":     "-1m",
				"TOKENWARD_JWKS_MIN_REFRESH_INTERVAL": "10",
				"TOKENWARD_STRIP_AUTHORIZATION":       "yes please",
				"TOKENWARD_SHUTDOWN_GRACE":            "-1s",
				"TOKENWARD_LOG_FORMAT":                "xml",
				"TOKENWARD_UPSTREAM_TRANSPORT":        "fast",
			},
			wants: []string{
				`TOKENWARD_ISSUERS: "http://login.example.com/" must use https`,
				"TOKENWARD_JWKS_URIS: key set of https://tenant.auth0.com/",
				"TOKENWARD_JWKS_URIS: https://unknown.example.com/ is not one of TOKENWARD_ISSUERS",
				`TOKENWARD_JWKS_URIS: "nonsense" is not issuer=url`,
				`TOKENWARD_ALGORITHMS: "HS256" is never accepted`,
				`TOKENWARD_ALGORITHMS: "RS257" is not supported`,
				`TOKENWARD_LEEWAY: "thirty seconds" is not a duration`,
				"TOKENWARD_RULES_FILE: rules: unmarshal errors: line 3: field scopse not found",
				`TOKENWARD_MODE: "sidecar" is neither proxy nor forward-auth`,
				`TOKENWARD_CLAIM_HEADERS: "email" is not claim=Header`,
				"TOKENWARD_MAX_TOKEN_BYTES: -5 must be a positive",
				"TOKENWARD_CACHE_SIZE: -1 is negative",
				`TOKENWARD_CACHE_MAX_BYTES: "64MiB" is not a whole number`,
				"TOKENWARD_JWKS_REFRESH_INTERVAL: -1m0s must be positive",
				`TOKENWARD_JWKS_MIN_REFRESH_INTERVAL: "10" is not a duration`,
				`TOKENWARD_STRIP_AUTHORIZATION: "yes please" is not true or false`,
				"TOKENWARD_SHUTDOWN_GRACE: -1s is negative",
				`TOKENWARD_LOG_FORMAT: "xml" is neither json nor text`,
				`TOKENWARD_UPSTREAM_TRANSPORT: "fast" is neither lean nor standard`,
			},
		},
		{
			name: "opaque tokens and deny list, no secret echoed",
			env: map[string]string{
				"TOKENWARD_ISSUERS":                          "https://tenant.auth0.com/",
				"TOKENWARD_AUDIENCES":                        audience,
				"TOKENWARD_UPSTREAM":                         "http://127.0.0.1:3000",
				"TOKENWARD_OPAQUE_TOKENS":                    "introspection",
				"TOKENWARD_OPAQUE_ISSUER":                    "https://other.example.com/",
				"TOKENWARD_INTROSPECTION_CLIENT_SECRET":      "hunter2",
				"TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE": writeFile(t, "secret", "hunter2\n"),
				"TOKENWARD_OPAQUE_TIMEOUT":                   "0s",
				"TOKENWARD_OPAQUE_CACHE_SIZE":                "-1",
				"TOKENWARD_DENYLIST_URL":                     "https://svc:hunter2@lists.example.com/deny.json",
				"TOKENWARD_DENYLIST_INTERVAL":                "often",
			},
			wants: []string{
				"TOKENWARD_OPAQUE_ISSUER: https://other.example.com/ is not one of TOKENWARD_ISSUERS",
				"TOKENWARD_INTROSPECTION_CLIENT_ID is not set",
				"TOKENWARD_INTROSPECTION_CLIENT_SECRET and TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE are both set",
				"TOKENWARD_OPAQUE_TIMEOUT: 0s must be positive",
				"TOKENWARD_OPAQUE_CACHE_SIZE: -1 is negative",
				`TOKENWARD_DENYLIST_URL: "https://REDACTED@lists.example.com/deny.json" must not have user info`,
				`TOKENWARD_DENYLIST_INTERVAL: "often" is not a duration`,
			},
		},
		{
			name: "unknown opaque mode, two deny lists",
			env: map[string]string{
				"TOKENWARD_ISSUERS":       "https://tenant.auth0.com/",
				"TOKENWARD_AUDIENCES":     audience,
				"TOKENWARD_UPSTREAM":      "http://127.0.0.1:3000",
				"TOKENWARD_OPAQUE_TOKENS": "jwt-only",
				"TOKENWARD_DENYLIST_FILE": "/nonexistent/deny.json",
				"TOKENWARD_DENYLIST_URL":  "https://lists.example.com/deny.json",
			},
			wants: []string{
				`TOKENWARD_OPAQUE_TOKENS: "jwt-only" is not one of reject (the default), introspection, userinfo`,
				"TOKENWARD_DENYLIST_FILE and TOKENWARD_DENYLIST_URL are both set",
			},
		},
		{
			name: "secret file missing, deny list file missing",
			env: map[string]string{
				"TOKENWARD_ISSUERS":                          "https://tenant.auth0.com/",
				"TOKENWARD_AUDIENCES":                        audience,
				"TOKENWARD_UPSTREAM":                         "http://127.0.0.1:3000",
				"TOKENWARD_OPAQUE_TOKENS":                    "introspection",
				"TOKENWARD_INTROSPECTION_CLIENT_ID":          "tokenward-proxy",
				"TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE": "/nonexistent/secret",
				"TOKENWARD_DENYLIST_FILE":                    "/nonexistent/deny.json",
			},
			wants: []string{
				"TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE: secret file: open /nonexistent/secret: no such file or directory",
				"TOKENWARD_DENYLIST_FILE: stat /nonexistent/deny.json: no such file or directory",
			},
		},
		{
			name: "proxy mode problems, no secret echoed",
			env: map[string]string{
				"TOKENWARD_ISSUERS":     "https://tenant.auth0.com/",
				"TOKENWARD_AUDIENCES":   audience,
				"TOKENWARD_UPSTREAM":    "http://svc:hunter2@127.0.0.1:3000",
				"TOKENWARD_LISTEN_ADDR": "8080",
				"TOKENWARD_ADMIN_ADDR":  "127.0.0.1:90000",
			},
			wants: []string{
				"TOKENWARD_UPSTREAM: http://REDACTED@127.0.0.1:3000 must not have user info",
				`TOKENWARD_LISTEN_ADDR: "8080" is not host:port`,
				`TOKENWARD_ADMIN_ADDR: "127.0.0.1:90000" has no valid port number`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, tc.env, nil)
			if code := p.exit(t); code != 2 {
				t.Fatalf("exit status %d, want 2", code)
			}
			out := p.stderr.String()
			for _, want := range tc.wants {
				if !strings.Contains(out, want) {
					t.Errorf("stderr lacks %q", want)
				}
			}
			if n := strings.Count(out, "\n  - "); n != len(tc.wants) {
				t.Errorf("%d problems reported, want %d", n, len(tc.wants))
			}
			if strings.Contains(out, "listening") {
				t.Errorf("it listened")
			}
			if strings.Contains(out, "hunter2") {
				t.Errorf("a password was printed")
			}
			if t.Failed() {
				t.Logf("stderr:\n%s", out)
			}
		})
	}
}

// TestInspect: inspect decodes a token and says whether, and why not, the
// configured proxy would accept it; it contacts only the issuer the token
// names.
func TestInspect(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	bystander := newIssuer(t) // trusted, but not named by the tokens
	now := time.Now()
	env := map[string]string{
		"TOKENWARD_ISSUERS":    iss.URL() + "," + bystander.URL(),
		"TOKENWARD_AUDIENCES":  audience,
		"TOKENWARD_RULES_FILE": testRulesFile(t),
	}
	expired := mint(t, iss, map[string]any{"iat": now.Add(-4 * time.Hour).Unix(), "exp": now.Add(-3 * time.Hour).Unix()})
	valid := mint(t, iss, map[string]any{"scope": "write:contacts"})
	wrongAud := mint(t, iss, map[string]any{"aud": []string{"https://other.example.com"}})
	stranger, err := jwkstest.NewKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	unknownKid, err := stranger.Sign(map[string]any{"kid": "rotated-away"}, iss.Claims(audience, nil))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		env   map[string]string
		args  []string
		stdin string
		code  int
		wants []string
	}{
		{"expired", env, []string{"inspect", expired}, "", 1, []string{
			`"alg": "RS256"`, `"sub": "auth0|test-user"`, "(3h0m0s ago)",
			"REJECTED: token expired", "reason:  expired", "detail:  expired 3h0m0s ago", "answer:  401 invalid_token",
		}},
		{"valid, from stdin", env, []string{"inspect", "-"}, "Bearer " + valid + "\n", 0, []string{
			"ACCEPTED", "subject:  auth0|test-user", "scopes:   write:contacts",
		}},
		{"valid, but not for the route", env, []string{"inspect", "-path", "/api/contacts/1", valid}, "", 1, []string{
			"REJECTED: insufficient scope", `the route "GET /api/contacts/" needs "read:contacts"`, "answer:  403 insufficient_scope",
		}},
		{"wrong audience", env, []string{"inspect", wrongAud}, "", 1, []string{
			"REJECTED: audience not accepted", `detail:  aud ["https://other.example.com"] has none of ["` + audience + `"]`,
		}},
		{"unknown kid", env, []string{"inspect", unknownKid}, "", 1, []string{
			"REJECTED: signing key not found", `kid "rotated-away" not in the key set of ` + iss.URL(), "keys:    1 loaded from " + iss.JWKSURL(),
		}},
		{"no configuration", map[string]string{}, []string{"inspect", expired}, "", 1, []string{
			`"alg": "RS256"`, "NOT VERIFIED: cannot verify without configuration",
		}},
		{"configuration error", map[string]string{"TOKENWARD_ISSUERS": "http://example.com/"}, []string{"inspect", valid}, "", 2, []string{
			`"alg": "RS256"`,
		}},
		{"not a JWT", env, []string{"inspect", "2YotnFZFEjr1zCsicMWpAA"}, "", 1, []string{
			"opaque token", "REJECTED",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, tc.env, strings.NewReader(tc.stdin), tc.args...)
			code := p.exit(t)
			out := p.stdout.String()
			if code != tc.code {
				t.Errorf("exit status %d, want %d", code, tc.code)
			}
			for _, want := range tc.wants {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			for _, tok := range []string{expired, valid, wrongAud, unknownKid} {
				if sig := tok[strings.LastIndexByte(tok, '.')+1:]; strings.Contains(out, sig) {
					t.Errorf("the output shows a signature")
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", out, p.stderr.String())
			}
		})
	}
	if n := bystander.DiscoveryRequests() + bystander.JWKSRequests(); n != 0 {
		t.Errorf("inspect contacted an issuer the tokens do not name (%d requests)", n)
	}
}

// TestDemo: the demo starts (falling back from a busy port), and each
// printed command gets the status printed next to it.
func TestDemo(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p := start(t, map[string]string{}, nil, "demo", "-addr", busy.Addr().String())
	p.stdout.wait(t, "the demo's last line", func(s string) bool { return strings.HasPrefix(s, "Press Ctrl-C") })
	out := p.stdout.String()
	if !strings.Contains(out, busy.Addr().String()+" is busy") {
		t.Errorf("no word of the busy port:\n%s", out)
	}

	expectRe := regexp.MustCompile(`^# expect (\d{3}) `)
	curlRe := regexp.MustCompile(`^curl -i(?: --path-as-is)?(?: -X ([A-Z]+))?(?: -H 'Authorization: Bearer ([A-Za-z0-9._-]+)')? '(http://[^'\s]+)'$`)
	client := newClient(t)
	statuses := map[int]int{}
	outLines := strings.Split(out, "\n")
	for i, line := range outLines {
		m := expectRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if i+1 >= len(outLines) {
			t.Fatalf("no command after %q", line)
		}
		c := curlRe.FindStringSubmatch(outLines[i+1])
		if c == nil {
			t.Fatalf("not a curl command we can run: %q", outLines[i+1])
		}
		want, _ := strconv.Atoi(m[1])
		method := c[1]
		if method == "" {
			method = "GET"
		}
		var edit func(*http.Request)
		if c[2] != "" {
			edit = bearer(c[2])
		}
		r := do(t, client, method, c[3], edit)
		if r.status != want {
			t.Errorf("%s: got %d; body %s", line, r.status, r.body)
		}
		if want == 200 && c[2] != "" && !strings.Contains(string(r.body), `"X-Auth-Subject"`) {
			t.Errorf("%s: the echo API got no identity: %s", line, r.body)
		}
		statuses[want]++
	}
	for _, s := range []int{200, 400, 401, 403} {
		if statuses[s] == 0 {
			t.Errorf("no command expecting %d", s)
		}
	}
	if statuses[401] < 3 {
		t.Errorf("want commands for an expired token, another audience and no token (401): %v", statuses)
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := p.exit(t); code != 0 {
		t.Fatalf("exit status %d after Ctrl-C, want 0", code)
	}
}

// TestVersionAndHelp covers the small subcommands.
func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"version"}, 0, runtime.Version(), ""},
		{[]string{"help"}, 0, "tokenward inspect", ""},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			p := start(t, map[string]string{}, nil, tc.args...)
			if code := p.exit(t); code != tc.code {
				t.Errorf("exit status %d, want %d", code, tc.code)
			}
			if !strings.Contains(p.stdout.String(), tc.stdout) {
				t.Errorf("stdout %q lacks %q", p.stdout.String(), tc.stdout)
			}
			if !strings.Contains(p.stderr.String(), tc.stderr) {
				t.Errorf("stderr %q lacks %q", p.stderr.String(), tc.stderr)
			}
			if tc.code == 2 && !strings.Contains(p.stderr.String(), "README") {
				t.Errorf("the usage does not point at the README")
			}
		})
	}
}
