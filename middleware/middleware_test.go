package middleware_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/scopes"
)

// answer is what a client got.
type answer struct {
	status int
	header http.Header
	body   string
}

// do sends a GET to url with the given headers (each value a separate
// header line) and cookies.
func do(t testing.TB, method, url string, headers map[string][]string, cookies ...*http.Cookie) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, values := range headers {
		for _, v := range values {
			req.Header.Add(name, v)
		}
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(body)}
}

func bearer(token string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + token}}
}

// errorBody is the JSON of a refusal.
type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Scope       string `json:"scope"`
}

// TestHTTPAnswers covers every row of the HTTP answer table of DESIGN.md,
// through a real server.
func TestHTTPAnswers(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{})
	down := startIssuer(t, jwkstest.Options{})
	down.SetDown(true) // since before its key set exists: keys never loaded
	stay := jwks.RemoteOptions{RefreshInterval: time.Hour, MinRefreshInterval: time.Hour}
	v := newValidator(t, []middleware.Issuer{
		{URL: iss.URL(), Keys: remoteFor(t, iss, stay)},
		{URL: down.URL(), Keys: unloadedRemote(t, down, stay)},
	}, middleware.ValidatorOptions{Revoked: func(c *middleware.Claims) bool { return c.ID == "revoked-jti" }})
	mw, err := middleware.New(v, middleware.Options{Realm: "contacts", Required: scopes.All("read:contacts")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := middleware.ClaimsFrom(r.Context())
		if !ok {
			http.Error(w, "no claims", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "hello %s", c.Subject)
	})))
	defer srv.Close()

	read := map[string]any{"scope": "read:contacts"}
	stranger := newKey(t, "RS256")
	valid := mintFor(t, iss, read)
	h, c, s := segments(t, valid)
	mintH := func(header, extra map[string]any) string {
		t.Helper()
		tok, err := iss.MintWithHeader(header, iss.Claims(audience, extra))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	merged := func(extra map[string]any) map[string]any {
		m := map[string]any{"scope": "read:contacts"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	none := b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + c + "."
	downToken, err := down.Mint(down.Claims(audience, read))
	if err != nil {
		t.Fatal(err)
	}

	const (
		bare         = `Bearer realm="contacts"`
		invalidToken = `Bearer realm="contacts", error="invalid_token", error_description="%s"`
		invalidReq   = `Bearer realm="contacts", error="invalid_request", error_description="%s"`
	)
	tests := []struct {
		name       string
		headers    map[string][]string
		token      string // the token sent, which the answer must not contain
		status     int
		challenge  string // exact WWW-Authenticate; "" means none
		retryAfter string
		body       errorBody
	}{
		{name: "valid", headers: bearer(valid), token: valid, status: 200},
		{name: "scheme lower case", headers: map[string][]string{"Authorization": {"bearer " + valid}}, token: valid, status: 200},
		{name: "scheme upper case", headers: map[string][]string{"Authorization": {"BEARER " + valid}}, token: valid, status: 200},
		{name: "no token", status: 401, challenge: bare, body: errorBody{"unauthorized", "no bearer token", ""}},
		{name: "Basic", headers: map[string][]string{"Authorization": {"Basic dXNlcjpwYXNz"}}, status: 401, challenge: bare,
			body: errorBody{"unauthorized", "no bearer token", ""}},
		{name: "no token after Bearer", headers: map[string][]string{"Authorization": {"Bearer"}}, status: 400,
			challenge: fmt.Sprintf(invalidReq, "no token after Bearer"), body: errorBody{"invalid_request", "no token after Bearer", ""}},
		{name: "only spaces after Bearer", headers: map[string][]string{"Authorization": {"Bearer    "}}, status: 400,
			challenge: fmt.Sprintf(invalidReq, "no token after Bearer"), body: errorBody{"invalid_request", "no token after Bearer", ""}},
		{name: "two tokens", headers: map[string][]string{"Authorization": {"Bearer " + valid + " " + valid}}, token: valid, status: 400,
			challenge: fmt.Sprintf(invalidReq, "more than one token"), body: errorBody{"invalid_request", "more than one token", ""}},
		{name: "two tokens, comma", headers: map[string][]string{"Authorization": {"Bearer " + valid + "," + valid}}, token: valid, status: 400,
			challenge: fmt.Sprintf(invalidReq, "more than one token"), body: errorBody{"invalid_request", "more than one token", ""}},
		{name: "two Authorization headers", headers: map[string][]string{"Authorization": {"Bearer " + valid, "Bearer " + valid}}, token: valid,
			status: 400, challenge: fmt.Sprintf(invalidReq, "more than one Authorization header"),
			body: errorBody{"invalid_request", "more than one Authorization header", ""}},
		{name: "token with quotes", headers: map[string][]string{"Authorization": {`Bearer "` + valid + `"`}}, token: valid, status: 400,
			challenge: fmt.Sprintf(invalidReq, "token has characters a bearer token cannot have"),
			body:      errorBody{"invalid_request", "token has characters a bearer token cannot have", ""}},
		{name: "bad signature", headers: bearer(h + "." + c + "." + s[:len(s)-4] + "AAAA"), token: h + "." + c, status: 401,
			challenge: fmt.Sprintf(invalidToken, "signature invalid"), body: errorBody{"invalid_token", "signature invalid", ""}},
		{name: "unknown kid", headers: bearer(sign(t, stranger, nil, iss.Claims(audience, read))), status: 401,
			challenge: fmt.Sprintf(invalidToken, "signing key not found"), body: errorBody{"invalid_token", "signing key not found", ""}},
		{name: "wrong iss", headers: bearer(mintFor(t, iss, merged(map[string]any{"iss": "https://evil.example.com/"}))), status: 401,
			challenge: fmt.Sprintf(invalidToken, "issuer not trusted"), body: errorBody{"invalid_token", "issuer not trusted", ""}},
		{name: "wrong aud", headers: bearer(mintFor(t, iss, merged(map[string]any{"aud": "https://other.example.com"}))), status: 401,
			challenge: fmt.Sprintf(invalidToken, "audience not accepted"), body: errorBody{"invalid_token", "audience not accepted", ""}},
		{name: "alg not allowed", headers: bearer(mintH(map[string]any{"alg": "HS256"}, read)), status: 401,
			challenge: fmt.Sprintf(invalidToken, "signing algorithm not accepted"), body: errorBody{"invalid_token", "signing algorithm not accepted", ""}},
		{name: "alg none", headers: bearer(none), token: none, status: 401,
			challenge: fmt.Sprintf(invalidToken, "signing algorithm not accepted"), body: errorBody{"invalid_token", "signing algorithm not accepted", ""}},
		{name: "typ dpop+jwt", headers: bearer(mintH(map[string]any{"typ": "dpop+jwt"}, read)), status: 401,
			challenge: fmt.Sprintf(invalidToken, "token type not accepted"), body: errorBody{"invalid_token", "token type not accepted", ""}},
		{name: "typ logout+jwt", headers: bearer(mintH(map[string]any{"typ": "logout+jwt"}, read)), status: 401,
			challenge: fmt.Sprintf(invalidToken, "token type not accepted"), body: errorBody{"invalid_token", "token type not accepted", ""}},
		{name: "crit", headers: bearer(mintH(map[string]any{"crit": []string{"exp"}}, read)), status: 401,
			challenge: fmt.Sprintf(invalidToken, "critical header parameter not supported"),
			body:      errorBody{"invalid_token", "critical header parameter not supported", ""}},
		{name: "expired", headers: bearer(mintFor(t, iss, merged(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}))), status: 401,
			challenge: fmt.Sprintf(invalidToken, "token expired"), body: errorBody{"invalid_token", "token expired", ""}},
		{name: "nbf in the future", headers: bearer(mintFor(t, iss, merged(map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}))), status: 401,
			challenge: fmt.Sprintf(invalidToken, "token not yet valid"), body: errorBody{"invalid_token", "token not yet valid", ""}},
		{name: "iat in the future", headers: bearer(mintFor(t, iss, merged(map[string]any{"iat": time.Now().Add(time.Hour).Unix()}))), status: 401,
			challenge: fmt.Sprintf(invalidToken, "token issued in the future"), body: errorBody{"invalid_token", "token issued in the future", ""}},
		{name: "unparsable", headers: bearer(h + ".bm90IGpzb24." + s), status: 401,
			challenge: fmt.Sprintf(invalidToken, "token claims are not a valid JSON object"),
			body:      errorBody{"invalid_token", "token claims are not a valid JSON object", ""}},
		{name: "opaque", headers: bearer("8f2c0a3e5b1d4f6a9c7e"), token: "8f2c0a3e5b1d4f6a9c7e", status: 401,
			challenge: fmt.Sprintf(invalidToken, "opaque tokens are not accepted here"),
			body:      errorBody{"invalid_token", "opaque tokens are not accepted here", ""}},
		{name: "too large", headers: bearer(strings.Repeat("A", middleware.DefaultMaxTokenBytes+1)), token: strings.Repeat("A", 64), status: 401,
			challenge: fmt.Sprintf(invalidToken, "token too large"), body: errorBody{"invalid_token", "token too large", ""}},
		{name: "revoked", headers: bearer(mintFor(t, iss, merged(map[string]any{"jti": "revoked-jti"}))), status: 401,
			challenge: fmt.Sprintf(invalidToken, "token revoked"), body: errorBody{"invalid_token", "token revoked", ""}},
		{name: "missing scope", headers: bearer(mintFor(t, iss, map[string]any{"scope": "write:contacts"})), status: 403,
			challenge: `Bearer realm="contacts", error="insufficient_scope", error_description="insufficient scope", scope="read:contacts"`,
			body:      errorBody{"insufficient_scope", "insufficient scope", "read:contacts"}},
		{name: "issuer keys never loaded", headers: bearer(downToken), token: downToken, status: 503, retryAfter: "5",
			body: errorBody{"temporarily_unavailable", "issuer keys unavailable", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, http.MethodGet, srv.URL+"/contacts", tt.headers)
			if a.status != tt.status {
				t.Fatalf("status %d, want %d (body %q)", a.status, tt.status, a.body)
			}
			if got := a.header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate:\n got %q\nwant %q", got, tt.challenge)
			}
			if n := len(a.header.Values("WWW-Authenticate")); n > 1 {
				t.Errorf("%d WWW-Authenticate headers", n)
			}
			if got := a.header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			token := tt.token
			if token == "" && len(tt.headers["Authorization"]) > 0 {
				token = strings.TrimPrefix(tt.headers["Authorization"][0], "Bearer ")
			}
			if token != "" && len(token) >= 8 && strings.Contains(a.body, token) {
				t.Errorf("the answer contains the token: %q", a.body)
			}
			if tt.status == 200 {
				if a.body != "hello auth0|test-user" {
					t.Errorf("body %q", a.body)
				}
				return
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := a.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			var got errorBody
			dec := json.NewDecoder(strings.NewReader(a.body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("body %q: %v", a.body, err)
			}
			if got != tt.body {
				t.Errorf("body %+v, want %+v", got, tt.body)
			}
			for _, seg := range strings.Split(token, ".") {
				if len(seg) >= 16 && strings.Contains(a.body, seg) {
					t.Errorf("the answer contains a token segment: %q", a.body)
				}
			}
		})
	}
	if n := iss.JWKSRequests(); n != 1 {
		t.Errorf("%d JWKS requests, want 1: MinRefreshInterval is an hour", n)
	}
}

// A request header past the server's MaxHeaderBytes (64 KiB) gets 431 before
// the middleware runs; a token over MaxTokenBytes but within the header
// limit gets 401 too_large.
func TestOversizeHeader(t *testing.T) {
	key := newKey(t, "RS256")
	mw, err := middleware.New(staticFixture(t, key, middleware.ValidatorOptions{}), middleware.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reached := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- struct{}{}
	})))
	srv.Config.MaxHeaderBytes = 64 << 10
	srv.Start()
	defer srv.Close()

	a := do(t, http.MethodGet, srv.URL, bearer(strings.Repeat("A", 1<<20)))
	if a.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("1 MiB header: status %d, want 431", a.status)
	}
	a = do(t, http.MethodGet, srv.URL, bearer(strings.Repeat("A", 32<<10)))
	if a.status != 401 || !strings.Contains(a.header.Get("WWW-Authenticate"), `error_description="token too large"`) {
		t.Errorf("32 KiB token: %d %q", a.status, a.header.Get("WWW-Authenticate"))
	}
	select {
	case <-reached:
		t.Error("the handler ran")
	default:
	}
}

// A 1 MiB token is refused by size before anything is parsed: no
// allocation at all.
func TestHugeTokenRefusedCheaply(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	huge := strings.Repeat("eyJhbGciOiJSUzI1NiJ9.", 1<<20/21)
	ctx := testContext(t)
	_, err := v.Validate(ctx, huge)
	wantReason(t, nil, err, middleware.ErrTooLarge, huge)
	if allocs := testing.AllocsPerRun(100, func() { v.Validate(ctx, huge) }); allocs != 0 {
		t.Errorf("refusing a 1 MiB token allocates %v times, want 0", allocs)
	}
}

func TestTokenFromCookie(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{})
	v := newValidator(t, []middleware.Issuer{{URL: iss.URL(), Keys: remoteFor(t, iss, jwks.RemoteOptions{})}}, middleware.ValidatorOptions{})
	mw, err := middleware.New(v, middleware.Options{TokenFrom: middleware.FromCookie("access_token")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := middleware.ClaimsFrom(r.Context())
		fmt.Fprint(w, c.Subject)
	})))
	defer srv.Close()
	valid := mintFor(t, iss, nil)
	expired := mintFor(t, iss, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})

	tests := []struct {
		name    string
		headers map[string][]string
		cookie  *http.Cookie
		status  int
	}{
		{"cookie", nil, &http.Cookie{Name: "access_token", Value: valid}, 200},
		{"expired cookie", nil, &http.Cookie{Name: "access_token", Value: expired}, 401},
		{"other cookie", nil, &http.Cookie{Name: "session", Value: valid}, 401},
		{"empty cookie", nil, &http.Cookie{Name: "access_token", Value: ""}, 401},
		{"header wins", bearer(expired), &http.Cookie{Name: "access_token", Value: valid}, 401},
		// The cookie is consulted only without an Authorization header.
		{"Basic header, valid cookie", map[string][]string{"Authorization": {"Basic dXNlcjpwYXNz"}},
			&http.Cookie{Name: "access_token", Value: valid}, 401},
		{"header only", bearer(valid), nil, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cookies []*http.Cookie
			if tt.cookie != nil {
				cookies = append(cookies, tt.cookie)
			}
			a := do(t, http.MethodGet, srv.URL, tt.headers, cookies...)
			if a.status != tt.status {
				t.Errorf("status %d, want %d (%q)", a.status, tt.status, a.body)
			}
			if tt.status == 200 && a.body != "auth0|test-user" {
				t.Errorf("body %q", a.body)
			}
		})
	}
}

// Per-route scopes with Require, routed by http.ServeMux patterns behind one
// middleware.
func TestRequireWithServeMux(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{})
	v := newValidator(t, []middleware.Issuer{{URL: iss.URL(), Keys: remoteFor(t, iss, jwks.RemoteOptions{})}}, middleware.ValidatorOptions{})
	mw, err := middleware.New(v, middleware.Options{Realm: "contacts"})
	if err != nil {
		t.Fatal(err)
	}
	ok := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name, " ", r.PathValue("id")) })
	}
	mux := http.NewServeMux()
	mux.Handle("GET /contacts/{id}", middleware.Require(scopes.All("read:contacts"), ok("read")))
	mux.Handle("POST /contacts/", middleware.Require(scopes.Any("write:contacts", "admin"), ok("write")))
	mux.Handle("DELETE /contacts/{id}", middleware.Require(scopes.All("delete:contacts", "admin"), ok("delete")))
	mux.Handle("GET /me", ok("me"))
	srv := httptest.NewServer(mw(mux))
	defer srv.Close()

	reader := mintFor(t, iss, map[string]any{"scope": "read:contacts"})
	writer := mintFor(t, iss, map[string]any{"permissions": []string{"write:contacts"}})
	admin := mintFor(t, iss, map[string]any{"scope": "admin delete:contacts read:contacts"})
	nobody := mintFor(t, iss, nil)
	tests := []struct {
		method, path, token string
		status              int
		body, scope         string
	}{
		{"GET", "/contacts/7", reader, 200, "read 7", ""},
		{"GET", "/contacts/7", writer, 403, "", "read:contacts"},
		{"POST", "/contacts/", writer, 200, "write ", ""},
		{"POST", "/contacts/", admin, 200, "write ", ""},
		{"POST", "/contacts/", reader, 403, "", "admin write:contacts"},
		{"DELETE", "/contacts/7", admin, 200, "delete 7", ""},
		{"DELETE", "/contacts/7", writer, 403, "", "admin delete:contacts"},
		{"GET", "/me", nobody, 200, "me ", ""},
		{"GET", "/me", "", 401, "", ""},
		{"GET", "/contacts/7", "", 401, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var h map[string][]string
			if tt.token != "" {
				h = bearer(tt.token)
			}
			a := do(t, tt.method, srv.URL+tt.path, h)
			if a.status != tt.status {
				t.Fatalf("status %d, want %d (%q)", a.status, tt.status, a.body)
			}
			switch tt.status {
			case 200:
				if a.body != tt.body {
					t.Errorf("body %q, want %q", a.body, tt.body)
				}
			case 403:
				want := `Bearer realm="contacts", error="insufficient_scope", error_description="insufficient scope", scope="` + tt.scope + `"`
				if got := a.header.Get("WWW-Authenticate"); got != want {
					t.Errorf("WWW-Authenticate %q, want %q", got, want)
				}
			}
		})
	}
}

// Require behind no middleware fails closed; an invalid requirement panics at
// start.
func TestRequireMisuse(t *testing.T) {
	h := middleware.Require(scopes.All("read:contacts"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("handler ran without a token")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != `Bearer realm="api"` {
		t.Errorf("Require without middleware: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	defer func() {
		if recover() == nil {
			t.Error("Require with an invalid scope did not panic")
		}
	}()
	middleware.Require(scopes.All(`read"contacts`), http.NotFoundHandler())
}

func TestClaimsFrom(t *testing.T) {
	if c, ok := middleware.ClaimsFrom(httptest.NewRequest(http.MethodGet, "/", nil).Context()); ok || c != nil {
		t.Errorf("ClaimsFrom(empty context) = %v, %v", c, ok)
	}
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{Now: time.Now})
	mw, err := middleware.New(v, middleware.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got *middleware.Claims
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = middleware.ClaimsFrom(r.Context())
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+sign(t, key, nil, claimsAt(tenant, time.Now(), map[string]any{
		"scope": "read:contacts", "https://example.com/roles": []string{"admin"},
	})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || got == nil {
		t.Fatalf("status %d, claims %v", rec.Code, got)
	}
	var custom struct {
		Roles []string `json:"https://example.com/roles"`
	}
	if got.Issuer != tenant || got.Subject != "auth0|5f7c8ec7c33c6c004bbafe82" || !got.Scopes.Has("read:contacts") ||
		got.Decode(&custom) != nil || len(custom.Roles) != 1 {
		t.Errorf("claims %+v, roles %q", got, custom.Roles)
	}
}

// Observe sees every request's outcome, once for the middleware; OnError
// replaces the answer.
func TestObserveAndOnError(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{Now: time.Now})
	var (
		mu       sync.Mutex
		outcomes []middleware.Outcome
		errs     []*middleware.Error
	)
	mw, err := middleware.New(v, middleware.Options{
		Required: scopes.All("read:contacts"),
		Observe: func(r *http.Request, o middleware.Outcome) {
			mu.Lock()
			defer mu.Unlock()
			outcomes = append(outcomes, o)
		},
		OnError: func(w http.ResponseWriter, r *http.Request, e *middleware.Error) {
			mu.Lock()
			errs = append(errs, e)
			mu.Unlock()
			w.WriteHeader(e.Status())
			fmt.Fprintf(w, "custom %s", e.Reason)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })))
	defer srv.Close()

	now := time.Now()
	tests := []struct {
		token  string
		status int
		body   string
		reason middleware.Reason // "" when allowed
	}{
		{sign(t, key, nil, claimsAt(tenant, now, map[string]any{"scope": "read:contacts"})), 200, "ok", ""},
		{"", 401, "custom no_token", middleware.ReasonNoToken},
		{sign(t, key, nil, claimsAt(tenant, now, map[string]any{"exp": now.Add(-time.Hour).Unix()})), 401, "custom expired", middleware.ReasonExpired},
		{sign(t, key, nil, claimsAt(tenant, now, nil)), 403, "custom insufficient_scope", middleware.ReasonInsufficientScope},
	}
	for i, tt := range tests {
		var h map[string][]string
		if tt.token != "" {
			h = bearer(tt.token)
		}
		a := do(t, http.MethodGet, srv.URL, h)
		if a.status != tt.status || a.body != tt.body {
			t.Errorf("request %d: %d %q, want %d %q", i, a.status, a.body, tt.status, tt.body)
		}
		if a.header.Get("WWW-Authenticate") != "" {
			t.Errorf("request %d: OnError did not replace the answer: %v", i, a.header)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(outcomes) != len(tests) {
		t.Fatalf("%d outcomes observed, want %d", len(outcomes), len(tests))
	}
	for i, tt := range tests {
		o := outcomes[i]
		switch {
		case tt.reason == "" && (o.Err != nil || o.Claims == nil):
			t.Errorf("outcome %d: %+v, want allowed with claims", i, o)
		case tt.reason != "" && (o.Err == nil || o.Err.Reason != tt.reason):
			t.Errorf("outcome %d: %+v, want %s", i, o, tt.reason)
		case tt.reason == middleware.ReasonInsufficientScope && (o.Claims == nil || o.Err.Scope != "read:contacts"):
			t.Errorf("outcome %d: a scope refusal carries the claims and the scope: %+v", i, o)
		case tt.reason == middleware.ReasonNoToken && o.Claims != nil:
			t.Errorf("outcome %d: claims without a token", i)
		}
		if o.Duration < 0 {
			t.Errorf("outcome %d: negative duration", i)
		}
	}
	if len(errs) != 3 {
		t.Errorf("OnError called %d times, want 3", len(errs))
	}
}

// Bad configuration fails at construction, all problems at once.
func TestNewConfig(t *testing.T) {
	_, err := middleware.New(nil, middleware.Options{Realm: "a\"b", Required: scopes.All("read contacts")})
	if err == nil {
		t.Fatal("New succeeded")
	}
	for _, want := range []string{"nil validator", "realm", `"read contacts"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestWriteError(t *testing.T) {
	tests := []struct {
		err       *middleware.Error
		status    int
		challenge string
	}{
		{middleware.ErrNoToken, 401, `Bearer realm="r"`},
		{&middleware.Error{Reason: middleware.ReasonExpired, Description: `a "quoted"\ value` + "\r\nX-Injected: 1"}, 401,
			`Bearer realm="r", error="invalid_token", error_description="a 'quoted'/ value  X-Injected: 1"`},
		{&middleware.Error{Reason: middleware.ReasonInsufficientScope, Scope: "a b"}, 403,
			`Bearer realm="r", error="insufficient_scope", error_description="insufficient scope", scope="a b"`},
		{middleware.ErrKeysUnavailable, 503, ""},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		middleware.WriteError(rec, "r", tt.err)
		if rec.Code != tt.status || rec.Header().Get("WWW-Authenticate") != tt.challenge {
			t.Errorf("%s: %d %q, want %d %q", tt.err.Reason, rec.Code, rec.Header().Get("WWW-Authenticate"), tt.status, tt.challenge)
		}
		if rec.Header().Get("X-Injected") != "" {
			t.Error("header injection through the description")
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Errorf("%s: body %q is not JSON", tt.err.Reason, rec.Body)
		}
		if tt.err.Err != nil && strings.Contains(rec.Body.String(), tt.err.Err.Error()) {
			t.Errorf("%s: body shows the internal error", tt.err.Reason)
		}
	}
	// The internal error and the detail never reach the client.
	rec := httptest.NewRecorder()
	middleware.WriteError(rec, "r", &middleware.Error{Reason: middleware.ReasonSignature, Detail: "kid \"secret-kid\"", Err: fmt.Errorf("crypto/rsa: verification error")})
	if strings.Contains(rec.Body.String(), "secret-kid") || strings.Contains(rec.Body.String(), "crypto/rsa") ||
		strings.Contains(rec.Header().Get("WWW-Authenticate"), "crypto/rsa") {
		t.Errorf("answer leaks internals: %v %q", rec.Header(), rec.Body)
	}
}
