package proxy_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/dpop"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/proxy"
)

func proofKey(tb testing.TB) *jwkstest.ProofKey {
	tb.Helper()
	k, err := jwkstest.NewProofKey("ES256")
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func boundToken(tb testing.TB, iss *jwkstest.Issuer, k *jwkstest.ProofKey) string {
	tb.Helper()
	tok, err := iss.MintDPoP(iss.Claims(audience, map[string]any{"scope": "api read:contacts"}), k)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func makeProof(tb testing.TB, k *jwkstest.ProofKey, method, htu, token string, opts ...jwkstest.ProofOption) string {
	tb.Helper()
	p, err := k.Proof(method, htu, token, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestDPoPProxy: through the reverse proxy, a DPoP request passes with its
// proof made for the URL the client used; the proof does not reach the
// upstream unless ForwardDPoPProof; X-Forwarded-Proto/Host change that URL
// only from a trusted proxy; PublicURL overrides the request's.
func TestDPoPProxy(t *testing.T) {
	iss := newIssuer(t)
	key := proofKey(t)
	tok := boundToken(t, iss, key)
	up := newUpstream(t)
	fwd := http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"api.example.com"}}
	const path = "/api/contacts/1"

	for _, tt := range []struct {
		name    string
		cfg     func(*proxy.Config)
		header  http.Header
		htu     func(srv *httptest.Server) string
		status  int
		forward bool // the upstream gets the DPoP header
	}{
		{name: "direct", htu: func(s *httptest.Server) string { return s.URL + path }, status: 200},
		{name: "direct, proof forwarded", cfg: func(c *proxy.Config) { c.ForwardDPoPProof = true },
			htu: func(s *httptest.Server) string { return s.URL + path }, status: 200, forward: true},
		{name: "untrusted X-Forwarded-Host ignored", header: fwd,
			htu: func(s *httptest.Server) string { return s.URL + path }, status: 200},
		{name: "untrusted X-Forwarded-Host not believed", header: fwd,
			htu: func(*httptest.Server) string { return "https://api.example.com" + path }, status: 401},
		{name: "trusted proxy's X-Forwarded-Host", cfg: func(c *proxy.Config) { c.TrustedProxies = []string{"127.0.0.1", "::1"} }, header: fwd,
			htu: func(*httptest.Server) string { return "https://api.example.com" + path }, status: 200},
		{name: "trusted proxy, proof for the listener", cfg: func(c *proxy.Config) { c.TrustedProxies = []string{"127.0.0.1", "::1"} }, header: fwd,
			htu: func(s *httptest.Server) string { return s.URL + path }, status: 401},
		{name: "PublicURL", cfg: func(c *proxy.Config) { c.DPoP.PublicURL = "https://public.example.com" },
			htu: func(*httptest.Server) string { return "https://public.example.com" + path }, status: 200},
		{name: "PublicURL, proof for the listener", cfg: func(c *proxy.Config) { c.DPoP.PublicURL = "https://public.example.com" },
			htu: func(s *httptest.Server) string { return s.URL + path }, status: 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig(t, iss)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			srv := startProxy(t, up.URL, cfg, proxy.UpstreamOptions{})
			h := http.Header{"Authorization": {"DPoP " + tok}, "Dpop": {makeProof(t, key, "GET", tt.htu(srv), tok)}}
			for k, v := range tt.header {
				h[k] = v
			}
			resp, body := do(t, srv, request{path: path, header: h})
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status != 200 {
				up.none(t)
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `DPoP realm="api", algs="ES256", error="invalid_dpop_proof"`) {
					t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
				}
				return
			}
			got := up.last(t)
			if _, ok := got.header["Dpop"]; ok != tt.forward {
				t.Errorf("upstream got DPoP header: %v, want %v", ok, tt.forward)
			}
			if got.header.Get("X-Auth-Subject") != "auth0|test-user" {
				t.Errorf("identity %q", got.header.Get("X-Auth-Subject"))
			}
		})
	}
}

// TestDPoPProxyNonceAndStore: the proxy answers use_dpop_nonce with
// DPoP-Nonce, passes with it, and answers 503 with Retry-After when the
// replay store fails.
func TestDPoPProxyNonceAndStore(t *testing.T) {
	iss := newIssuer(t)
	key := proofKey(t)
	tok := boundToken(t, iss, key)
	up := newUpstream(t)
	n, err := dpop.NewNonces([]byte(strings.Repeat("k", 32)), dpop.NonceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig(t, iss)
	cfg.DPoP.Nonces = n
	srv := startProxy(t, up.URL, cfg, proxy.UpstreamOptions{})
	const path = "/api/contacts/1"
	send := func(opts ...jwkstest.ProofOption) *http.Response {
		resp, _ := do(t, srv, request{path: path, header: http.Header{"Authorization": {"DPoP " + tok},
			"Dpop": {makeProof(t, key, "GET", srv.URL+path, tok, opts...)}}})
		return resp
	}
	resp := send()
	nonce := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != 401 || nonce == "" || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		t.Fatalf("without a nonce: %d, DPoP-Nonce %q, %q", resp.StatusCode, nonce, resp.Header.Get("WWW-Authenticate"))
	}
	up.none(t)
	if resp := send(jwkstest.WithNonce(nonce)); resp.StatusCode != 200 {
		t.Fatalf("with the nonce: %d", resp.StatusCode)
	}
	up.last(t)

	cfg = defaultConfig(t, iss)
	cfg.DPoP.Replay = brokenStore{}
	srv = startProxy(t, up.URL, cfg, proxy.UpstreamOptions{})
	resp, body := do(t, srv, request{path: path, header: http.Header{"Authorization": {"DPoP " + tok},
		"Dpop": {makeProof(t, key, "GET", srv.URL+path, tok)}}})
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("store down: %d %q, Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	up.none(t)
}

// TestDPoPForwardAuth: forward-auth checks the proof against the original
// request the gateway names (X-Forwarded-Method/Uri/Host/Proto, as Traefik
// sends them; X-Original-URL as ingress-nginx does), answers a refusal with
// the DPoP challenge and DPoP-Nonce for the gateway to pass on, and tells
// Envoy to remove the proof.
func TestDPoPForwardAuth(t *testing.T) {
	iss := newIssuer(t)
	key := proofKey(t)
	tok := boundToken(t, iss, key)
	n, err := dpop.NewNonces([]byte(strings.Repeat("k", 32)), dpop.NonceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig(t, iss)
	cfg.DPoP.Nonces = n
	fa, err := proxy.NewForwardAuth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(fa)
	t.Cleanup(srv.Close)
	const htu = "https://api.example.com/api/contacts/1"
	traefik := func(proof string) http.Header {
		return http.Header{"Authorization": {"DPoP " + tok}, "Dpop": {proof}, "X-Forwarded-Method": {"GET"},
			"X-Forwarded-Uri": {"/api/contacts/1?x=1"}, "X-Forwarded-Host": {"api.example.com"}, "X-Forwarded-Proto": {"https"}}
	}
	nonce := n.Current(time.Now())

	resp, _ := do(t, srv, request{path: "/auth", header: traefik(makeProof(t, key, "GET", htu, tok))})
	if resp.StatusCode != 401 || resp.Header.Get("DPoP-Nonce") != nonce ||
		!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `DPoP realm="api", algs="ES256", error="use_dpop_nonce"`) {
		t.Fatalf("no nonce: %d %q %q", resp.StatusCode, resp.Header.Get("DPoP-Nonce"), resp.Header.Get("WWW-Authenticate"))
	}
	resp, body := do(t, srv, request{path: "/auth", header: traefik(makeProof(t, key, "GET", htu, tok, jwkstest.WithNonce(nonce)))})
	if resp.StatusCode != 200 {
		t.Fatalf("with the nonce: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Auth-Subject") != "auth0|test-user" || !strings.HasSuffix(resp.Header.Get("X-Envoy-Auth-Headers-To-Remove"), ", DPoP") {
		t.Errorf("allow headers %v", resp.Header)
	}
	// A proof for another method, host or scheme than the gateway names.
	for _, bad := range []string{"http://api.example.com/api/contacts/1", "https://evil.example.com/api/contacts/1", "https://api.example.com/api/contacts/2"} {
		resp, _ := do(t, srv, request{path: "/auth", header: traefik(makeProof(t, key, "GET", bad, tok, jwkstest.WithNonce(nonce)))})
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
			t.Errorf("proof for %s: %d %q", bad, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	h := traefik(makeProof(t, key, "POST", htu, tok, jwkstest.WithNonce(nonce)))
	if resp, _ := do(t, srv, request{path: "/auth", header: h}); resp.StatusCode != 401 {
		t.Errorf("proof for POST: %d", resp.StatusCode)
	}
	// ingress-nginx: the whole URL in X-Original-URL.
	h = http.Header{"Authorization": {"DPoP " + tok}, "Dpop": {makeProof(t, key, "GET", htu, tok, jwkstest.WithNonce(nonce))},
		"X-Original-Method": {"GET"}, "X-Original-Url": {htu + "?x=1"}}
	if resp, body := do(t, srv, request{path: "/auth", header: h}); resp.StatusCode != 200 {
		t.Errorf("X-Original-URL: %d %s", resp.StatusCode, body)
	}
	// The gateway's headers disagree on the scheme, or name a list: no
	// proof's htu matches, whatever its scheme; a bearer token is judged
	// as before.
	for _, bad := range []http.Header{
		{"X-Original-Url": {"http://api.example.com/api/contacts/1?x=1"}},
		{"X-Forwarded-Proto": {"https, http"}},
	} {
		for _, scheme := range []string{"https", "http"} {
			h = traefik(makeProof(t, key, "GET", scheme+"://api.example.com/api/contacts/1", tok, jwkstest.WithNonce(nonce)))
			for k, v := range bad {
				h[k] = v
			}
			resp, _ := do(t, srv, request{path: "/auth", header: h})
			if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "htu") {
				t.Errorf("%v, proof for %s: %d %q, want 401 for htu", bad, scheme, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		}
		h = http.Header{"X-Forwarded-Method": {"GET"}, "X-Forwarded-Uri": {"/api/contacts/1?x=1"}, "X-Forwarded-Host": {"api.example.com"}}
		for k, v := range bad {
			h[k] = v
		}
		if resp, body := do(t, srv, request{path: "/auth", token: withScope(t, iss, "api read:contacts"), header: h}); resp.StatusCode != 200 {
			t.Errorf("%v, bearer: %d %s", bad, resp.StatusCode, body)
		}
	}
}

// TestDPoPForwardAuthCheck: the gRPC path (Question) takes the scheme from
// the gateway, and moves DPoP-Nonce to the client's answer.
func TestDPoPForwardAuthCheck(t *testing.T) {
	iss := newIssuer(t)
	key := proofKey(t)
	tok := boundToken(t, iss, key)
	cfg := defaultConfig(t, iss)
	fa, err := proxy.NewForwardAuth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const htu = "https://api.example.com/api/contacts/1"
	q := proxy.Question{Method: "GET", URI: "/api/contacts/1", Host: "api.example.com", Scheme: "https",
		Header: http.Header{"Authorization": {"DPoP " + tok}, "Dpop": {makeProof(t, key, "GET", htu, tok)}}}
	a := fa.Check(t.Context(), q)
	if a.Status != 200 {
		t.Fatalf("status %d %s", a.Status, a.Body)
	}
	if !strings.Contains(strings.Join(a.Remove, ","), "DPoP") {
		t.Errorf("Remove %q lacks DPoP", a.Remove)
	}
	q.Scheme = "http"
	q.Header = http.Header{"Authorization": {"DPoP " + tok}, "Dpop": {makeProof(t, key, "GET", htu, tok)}}
	if a := fa.Check(t.Context(), q); a.Status != 401 {
		t.Errorf("http scheme, https proof: %d", a.Status)
	}
}

// brokenStore is a replay store that cannot answer (a fake, for fault
// injection).
type brokenStore struct{}

func (brokenStore) Seen(context.Context, [32]byte, time.Duration) (bool, error) {
	return false, errors.New("unreachable")
}

// TestDPoPIdentityHeaders: the upstream learns the scheme (TokenTypeHeader)
// and the key thumbprint (the cnf.jkt claim), never a client's copy.
func TestDPoPIdentityHeaders(t *testing.T) {
	iss := newIssuer(t)
	key := proofKey(t)
	tok := boundToken(t, iss, key)
	up := newUpstream(t)
	cfg := defaultConfig(t, iss)
	cfg.TokenTypeHeader = "X-Auth-Token-Type"
	cfg.ClaimHeaders = append(cfg.ClaimHeaders, proxy.ClaimHeader{Claim: "cnf.jkt", Header: "X-Auth-DPoP-JKT"})
	srv := startProxy(t, up.URL, cfg, proxy.UpstreamOptions{})
	const path = "/api/contacts/1"
	forged := http.Header{"X-Auth-Token-Type": {"DPoP"}, "X-Auth-Dpop-Jkt": {"forged"}}

	h := http.Header{"Authorization": {"DPoP " + tok}, "Dpop": {makeProof(t, key, "GET", srv.URL+path, tok)}}
	for k, v := range forged {
		h[k] = v
	}
	if resp, body := do(t, srv, request{path: path, header: h}); resp.StatusCode != 200 {
		t.Fatalf("DPoP: %d %s", resp.StatusCode, body)
	}
	got := up.last(t).header
	if got.Get("X-Auth-Token-Type") != "DPoP" || got.Get("X-Auth-DPoP-JKT") != key.Thumbprint() {
		t.Errorf("DPoP: token type %q, jkt %q", got.Values("X-Auth-Token-Type"), got.Values("X-Auth-DPoP-JKT"))
	}

	h = http.Header{}
	for k, v := range forged {
		h[k] = v
	}
	if resp, body := do(t, srv, request{path: path, token: withScope(t, iss, "api read:contacts"), header: h}); resp.StatusCode != 200 {
		t.Fatalf("Bearer: %d %s", resp.StatusCode, body)
	}
	got = up.last(t).header
	if got.Get("X-Auth-Token-Type") != "Bearer" || len(got.Values("X-Auth-DPoP-JKT")) != 0 {
		t.Errorf("Bearer: token type %q, jkt %q", got.Values("X-Auth-Token-Type"), got.Values("X-Auth-DPoP-JKT"))
	}

	cfg.ScopesHeader = "X-Auth-Token-Type"
	if _, err := proxy.New(up.URL, cfg, proxy.UpstreamOptions{}); err == nil {
		t.Error("a token type header that is also the scopes header accepted")
	}
}
