package proxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
	"github.com/tokenward/tokenward/resource"
	"github.com/tokenward/tokenward/scopes"
)

// frontEnd is one way a request reaches the decision: send asks it about one
// request (a path, and the Authorization headers the client sent) and
// returns the answer, and the subject the protected side saw when allowed.
type frontEnd struct {
	name string
	send func(t *testing.T, authorization []string, extra http.Header) (resp *http.Response, body, subject string)
}

// TestOneDecisionEveryFrontEnd drives the middleware (with its own
// requirement, and with Require), the reverse proxy, forward-auth and
// Envoy's gRPC ext_authz (package extauthz, through a gRPC client) with
// the same cases: each must give the same status, challenge, Retry-After and
// JSON body, and the expected ones. Every challenge names the resource's
// metadata (RFC 9728 §5.1), and every 403 the scopes the route needs. They share middleware.Guard.Check, so a
// check added there (or lost) shows in all of them at once.
func TestOneDecisionEveryFrontEnd(t *testing.T) {
	const realm = "contacts"
	required := scopes.All("read:contacts")

	iss := newIssuer(t)
	stranger := newIssuer(t) // not trusted
	down := newIssuer(t)     // trusted, but its keys never load
	down.SetDown(true)
	unloaded, err := jwks.NewRemote(down.JWKSURL(), jwks.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unloaded.Close)
	v, err := middleware.NewValidator([]middleware.Issuer{
		{URL: iss.URL(), Keys: staticKeys(t, iss)},
		{URL: down.URL(), Keys: unloaded},
	}, []string{audience}, middleware.ValidatorOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The protected side answers with the subject it was told about.
	protected := func(sub func(*http.Request) string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, sub(r)) })
	}
	fromContext := func(r *http.Request) string {
		if c, ok := middleware.ClaimsFrom(r.Context()); ok {
			return c.Subject
		}
		return ""
	}
	get := func(t *testing.T, url string, h http.Header) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}
	withAuth := func(authorization []string, extra http.Header) http.Header {
		h := extra.Clone()
		if h == nil {
			h = http.Header{}
		}
		if authorization != nil {
			h["Authorization"] = authorization
		}
		return h
	}
	serve := func(t *testing.T, h http.Handler) *httptest.Server {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv
	}
	const path = "/api/contacts/1"

	// A resource with a path: its metadata URL has the path inserted.
	meta, err := resource.New("https://api.example.com/contacts", v, resource.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const rm = `, resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/contacts"`
	if got := meta.MetadataURL(); got != "https://api.example.com/.well-known/oauth-protected-resource/contacts" {
		t.Fatalf("MetadataURL() = %q", got)
	}

	// Every front end is asked over loopback, as if by a proxy that
	// terminated TLS: its Client-Cert is trusted.
	trusted := []string{"127.0.0.0/8", "::1"}
	mw, err := middleware.New(v, middleware.Options{Realm: realm, Required: required, ResourceMetadata: meta.MetadataURL(), TrustedProxies: trusted})
	if err != nil {
		t.Fatal(err)
	}
	viaMiddleware := serve(t, mw(protected(fromContext)))

	bare, err := middleware.New(v, middleware.Options{Realm: realm, ResourceMetadata: meta.MetadataURL(), TrustedProxies: trusted})
	if err != nil {
		t.Fatal(err)
	}
	viaRequire := serve(t, bare(middleware.Require(required, protected(fromContext))))

	rules, err := proxy.NewRules(nil, required)
	if err != nil {
		t.Fatal(err)
	}
	cfg := proxy.Config{Validator: v, Rules: rules, Realm: realm, Resource: meta, TrustedProxies: trusted,
		ClaimHeaders: []proxy.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}}}
	upstream := serve(t, protected(func(r *http.Request) string { return r.Header.Get("X-Auth-Subject") }))
	viaProxy := startProxy(t, upstream.URL, cfg, proxy.UpstreamOptions{})
	fa, err := proxy.NewForwardAuth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	viaForwardAuth := serve(t, fa)
	viaGRPC := startExtAuthz(t, fa)

	frontEnds := []frontEnd{
		{"middleware", func(t *testing.T, a []string, x http.Header) (*http.Response, string, string) {
			resp, body := get(t, viaMiddleware.URL+path, withAuth(a, x))
			return resp, body, body
		}},
		{"middleware+Require", func(t *testing.T, a []string, x http.Header) (*http.Response, string, string) {
			resp, body := get(t, viaRequire.URL+path, withAuth(a, x))
			return resp, body, body
		}},
		{"proxy", func(t *testing.T, a []string, x http.Header) (*http.Response, string, string) {
			resp, body := get(t, viaProxy.URL+path, withAuth(a, x))
			return resp, body, body
		}},
		{"forward-auth", func(t *testing.T, a []string, x http.Header) (*http.Response, string, string) {
			h := withAuth(a, x)
			h.Set("X-Forwarded-Method", http.MethodGet)
			h.Set("X-Forwarded-Uri", path)
			resp, body := get(t, viaForwardAuth.URL+"/auth", h)
			return resp, body, resp.Header.Get("X-Auth-Subject")
		}},
		{"grpc ext_authz", func(t *testing.T, a []string, x http.Header) (*http.Response, string, string) {
			resp, body := checkGRPC(t, viaGRPC, http.MethodGet, path, withAuth(a, x))
			return resp, body, resp.Header.Get("X-Auth-Subject")
		}},
	}

	bearer := func(tok string) []string { return []string{"Bearer " + tok} }
	token := func(claims map[string]any) string {
		tok, err := iss.Mint(claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	valid := token(iss.Claims(audience, map[string]any{"scope": "read:contacts"}))
	// Another token's signature over valid's header and claims.
	other := token(iss.Claims(audience, map[string]any{"scope": "read:contacts", "jti": "other"}))
	forged := valid[:strings.LastIndexByte(valid, '.')] + other[strings.LastIndexByte(other, '.'):]
	fromStranger, err := stranger.Mint(stranger.Claims(audience, map[string]any{"scope": "read:contacts"}))
	if err != nil {
		t.Fatal(err)
	}
	fromDown, err := down.Mint(down.Claims(audience, map[string]any{"scope": "read:contacts"}))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	alice, mallory := newClientCert(t, "alice"), newClientCert(t, "mallory")
	bound := token(iss.Claims(audience, map[string]any{"scope": "read:contacts", "cnf": map[string]any{"x5t#S256": alice.X5T()}}))
	dpop := token(iss.Claims(audience, map[string]any{"scope": "read:contacts", "cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}))
	withCert := func(c clientCert) http.Header { return http.Header{"Client-Cert": {c.ClientCertHeader()}} }

	bareChallenge := `Bearer realm="contacts"` + rm
	tests := []struct {
		name          string
		authorization []string
		extra         http.Header // more request headers
		status        int
		challenge     string // the whole WWW-Authenticate; "" means none
		retryAfter    string
		bodyError     string // "error" of the JSON body; "" means allowed
		description   string
	}{
		{"no token", nil, nil, 401, bareChallenge, "", "unauthorized", "no bearer token"},
		{"other scheme", []string{"Basic dXNlcjpwYXNz"}, nil, 401, bareChallenge, "", "unauthorized", "no bearer token"},
		{"two Authorization headers", []string{"Bearer " + valid, "Bearer " + valid}, nil, 400,
			`Bearer realm="contacts", error="invalid_request", error_description="more than one Authorization header"` + rm, "",
			"invalid_request", "more than one Authorization header"},
		{"malformed token", bearer("a.b.c"), nil, 401,
			`Bearer realm="contacts", error="invalid_token", error_description="token claims are not base64url"` + rm, "",
			"invalid_token", "token claims are not base64url"},
		{"bad signature", bearer(forged), nil, 401,
			`Bearer realm="contacts", error="invalid_token", error_description="signature invalid"` + rm, "",
			"invalid_token", "signature invalid"},
		{"expired", bearer(token(iss.Claims(audience, map[string]any{"scope": "read:contacts",
			"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()}))), nil, 401,
			`Bearer realm="contacts", error="invalid_token", error_description="token expired"` + rm, "",
			"invalid_token", "token expired"},
		{"wrong audience", bearer(token(iss.Claims("https://other.example.com", map[string]any{"scope": "read:contacts"}))), nil, 401,
			`Bearer realm="contacts", error="invalid_token", error_description="audience not accepted"` + rm, "",
			"invalid_token", "audience not accepted"},
		{"untrusted issuer", bearer(fromStranger), nil, 401,
			`Bearer realm="contacts", error="invalid_token", error_description="issuer not trusted"` + rm, "",
			"invalid_token", "issuer not trusted"},
		{"insufficient scope", bearer(token(iss.Claims(audience, map[string]any{"scope": "write:contacts"}))), nil, 403,
			`Bearer realm="contacts", error="insufficient_scope", error_description="insufficient scope", scope="read:contacts"` + rm, "",
			"insufficient_scope", "insufficient scope"},
		{"valid", bearer(valid), nil, 200, "", "", "", ""},
		{"keys unavailable", bearer(fromDown), nil, 503, "", middleware.RetryAfterSeconds,
			"temporarily_unavailable", "issuer keys unavailable"},
		{"certificate-bound, its certificate", bearer(bound), withCert(alice), 200, "", "", "", ""},
		{"certificate-bound, no certificate", bearer(bound), nil, 401,
			`Bearer realm="contacts", error="invalid_token", error_description="token is bound to a client certificate and none was presented"` + rm, "",
			"invalid_token", "token is bound to a client certificate and none was presented"},
		{"certificate-bound, another certificate", bearer(bound), withCert(mallory), 401,
			`Bearer realm="contacts", error="invalid_token", error_description="client certificate does not match the token"` + rm, "",
			"invalid_token", "client certificate does not match the token"},
		{"DPoP-bound as Bearer", bearer(dpop), withCert(alice), 401,
			`DPoP realm="contacts", algs="ES256", error="invalid_token", error_description="DPoP-bound token presented as a bearer token"` + rm + `, Bearer realm="contacts"` + rm, "",
			"invalid_token", "DPoP-bound token presented as a bearer token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var first string // the first front end's answer, which the others must equal
			for _, fe := range frontEnds {
				resp, body, subject := fe.send(t, tt.authorization, tt.extra)
				if resp.StatusCode != tt.status {
					t.Errorf("%s: status %d, want %d (body %q)", fe.name, resp.StatusCode, tt.status, body)
				}
				if got := resp.Header.Get("WWW-Authenticate"); got != tt.challenge {
					t.Errorf("%s: WWW-Authenticate %q, want %q", fe.name, got, tt.challenge)
				}
				if got := resp.Header.Get("Retry-After"); got != tt.retryAfter {
					t.Errorf("%s: Retry-After %q, want %q", fe.name, got, tt.retryAfter)
				}
				if tt.bodyError == "" {
					if subject != "auth0|test-user" {
						t.Errorf("%s: the protected side saw subject %q, want auth0|test-user", fe.name, subject)
					}
					continue
				}
				var got struct {
					Error       string `json:"error"`
					Description string `json:"error_description"`
					Scope       string `json:"scope"`
				}
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Errorf("%s: body %q is not JSON: %v", fe.name, body, err)
				}
				if got.Error != tt.bodyError || got.Description != tt.description {
					t.Errorf("%s: body %q, want error %q and description %q", fe.name, body, tt.bodyError, tt.description)
				}
				answer := resp.Status + "\n" + sprintHeader(http.Header{
					"Www-Authenticate": resp.Header.Values("WWW-Authenticate"),
					"Retry-After":      resp.Header.Values("Retry-After"),
					"Content-Type":     resp.Header.Values("Content-Type"),
					"Cache-Control":    resp.Header.Values("Cache-Control"),
				}) + "\n" + body
				if first == "" {
					first = answer
				} else if answer != first {
					t.Errorf("%s answered\n%s\nwhile %s answered\n%s", fe.name, answer, frontEnds[0].name, first)
				}
			}
		})
	}
}

// TestRealmCheckedOnce: the middleware, the proxy and forward-auth accept
// and refuse the same realms, those middleware.CheckRealm accepts and
// refuses. The binary checks TOKENWARD_REALM with it too.
func TestRealmCheckedOnce(t *testing.T) {
	iss := newIssuer(t)
	v := newValidator(t, iss)
	rules, err := proxy.NewRules(nil, scopes.Requirement{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		realm string
		ok    bool
	}{
		{"", true},
		{"api", true},
		{"contacts API (eu-1)", true},
		{`a"b`, false},
		{`a\b`, false},
		{"a\nb", false},
		{"a\x7fb", false},
		{"café", false}, // not ASCII: clients read obs-text differently
		{"\xff", false},
	} {
		checked := middleware.CheckRealm(tt.realm) == nil
		_, gerr := middleware.NewGuard(v, middleware.GuardOptions{Realm: tt.realm})
		_, merr := middleware.New(v, middleware.Options{Realm: tt.realm})
		cfg := proxy.Config{Validator: v, Rules: rules, Realm: tt.realm}
		_, perr := proxy.New("http://127.0.0.1:1", cfg, proxy.UpstreamOptions{})
		_, ferr := proxy.NewForwardAuth(cfg)
		for name, ok := range map[string]bool{"CheckRealm": checked, "NewGuard": gerr == nil,
			"middleware.New": merr == nil, "proxy.New": perr == nil, "proxy.NewForwardAuth": ferr == nil} {
			if ok != tt.ok {
				t.Errorf("realm %q: %s accepted it: %v, want %v", tt.realm, name, ok, tt.ok)
			}
		}
	}
}
