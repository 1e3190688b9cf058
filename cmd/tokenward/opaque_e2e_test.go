package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOpaqueIntrospection: opaque tokens checked with the issuer's RFC 7662
// endpoint (found by discovery) with client_secret_basic, the secret from a
// file; answers cached, so a token seen before costs the issuer nothing.
func TestOpaqueIntrospection(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	const secret = "s3cret-of-the-introspection-client"
	iss.SetIntrospectionClient("tokenward-proxy", secret)
	up := echoUpstream(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":                          iss.URL(),
		"TOKENWARD_AUDIENCES":                        audience,
		"TOKENWARD_UPSTREAM":                         up.URL,
		"TOKENWARD_RULES_FILE":                       testRulesFile(t),
		"TOKENWARD_OPAQUE_TOKENS":                    "introspection",
		"TOKENWARD_INTROSPECTION_CLIENT_ID":          "tokenward-proxy",
		"TOKENWARD_INTROSPECTION_CLIENT_SECRET_FILE": writeFile(t, "client-secret", secret+"\n"),
		"TOKENWARD_OPAQUE_TIMEOUT":                   "500ms",
	})
	srv.stderr.waitLog(t, "opaque: endpoint discovered", "endpoint", iss.IntrospectionURL())

	valid := iss.MintOpaque(iss.Claims(audience, map[string]any{"sub": "auth0|opaque-alice", "scope": "read:contacts"}))
	wrongAud := iss.MintOpaque(iss.Claims("https://other.example.com", map[string]any{"scope": "read:contacts"}))
	noScope := iss.MintOpaque(iss.Claims(audience, map[string]any{"scope": "openid"}))
	const unknown = "2YotnFZFEjr1zCsicMWpAA"
	calls := func() int64 { return iss.IntrospectionRequests() }

	r := do(t, srv.client, "GET", srv.url+"/api/contacts/1", bearer(valid))
	if r.status != 200 {
		t.Fatalf("valid opaque token: status %d, body %s", r.status, r.body)
	}
	if got := r.seen(t).Header.Get("X-Auth-Subject"); got != "auth0|opaque-alice" {
		t.Errorf("X-Auth-Subject %q, want the introspection answer's sub", got)
	}
	if n := calls(); n != 1 {
		t.Fatalf("%d introspection requests, want 1", n)
	}
	if r := do(t, srv.client, "GET", srv.url+"/api/contacts/2", bearer(valid)); r.status != 200 {
		t.Fatalf("valid opaque token again: status %d, body %s", r.status, r.body)
	}
	if n := calls(); n != 1 {
		t.Errorf("the second request asked the issuer again: %d introspection requests, want 1", n)
	}

	for _, tc := range []struct {
		name   string
		token  string
		status int
		code   string
		desc   string
	}{
		{"unknown opaque token", unknown, 401, "invalid_token", "token not active"},
		{"another audience", wrongAud, 401, "invalid_token", "audience not accepted"},
		{"missing the route's scope", noScope, 403, "insufficient_scope", ""},
	} {
		before := calls()
		r := do(t, srv.client, "GET", srv.url+"/api/contacts/1", bearer(tc.token))
		if r.status != tc.status {
			t.Errorf("%s: status %d, want %d; body %s", tc.name, r.status, tc.status, r.body)
			continue
		}
		body := r.json(t)
		if body["error"] != tc.code {
			t.Errorf("%s: error %v, want %s", tc.name, body["error"], tc.code)
		}
		if d, _ := body["error_description"].(string); !strings.Contains(d, tc.desc) {
			t.Errorf("%s: error_description %q, want %q", tc.name, d, tc.desc)
		}
		if n := calls() - before; n != 1 {
			t.Errorf("%s: %d introspection requests, want 1", tc.name, n)
		}
	}
	// A refusal is cached too (briefly).
	before := calls()
	if r := do(t, srv.client, "GET", srv.url+"/api/contacts/1", bearer(unknown)); r.status != 401 {
		t.Errorf("unknown opaque token again: status %d", r.status)
	}
	if n := calls() - before; n != 0 {
		t.Errorf("the refusal was not cached: %d introspection requests", n)
	}

	t.Run("slow issuer: 503 within the timeout, never accepted", func(t *testing.T) {
		iss.SetDelay(waitTimeout)
		defer iss.SetDelay(0)
		fresh := iss.MintOpaque(iss.Claims(audience, map[string]any{"scope": "read:contacts"}))
		began := time.Now()
		r := do(t, srv.client, "GET", srv.url+"/api/contacts/1", bearer(fresh))
		took := time.Since(began)
		if r.status != 503 {
			t.Fatalf("status %d, want 503; body %s", r.status, r.body)
		}
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra <= 0 {
			t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
		}
		if took > 5*time.Second {
			t.Errorf("answered after %v with TOKENWARD_OPAQUE_TIMEOUT=500ms", took)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		r := do(t, srv.client, "GET", srv.adminURL+"/metrics", nil)
		for _, want := range []string{
			// valid (miss, then hit), another audience and no scope (active
			// answers the validator or the route then refuse), unknown
			// (inactive, then a cached inactive), the slow issuer (error).
			`tokenward_opaque_checks_total{cache="miss",result="active"} 3` + "\n",
			`tokenward_opaque_checks_total{cache="hit",result="active"} 1` + "\n",
			`tokenward_opaque_checks_total{cache="miss",result="inactive"} 1` + "\n",
			`tokenward_opaque_checks_total{cache="hit",result="inactive"} 1` + "\n",
			`tokenward_opaque_checks_total{cache="miss",result="error"} 1` + "\n",
			`tokenward_opaque_checks_total{cache="hit",result="error"} 0` + "\n",
			`tokenward_requests_total{outcome="denied",reason="inactive"} 2` + "\n",
			`tokenward_requests_total{outcome="denied",reason="issuer_unavailable"} 1` + "\n",
			"tokenward_token_cache_hits_total ",
			"tokenward_token_cache_entries ",
		} {
			if !strings.Contains(string(r.body), want) {
				t.Errorf("/metrics has no %q", strings.TrimSpace(want))
			}
		}
	})

	t.Run("logs hold neither tokens nor the secret", func(t *testing.T) {
		logs := srv.stderr.String()
		for _, s := range []string{valid, wrongAud, noScope, unknown, secret} {
			if strings.Contains(logs, s) {
				t.Fatalf("the logs contain a token or the client secret")
			}
		}
	})
}

// TestOpaqueUserInfo: Auth0's opaque tokens, checked with /userinfo at a
// configured URL: the profile's sub reaches the upstream; such a token has
// no scopes, so a scoped route answers 403.
func TestOpaqueUserInfo(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	up := echoUpstream(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":       iss.URL(),
		"TOKENWARD_AUDIENCES":     audience,
		"TOKENWARD_UPSTREAM":      up.URL,
		"TOKENWARD_RULES_FILE":    testRulesFile(t),
		"TOKENWARD_OPAQUE_TOKENS": "userinfo",
		"TOKENWARD_USERINFO_URL":  iss.UserInfoURL(),
	})
	// As Auth0 issues it without an API audience: good for /userinfo only.
	token := iss.MintOpaque(iss.Claims(iss.URL()+"userinfo", map[string]any{"sub": "auth0|opaque-bob", "email": "bob@example.com"}))

	r := do(t, srv.client, "GET", srv.url+"/elsewhere", bearer(token))
	if r.status != 200 {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	if got := r.seen(t).Header.Get("X-Auth-Subject"); got != "auth0|opaque-bob" {
		t.Errorf("X-Auth-Subject %q", got)
	}
	r = do(t, srv.client, "GET", srv.url+"/api/contacts/1", bearer(token))
	if r.status != 403 || !strings.Contains(r.header.Get("WWW-Authenticate"), `scope="read:contacts"`) {
		t.Errorf("scoped route: status %d, WWW-Authenticate %q; want 403 insufficient_scope", r.status, r.header.Get("WWW-Authenticate"))
	}
	if n := iss.UserInfoRequests(); n != 1 {
		t.Errorf("%d /userinfo requests, want 1 (the second answered from the cache)", n)
	}
	if r := do(t, srv.client, "GET", srv.url+"/elsewhere", bearer("not-a-token-of-this-issuer")); r.status != 401 {
		t.Errorf("unknown token: status %d", r.status)
	}
}

// TestOpaqueClientCredentials: a machine-to-machine token (client_credentials)
// has no sub, as the README says, so the upstream gets no X-Auth-Subject (a
// copy the client sent is removed too) but the calling client in the header
// configured for client_id.
func TestOpaqueClientCredentials(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	iss.SetIntrospectionClient("tokenward-proxy", "hunter2")
	up := echoUpstream(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":                     iss.URL(),
		"TOKENWARD_AUDIENCES":                   audience,
		"TOKENWARD_UPSTREAM":                    up.URL,
		"TOKENWARD_RULES_FILE":                  testRulesFile(t),
		"TOKENWARD_OPAQUE_TOKENS":               "introspection",
		"TOKENWARD_INTROSPECTION_URL":           iss.IntrospectionURL(),
		"TOKENWARD_INTROSPECTION_CLIENT_ID":     "tokenward-proxy",
		"TOKENWARD_INTROSPECTION_CLIENT_SECRET": "hunter2",
		"TOKENWARD_CLAIM_HEADERS":               "sub=X-Auth-Subject,client_id=X-Auth-Client",
	})
	token := iss.MintOpaque(iss.Claims(audience, map[string]any{
		"sub": nil, "client_id": "billing-batch", "scope": "read:contacts",
	}))
	r := do(t, srv.client, "GET", srv.url+"/api/contacts/1", func(r *http.Request) {
		bearer(token)(r)
		r.Header.Set("X-Auth-Subject", "auth0|admin") // a forged identity
	})
	if r.status != 200 {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	h := r.seen(t).Header
	if got, ok := h["X-Auth-Subject"]; ok {
		t.Errorf("X-Auth-Subject %q reached the upstream for a token without sub", got)
	}
	if got := h.Get("X-Auth-Client"); got != "billing-batch" {
		t.Errorf("X-Auth-Client %q, want the introspection answer's client_id", got)
	}
}

// TestOpaqueWrongClientSecret: an issuer that refuses tokenward's client
// credentials makes opaque tokens 503, never accepted; the secret from the
// environment is never printed.
func TestOpaqueWrongClientSecret(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	iss.SetIntrospectionClient("tokenward-proxy", "the-right-secret")
	up := echoUpstream(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":                     iss.URL(),
		"TOKENWARD_AUDIENCES":                   audience,
		"TOKENWARD_UPSTREAM":                    up.URL,
		"TOKENWARD_OPAQUE_TOKENS":               "introspection",
		"TOKENWARD_INTROSPECTION_URL":           iss.IntrospectionURL(),
		"TOKENWARD_INTROSPECTION_CLIENT_ID":     "tokenward-proxy",
		"TOKENWARD_INTROSPECTION_CLIENT_SECRET": "hunter2-is-wrong",
	})
	token := iss.MintOpaque(iss.Claims(audience, nil))
	r := do(t, srv.client, "GET", srv.url+"/api", bearer(token))
	if r.status != 503 {
		t.Fatalf("status %d, want 503; body %s", r.status, r.body)
	}
	srv.stderr.waitLog(t, "opaque: issuer check failed", "check", "introspection")
	if strings.Contains(srv.stderr.String(), "hunter2") {
		t.Errorf("the logs contain the client secret")
	}
}

// TestDenyListRevocation: a token on the deny list file is refused after
// the file changes, without a restart, whether or not it is in the
// verified-token cache; a malformed list keeps the list in force.
func TestDenyListRevocation(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	up := echoUpstream(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "denylist.json")
	// Written as it should be in production: elsewhere, then renamed.
	write := func(content string) {
		t.Helper()
		tmp := filepath.Join(dir, ".denylist.json.tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, list); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"jti": []}`)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":           iss.URL(),
		"TOKENWARD_AUDIENCES":         audience,
		"TOKENWARD_UPSTREAM":          up.URL,
		"TOKENWARD_DENYLIST_FILE":     list,
		"TOKENWARD_DENYLIST_INTERVAL": "100ms",
	})
	// The binary logs every load and failed reload: wait on those lines,
	// counting, instead of sleeping.
	loaded := func(jti, n int) {
		t.Helper()
		seen := 0
		srv.stderr.wait(t, fmt.Sprintf("deny list load #%d with %d jti", n, jti), func(s string) bool {
			l := parseLog(s)
			if l.str("msg") != "denylist: loaded" {
				return false
			}
			if v, _ := l["jti"].(float64); int(v) == jti {
				seen++
			}
			return seen == n
		})
	}
	loaded(0, 1)

	revoked := mint(t, iss, map[string]any{"jti": "7d4c2e9a-revoke-me"})
	other := mint(t, iss, map[string]any{"jti": "0b1f-keep-me"})
	for range 2 { // the second from the verified-token cache
		if r := do(t, srv.client, "GET", srv.url+"/api", bearer(revoked)); r.status != 200 {
			t.Fatalf("before revocation: status %d, body %s", r.status, r.body)
		}
	}

	write(`{"jti": ["7d4c2e9a-revoke-me"]}`)
	loaded(1, 1)
	r := do(t, srv.client, "GET", srv.url+"/api", bearer(revoked))
	if r.status != 401 {
		t.Fatalf("after revocation: status %d, want 401; body %s", r.status, r.body)
	}
	if d, _ := r.json(t)["error_description"].(string); d != "token revoked" || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("after revocation: %s, WWW-Authenticate %q", r.body, r.header.Get("WWW-Authenticate"))
	}
	if r := do(t, srv.client, "GET", srv.url+"/api", bearer(other)); r.status != 200 {
		t.Errorf("a token not on the list: status %d", r.status)
	}

	metrics := do(t, srv.client, "GET", srv.adminURL+"/metrics", nil).body
	for _, want := range []string{
		"tokenward_denylist_entries 1\n",
		"tokenward_denylist_reload_errors_total 0\n",
		"tokenward_denylist_last_reload_timestamp_seconds ",
		"tokenward_denylist_last_check_timestamp_seconds ",
		`tokenward_requests_total{outcome="denied",reason="revoked"} 1` + "\n",
		"tokenward_token_cache_hits_total ",
		"tokenward_token_cache_misses_total ",
		"tokenward_token_cache_evictions_total 0\n",
		"tokenward_token_cache_entries ",
		"tokenward_token_cache_bytes ",
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics has no %q", strings.TrimSpace(want))
		}
	}
	if strings.Contains(string(metrics), "tokenward_token_cache_hits_total 0\n") {
		t.Errorf("no verified-token cache hit counted")
	}

	// A malformed list is reported and the list in force stays.
	write(`{"jti": ["7d4c2e9a-revoke-me"`)
	srv.stderr.waitLog(t, "denylist: reload failed; the list in force stays")
	if r := do(t, srv.client, "GET", srv.url+"/api", bearer(revoked)); r.status != 401 {
		t.Errorf("after a malformed list: status %d, want 401 (the list in force stays)", r.status)
	}
	if m := do(t, srv.client, "GET", srv.adminURL+"/metrics", nil).body; !strings.Contains(string(m), "tokenward_denylist_reload_errors_total 1\n") {
		t.Errorf("reload error not counted")
	}

	// Taken off the list, the token is accepted again.
	write(`{"jti": []}`)
	loaded(0, 2)
	if r := do(t, srv.client, "GET", srv.url+"/api", bearer(revoked)); r.status != 200 {
		t.Errorf("after removal from the list: status %d", r.status)
	}
}

// TestStartFailures: what must be there before serving — the deny list, the
// opaque-token endpoint — stops the start when it is not, with a message
// naming the variable; a discovery that fails at first is retried. The
// failures run in process (runToExit), where the retries are 1 ms apart
// rather than the binary's 0.5, 1 and 2 s; the retry that succeeds runs the
// binary.
func TestStartFailures(t *testing.T) {
	t.Parallel()
	up := echoUpstream(t)
	base := func(issuer string, kv ...string) map[string]string {
		m := map[string]string{
			"TOKENWARD_ISSUERS":     issuer,
			"TOKENWARD_AUDIENCES":   audience,
			"TOKENWARD_UPSTREAM":    up.URL,
			"TOKENWARD_LISTEN_ADDR": "127.0.0.1:0",
			"TOKENWARD_ADMIN_ADDR":  "127.0.0.1:0",
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	introspection := []string{
		"TOKENWARD_OPAQUE_TOKENS", "introspection",
		"TOKENWARD_INTROSPECTION_CLIENT_ID", "tokenward-proxy",
		"TOKENWARD_INTROSPECTION_CLIENT_SECRET", "hunter2",
	}

	// An issuer whose discovery document lists /userinfo but no
	// introspection endpoint, as Auth0's does.
	var noIntrospection *httptest.Server
	noIntrospection = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer": %q, "userinfo_endpoint": %q, "jwks_uri": %q}`,
			noIntrospection.URL+"/", noIntrospection.URL+"/userinfo", noIntrospection.URL+"/.well-known/jwks.json")
	}))
	t.Cleanup(noIntrospection.Close)

	down := newIssuer(t)
	down.SetDown(true)
	deadList := "http://" + closedAddr(t) + "/denylist.json"

	// No list is in force before the first load: no log line may say that
	// one stays.
	firstLoad := "denylist: load failed; no list has loaded yet, so nothing is revoked"
	for _, tc := range []struct {
		name     string
		env      map[string]string
		code     int
		wants    []string
		notWants []string
	}{
		{"malformed deny list file", base(down.URL(), "TOKENWARD_DENYLIST_FILE", writeFile(t, "deny.json", `{"jti": "not-a-list"}`)), 2, []string{
			"TOKENWARD_DENYLIST_FILE: the list is not valid", "nothing would be revoked, so tokenward does not start", firstLoad,
		}, []string{"in force stays"}},
		{"deny list with a member twice", base(down.URL(), "TOKENWARD_DENYLIST_FILE", writeFile(t, "deny.json", `{"jti":["a"],"jti":["b"]}`)), 2, []string{
			`TOKENWARD_DENYLIST_FILE: the list: member "jti" appears twice`, "does not start", firstLoad,
		}, []string{"in force stays"}},
		{"deny list URL unreachable", base(down.URL(), "TOKENWARD_DENYLIST_URL", deadList), 1, []string{
			"TOKENWARD_DENYLIST_URL: the first load failed (4 attempts)", "does not start", firstLoad,
		}, []string{"in force stays"}},
		{"no introspection endpoint in discovery", base(noIntrospection.URL+"/", introspection...), 2, []string{
			"TOKENWARD_INTROSPECTION_URL is not set, and the discovery document of " + noIntrospection.URL + "/ lists no introspection_endpoint",
		}, nil},
		{"discovery fails", base(down.URL(), introspection...), 1, []string{
			"the introspection_endpoint of " + down.URL() + " could not be discovered (4 attempts)",
			"status 503", "set TOKENWARD_INTROSPECTION_URL to start without discovery",
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out := runToExit(t, tc.env)
			if code != tc.code {
				t.Fatalf("exit status %d, want %d", code, tc.code)
			}
			for _, want := range tc.wants {
				if !strings.Contains(out, want) {
					t.Errorf("stderr lacks %q", want)
				}
			}
			for _, no := range tc.notWants {
				if strings.Contains(out, no) {
					t.Errorf("stderr has %q", no)
				}
			}
			if strings.Contains(out, `"msg":"listening"`) {
				t.Errorf("it listened")
			}
			if strings.Contains(out, "hunter2") {
				t.Errorf("the client secret was printed")
			}
			if t.Failed() {
				t.Logf("stderr:\n%s", out)
			}
		})
	}

	t.Run("discovery retried until the issuer is back", func(t *testing.T) {
		t.Parallel()
		iss := newIssuer(t)
		iss.SetDown(true)
		iss.SetIntrospectionClient("tokenward-proxy", "hunter2")
		p := start(t, base(iss.URL(), introspection...), nil)
		p.stderr.waitLog(t, "opaque: discovery failed; retrying")
		iss.SetDown(false)
		p.stderr.waitLog(t, "opaque: endpoint discovered", "endpoint", iss.IntrospectionURL())
		p.stderr.waitLog(t, "listening", "server", "admin")
	})
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// runToExit calls run as main does, with exactly env as its environment, and
// returns the exit status main would give and what run wrote to stderr.
// TestMain shortens startBackoff for such runs.
func runToExit(t *testing.T, env map[string]string) (code int, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	out := newLines()
	err := run(ctx, nil, mapGetenv(env), io.Discard, out)
	if ctx.Err() != nil {
		t.Fatalf("run did not return within %s; stderr:\n%s", waitTimeout, out)
	}
	return exitCode(err), out.String()
}

// TestDenyListSIGHUP: SIGHUP checks the deny list at once, so an operator
// who has just revoked a token need not wait for the interval (here an
// hour, so that only the signal explains the refusal).
func TestDenyListSIGHUP(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	up := echoUpstream(t)
	list := writeFile(t, "denylist.json", `{"jti": []}`)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":           iss.URL(),
		"TOKENWARD_AUDIENCES":         audience,
		"TOKENWARD_UPSTREAM":          up.URL,
		"TOKENWARD_DENYLIST_FILE":     list,
		"TOKENWARD_DENYLIST_INTERVAL": "1h",
	})
	token := mint(t, iss, map[string]any{"jti": "stolen-1"})
	if r := do(t, srv.client, "GET", srv.url+"/x", bearer(token)); r.status != http.StatusOK {
		t.Fatalf("status %d before the revocation, want 200", r.status)
	}
	replaceFile(t, list, `{"jti": ["stolen-1"]}`)
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	srv.stderr.wait(t, "the deny list loaded with the revoked jti", func(s string) bool {
		l := parseLog(s)
		v, _ := l["jti"].(float64)
		return l.str("msg") == "denylist: loaded" && v == 1
	})
	if r := do(t, srv.client, "GET", srv.url+"/x", bearer(token)); r.status != http.StatusUnauthorized {
		t.Fatalf("status %d after SIGHUP, want 401 (revoked)", r.status)
	}
}
