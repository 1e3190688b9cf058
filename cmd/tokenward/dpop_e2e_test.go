package main

import (
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/dpop"
	"github.com/tokenward/tokenward/internal/nginxtest"
	"github.com/tokenward/tokenward/jwks/jwkstest"
)

// dpopClient is a DPoP client of the test issuer: its key and a token
// bound to it.
type dpopClient struct {
	key   *jwkstest.ProofKey
	token string
}

func newDPoPClient(t *testing.T, iss *jwkstest.Issuer, alg string) dpopClient {
	t.Helper()
	key, err := jwkstest.NewProofKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.MintDPoP(iss.Claims(audience, map[string]any{"scope": "read:contacts"}), key)
	if err != nil {
		t.Fatal(err)
	}
	return dpopClient{key, tok}
}

// proof makes a proof of c for one request.
func (c dpopClient) proof(t *testing.T, method, url string, opts ...jwkstest.ProofOption) string {
	t.Helper()
	p, err := c.key.Proof(method, url, c.token, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// withProof sends c's token with the DPoP scheme and proof.
func (c dpopClient) withProof(proof string) func(*http.Request) {
	return func(r *http.Request) {
		r.Header.Set("Authorization", "DPoP "+c.token)
		r.Header.Set("DPoP", proof)
	}
}

// dpopEnv is the binary's environment for DPoP tests: identity headers for
// the key thumbprint and the token type.
func dpopEnv(iss *jwkstest.Issuer, upstream string, extra map[string]string) map[string]string {
	return withDefaults(extra, map[string]string{
		"TOKENWARD_UPSTREAM":          upstream,
		"TOKENWARD_ISSUERS":           iss.URL(),
		"TOKENWARD_AUDIENCES":         audience,
		"TOKENWARD_CLAIM_HEADERS":     "sub=X-Auth-Subject,cnf.jkt=X-Auth-DPoP-JKT",
		"TOKENWARD_TOKEN_TYPE_HEADER": "X-Auth-Token-Type",
	})
}

// wantRefusal checks a 401 (or other status) refusal: its status, its error
// code, that it was logged and counted with reason.
func wantRefusal(t *testing.T, srv *server, r response, status int, code, reason string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (%s); body %s", r.status, status, reason, r.body)
	}
	ch := strings.Join(r.header.Values("WWW-Authenticate"), ", ")
	if code != "" && !strings.Contains(ch, `error="`+code+`"`) {
		t.Errorf("WWW-Authenticate %q, want error=%q", ch, code)
	}
	srv.stderr.waitLog(t, "request refused", "reason", reason)
}

// TestDPoPModesE2E: the binary in each TOKENWARD_DPOP mode. allowed takes
// both schemes, required refuses Bearer with the DPoP challenge alone,
// disabled refuses the DPoP scheme; a DPoP-bound token sent as Bearer is
// refused in all three (RFC 9449 §7.2). An accepted DPoP request reaches the
// upstream with the key thumbprint and token type as identity headers and
// without the proof; the client's own copies of those headers never do.
// Each refusal is counted under its reason.
func TestDPoPModesE2E(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	up := echoUpstream(t)
	plain := mint(t, iss, map[string]any{"scope": "read:contacts"})
	for _, mode := range []string{"allowed", "required", "disabled"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := serveBinary(t, dpopEnv(iss, up.URL, map[string]string{"TOKENWARD_DPOP": mode}))
			c := newDPoPClient(t, iss, "ES256")
			url := srv.url + "/api/contacts/7"

			// Bearer.
			r := do(t, srv.client, "GET", url, bearer(plain))
			switch mode {
			case "required":
				wantRefusal(t, srv, r, 401, "invalid_token", "dpop_required")
				ch := strings.Join(r.header.Values("WWW-Authenticate"), ", ")
				if !strings.HasPrefix(ch, `DPoP `) || !strings.Contains(ch, `algs="ES256"`) || strings.Contains(ch, "Bearer") {
					t.Errorf("required mode challenge %q, want DPoP algs=\"ES256\" alone", ch)
				}
			default:
				if r.status != 200 {
					t.Fatalf("Bearer: status %d; body %s", r.status, r.body)
				}
				if h := r.seen(t).Header; h.Get("X-Auth-Token-Type") != "Bearer" || h.Get("X-Auth-DPoP-JKT") != "" {
					t.Errorf("Bearer: upstream got token type %q, jkt %q", h.Get("X-Auth-Token-Type"), h.Get("X-Auth-DPoP-JKT"))
				}
			}

			// Downgrade: the bound token as Bearer, in every mode.
			r = do(t, srv.client, "GET", url, bearer(c.token))
			wantRefusal(t, srv, r, 401, "invalid_token", "dpop_downgrade")

			// DPoP, with the client's own identity headers.
			r = do(t, srv.client, "GET", url, func(r *http.Request) {
				c.withProof(c.proof(t, "GET", url))(r)
				r.Header.Set("X-Auth-DPoP-JKT", "forged")
				r.Header.Set("X-Auth-Token-Type", "DPoP")
			})
			if mode == "disabled" {
				wantRefusal(t, srv, r, 401, "invalid_token", "dpop_disabled")
				if ch := strings.Join(r.header.Values("WWW-Authenticate"), ", "); strings.Contains(ch, "algs=") {
					t.Errorf("disabled mode challenge %q offers DPoP", ch)
				}
				return
			}
			if r.status != 200 {
				t.Fatalf("DPoP: status %d; body %s", r.status, r.body)
			}
			h := r.seen(t).Header
			if got := h.Get("X-Auth-DPoP-JKT"); got != c.key.Thumbprint() {
				t.Errorf("upstream got X-Auth-DPoP-JKT %q, want the key's thumbprint %q", got, c.key.Thumbprint())
			}
			if got := h.Values("X-Auth-Token-Type"); len(got) != 1 || got[0] != "DPoP" {
				t.Errorf("upstream got X-Auth-Token-Type %q, want DPoP", got)
			}
			if _, ok := h["Dpop"]; ok {
				t.Error("the proof reached the upstream; it is stripped by default")
			}

			// A proof for another URL or method.
			r = do(t, srv.client, "GET", url, c.withProof(c.proof(t, "GET", srv.url+"/api/contacts/8")))
			wantRefusal(t, srv, r, 401, "invalid_dpop_proof", "dpop_url")
			r = do(t, srv.client, "GET", url, c.withProof(c.proof(t, "POST", url)))
			wantRefusal(t, srv, r, 401, "invalid_dpop_proof", "dpop_method")

			metrics := string(do(t, srv.client, "GET", srv.adminURL+"/metrics", nil).body)
			for _, want := range []string{
				`tokenward_requests_total{outcome="denied",reason="dpop_downgrade"} 1`,
				`tokenward_requests_total{outcome="denied",reason="dpop_url"} 1`,
				`tokenward_requests_total{outcome="denied",reason="dpop_replay"} 0`,
				`tokenward_dpop_replay_store_up 1`,
				`tokenward_dpop_replay_forgotten_early_total 0`, // the memory store, far from full
			} {
				if !strings.Contains(metrics, want) {
					t.Errorf("metrics lack %s", want)
				}
			}
		})
	}
}

// TestDPoPReplayE2E: a proof is accepted once by the binary (memory store);
// sent again it is refused as a replay.
func TestDPoPReplayE2E(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	srv := serveBinary(t, dpopEnv(iss, echoUpstream(t).URL, nil))
	c := newDPoPClient(t, iss, "EdDSA")
	url := srv.url + "/api/contacts/7"
	// EdDSA is refused until configured.
	p := c.proof(t, "GET", url)
	wantRefusal(t, srv, do(t, srv.client, "GET", url, c.withProof(p)), 401, "invalid_dpop_proof", "dpop_algorithm")

	srv = serveBinary(t, dpopEnv(iss, echoUpstream(t).URL, map[string]string{"TOKENWARD_DPOP_ALGORITHMS": "ES256,EdDSA"}))
	url = srv.url + "/api/contacts/7"
	p = c.proof(t, "GET", url)
	if r := do(t, srv.client, "GET", url, c.withProof(p)); r.status != 200 {
		t.Fatalf("first use: status %d; body %s", r.status, r.body)
	}
	wantRefusal(t, srv, do(t, srv.client, "GET", url, c.withProof(p)), 401, "invalid_dpop_proof", "dpop_replay")
}

// TestDPoPForwardProofE2E: TOKENWARD_FORWARD_DPOP_PROOF=true passes the
// verified proof on to the upstream.
func TestDPoPForwardProofE2E(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	srv := serveBinary(t, dpopEnv(iss, echoUpstream(t).URL, map[string]string{"TOKENWARD_FORWARD_DPOP_PROOF": "true"}))
	c := newDPoPClient(t, iss, "ES256")
	url := srv.url + "/api/contacts/7"
	p := c.proof(t, "GET", url)
	r := do(t, srv.client, "GET", url, c.withProof(p))
	if r.status != 200 {
		t.Fatalf("status %d; body %s", r.status, r.body)
	}
	if got := r.seen(t).Header.Get("DPoP"); got != p {
		t.Errorf("upstream got DPoP %q, want the client's proof", got)
	}
}

// TestDPoPPublicURLE2E: with TOKENWARD_PUBLIC_URL the htu a proof must name
// is the public URL's, whatever the Host header or X-Forwarded-* say; the
// listener's own URL is refused.
func TestDPoPPublicURLE2E(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	srv := serveBinary(t, dpopEnv(iss, echoUpstream(t).URL, map[string]string{"TOKENWARD_PUBLIC_URL": "https://api.example.com"}))
	c := newDPoPClient(t, iss, "ES256")
	url := srv.url + "/api/contacts/7?page=2"
	public := "https://api.example.com/api/contacts/7"
	r := do(t, srv.client, "GET", url, func(r *http.Request) {
		c.withProof(c.proof(t, "GET", public))(r)
		r.Header.Set("X-Forwarded-Host", "evil.example")
	})
	if r.status != 200 {
		t.Fatalf("public URL: status %d; body %s", r.status, r.body)
	}
	r = do(t, srv.client, "GET", url, c.withProof(c.proof(t, "GET", srv.url+"/api/contacts/7")))
	wantRefusal(t, srv, r, 401, "invalid_dpop_proof", "dpop_url")
}

// TestDPoPForwardAuthE2E: forward-auth checks the proof against the URL of
// the original request as the gateway names it: Traefik's X-Forwarded-*
// (method, proto, host, uri) and ingress-nginx's X-Original-URL. The answer
// carries the identity headers for the gateway to copy.
func TestDPoPForwardAuthE2E(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	srv := serveBinary(t, dpopEnv(iss, "", map[string]string{"TOKENWARD_MODE": modeForwardAuth}))
	c := newDPoPClient(t, iss, "ES256")
	public := "https://api.example.com/api/contacts/7"
	traefik := func(r *http.Request) {
		r.Header.Set("X-Forwarded-Method", "GET")
		r.Header.Set("X-Forwarded-Proto", "https")
		r.Header.Set("X-Forwarded-Host", "api.example.com")
		r.Header.Set("X-Forwarded-Uri", "/api/contacts/7?page=2")
	}
	nginx := func(r *http.Request) {
		r.Header.Set("X-Original-Method", "GET")
		r.Header.Set("X-Original-URL", public+"?page=2")
	}
	for name, gw := range map[string]func(*http.Request){"traefik": traefik, "ingress-nginx": nginx} {
		t.Run(name, func(t *testing.T) {
			r := do(t, srv.client, "GET", srv.url+"/auth", func(r *http.Request) {
				gw(r)
				c.withProof(c.proof(t, "GET", public))(r)
			})
			if r.status != 200 {
				t.Fatalf("status %d; body %s", r.status, r.body)
			}
			if got := r.header.Get("X-Auth-DPoP-JKT"); got != c.key.Thumbprint() {
				t.Errorf("answer X-Auth-DPoP-JKT %q, want %q", got, c.key.Thumbprint())
			}
			if got := r.header.Get("X-Auth-Token-Type"); got != "DPoP" {
				t.Errorf("answer X-Auth-Token-Type %q, want DPoP", got)
			}
			// The proof names http://, the gateway https://.
			r = do(t, srv.client, "GET", srv.url+"/auth", func(r *http.Request) {
				gw(r)
				c.withProof(c.proof(t, "GET", "http://api.example.com/api/contacts/7"))(r)
			})
			wantRefusal(t, srv, r, 401, "invalid_dpop_proof", "dpop_url")
		})
	}
}

// TestDPoPNonceE2E: with TOKENWARD_DPOP_NONCE a proof without a nonce gets
// 401 use_dpop_nonce and a DPoP-Nonce to retry with (as DPoP clients do);
// the retry passes. A nonce of the previous window still passes and the
// answer carries the current one (rotation); an older or forged one is
// refused. A second replica with the same secret file accepts the first
// one's nonce: nonces need no shared store.
func TestDPoPNonceE2E(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	up := echoUpstream(t)
	secret := make([]byte, 32)
	rand.Read(secret)
	env := dpopEnv(iss, up.URL, map[string]string{
		"TOKENWARD_DPOP_NONCE":             "true",
		"TOKENWARD_DPOP_NONCE_SECRET_FILE": writeFile(t, "nonce.key", string(secret)),
		"TOKENWARD_PUBLIC_URL":             "https://api.example.com",
	})
	a, b := serveBinary(t, env), serveBinary(t, env)
	c := newDPoPClient(t, iss, "ES256")
	public := "https://api.example.com/api/contacts/7"

	r := do(t, a.client, "GET", a.url+"/api/contacts/7", c.withProof(c.proof(t, "GET", public)))
	wantRefusal(t, a, r, 401, "use_dpop_nonce", "dpop_nonce")
	nonce := r.header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
	}
	for _, s := range []*server{a, b} {
		r = do(t, s.client, "GET", s.url+"/api/contacts/7", c.withProof(c.proof(t, "GET", public, jwkstest.WithNonce(nonce))))
		if r.status != 200 {
			t.Fatalf("retry with the nonce: status %d; body %s", r.status, r.body)
		}
		if got := r.header.Get("DPoP-Nonce"); got != "" && got != nonce {
			t.Errorf("a current nonce got another one back: %q", got)
		}
	}

	// Rotation: nonces of earlier windows, made with the same secret.
	n, err := dpop.NewNonces(secret, dpop.NonceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	previous := n.Current(now.Add(-dpop.DefaultNonceWindow))
	r = do(t, b.client, "GET", b.url+"/api/contacts/7", c.withProof(c.proof(t, "GET", public, jwkstest.WithNonce(previous))))
	if r.status != 200 {
		t.Fatalf("previous window's nonce: status %d; body %s", r.status, r.body)
	}
	if got := r.header.Get("DPoP-Nonce"); got == "" || got == previous {
		t.Errorf("previous window's nonce: answer DPoP-Nonce %q, want the current one", got)
	}
	for name, stale := range map[string]string{
		"two windows old": n.Current(now.Add(-2 * dpop.DefaultNonceWindow)),
		"forged":          strings.Repeat("A", len(nonce)),
	} {
		r = do(t, b.client, "GET", b.url+"/api/contacts/7", c.withProof(c.proof(t, "GET", public, jwkstest.WithNonce(stale))))
		if r.status != 401 || r.header.Get("DPoP-Nonce") == "" {
			t.Errorf("%s nonce: status %d, DPoP-Nonce %q; want 401 with a fresh nonce", name, r.status, r.header.Get("DPoP-Nonce"))
		}
	}
}

// TestDPoPConfigE2E: bad DPoP variables stop the start (status 2), all
// reported at once; the nonce secret is never echoed.
func TestDPoPConfigE2E(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	secret := "short-secret-not-to-be-echoed"
	p := start(t, map[string]string{
		"TOKENWARD_UPSTREAM":                  "http://127.0.0.1:1",
		"TOKENWARD_ISSUERS":                   iss.URL(),
		"TOKENWARD_AUDIENCES":                 audience,
		"TOKENWARD_LISTEN_ADDR":               "127.0.0.1:0",
		"TOKENWARD_ADMIN_ADDR":                "127.0.0.1:0",
		"TOKENWARD_DPOP":                      "sometimes",
		"TOKENWARD_DPOP_ALGORITHMS":           "ES256,HS256,none,ES999",
		"TOKENWARD_DPOP_MAX_AGE":              "-1s",
		"TOKENWARD_DPOP_NONCE":                "true",
		"TOKENWARD_DPOP_NONCE_SECRET_FILE":    writeFile(t, "nonce.key", secret),
		"TOKENWARD_DPOP_REPLAY_STORE":         "memcached://user:hunter2@cache:11211",
		"TOKENWARD_DPOP_REPLAY_TIMEOUT":       "0s",
		"TOKENWARD_PUBLIC_URL":                "https://api.example.com/v1",
		"TOKENWARD_DPOP_REPLAY_PASSWORD_FILE": "",
	}, nil)
	if code := p.exit(t); code != 2 {
		t.Fatalf("exit status %d, want 2", code)
	}
	out := p.stderr.String()
	for _, want := range []string{
		`TOKENWARD_DPOP: "sometimes" is not`,
		`TOKENWARD_DPOP_ALGORITHMS: "HS256" is never accepted`,
		`TOKENWARD_DPOP_ALGORITHMS: "none" is never accepted`,
		`TOKENWARD_DPOP_ALGORITHMS: "ES999" is not supported`,
		`TOKENWARD_DPOP_MAX_AGE: -1s must be positive`,
		`TOKENWARD_DPOP_NONCE_SECRET_FILE:`,
		`TOKENWARD_DPOP_REPLAY_STORE: "memcached://user:xxxxx@cache:11211" is not`,
		`TOKENWARD_DPOP_REPLAY_TIMEOUT: 0s must be positive`,
		`TOKENWARD_PUBLIC_URL: "https://api.example.com/v1" must be`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{secret, "hunter2"} {
		if strings.Contains(out, secret) {
			t.Errorf("stderr shows a secret:\n%s", out)
		}
	}
}

// TestDPoPResourceMetadataE2E: the RFC 9728 document names the proof
// algorithms and, in required mode, that tokens must be DPoP-bound; with
// DPoP disabled it names neither.
func TestDPoPResourceMetadataE2E(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	for _, tc := range []struct {
		mode     string
		algs     []any
		required bool
	}{
		{"allowed", []any{"ES256", "EdDSA"}, false},
		{"required", []any{"ES256", "EdDSA"}, true},
		{"disabled", nil, false},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			srv := serveBinary(t, dpopEnv(iss, echoUpstream(t).URL, map[string]string{
				"TOKENWARD_DPOP":            tc.mode,
				"TOKENWARD_DPOP_ALGORITHMS": "ES256,EdDSA",
				"TOKENWARD_RESOURCE":        audience,
			}))
			r := do(t, srv.client, "GET", srv.url+"/.well-known/oauth-protected-resource", nil)
			if r.status != 200 {
				t.Fatalf("status %d; body %s", r.status, r.body)
			}
			var doc struct {
				Algs     []any `json:"dpop_signing_alg_values_supported"`
				Required *bool `json:"dpop_bound_access_tokens_required"`
			}
			if err := json.Unmarshal(r.body, &doc); err != nil {
				t.Fatal(err)
			}
			if len(doc.Algs) != len(tc.algs) || (len(tc.algs) > 0 && doc.Algs[1] != tc.algs[1]) {
				t.Errorf("dpop_signing_alg_values_supported %v, want %v", doc.Algs, tc.algs)
			}
			if got := doc.Required != nil && *doc.Required; got != tc.required {
				t.Errorf("dpop_bound_access_tokens_required %v, want %v (body %s)", got, tc.required, r.body)
			}
		})
	}
}

// TestDPoPForwardAuthNGINX: DPoP through a real NGINX running the README's
// forward-auth recipe with the README's DPoP lines added: a proof for the
// URL the client used passes (TOKENWARD_PUBLIC_URL), the nonce challenge
// reaches the client with its DPoP-Nonce, and the retry with that nonce
// reaches the API with the key thumbprint, without the client's copy of it
// and without the proof.
func TestDPoPForwardAuthNGINX(t *testing.T) {
	t.Parallel()
	bin := nginxtest.Require(t)
	lines := codeBlock(t, readRepoFile(t, "README.md"), "## DPoP", "```nginx\n# location /, beside")
	lines = "# location /, beside" + lines
	recipe := readRepoFile(t, "proxy/testdata/nginx-forward-auth.conf")
	anchor := "            auth_request_set $tokenward_sub $upstream_http_x_auth_subject;\n"
	if !strings.Contains(recipe, anchor) {
		t.Fatal("the recipe has changed: no X-Auth-Subject auth_request_set line to add the DPoP lines after")
	}
	recipe = strings.Replace(recipe, anchor, anchor+lines+
		"            auth_request_set $tokenward_jkt $upstream_http_x_auth_dpop_jkt;\n"+
		"            proxy_set_header X-Auth-DPoP-JKT $tokenward_jkt;\n", 1)

	iss := newIssuer(t)
	up := echoUpstream(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	twAddr := ln.Addr().String()
	ln.Close() // tokenward listens there; NGINX must know it first
	ngx := nginxtest.Start(t, bin, recipe, nginxtest.Vars{Tokenward: twAddr, API: strings.TrimPrefix(up.URL, "http://")})
	secret := make([]byte, 32)
	rand.Read(secret)
	srv := serveBinary(t, dpopEnv(iss, "", map[string]string{
		"TOKENWARD_MODE":                   modeForwardAuth,
		"TOKENWARD_LISTEN_ADDR":            twAddr,
		"TOKENWARD_PUBLIC_URL":             ngx.URL,
		"TOKENWARD_DPOP_NONCE":             "true",
		"TOKENWARD_DPOP_NONCE_SECRET_FILE": writeFile(t, "nonce.key", string(secret)),
	}))
	c := newDPoPClient(t, iss, "ES256")
	url := ngx.URL + "/api/contacts/7"

	r := do(t, ngx.Client, "GET", url+"?page=2", c.withProof(c.proof(t, "GET", url)))
	nonce := r.header.Get("DPoP-Nonce")
	if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) || nonce == "" {
		t.Fatalf("through NGINX without a nonce: status %d, WWW-Authenticate %q, DPoP-Nonce %q; want 401 use_dpop_nonce with a nonce",
			r.status, r.header.Get("WWW-Authenticate"), nonce)
	}
	srv.stderr.waitLog(t, "request refused", "reason", "dpop_nonce")
	r = do(t, ngx.Client, "GET", url+"?page=2", func(r *http.Request) {
		c.withProof(c.proof(t, "GET", url, jwkstest.WithNonce(nonce)))(r)
		r.Header.Set("X-Auth-DPoP-JKT", "forged")
	})
	if r.status != 200 {
		t.Fatalf("through NGINX with the nonce: status %d; body %s", r.status, r.body)
	}
	if got := r.seen(t).Header.Values("X-Auth-Dpop-Jkt"); len(got) != 1 || got[0] != c.key.Thumbprint() {
		t.Errorf("the API got X-Auth-DPoP-JKT %q, want the key's thumbprint only", got)
	}
	if got := r.seen(t).Header.Values("Dpop"); len(got) != 0 {
		t.Errorf("the API got the client's DPoP proof (%d), want none", len(got))
	}
	// A proof for tokenward's own address, not the one the client used.
	r = do(t, ngx.Client, "GET", url, c.withProof(c.proof(t, "GET", "http://"+twAddr+"/api/contacts/7", jwkstest.WithNonce(nonce))))
	if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
		t.Errorf("proof for tokenward's address: status %d, WWW-Authenticate %q; want 401 invalid_dpop_proof", r.status, r.header.Get("WWW-Authenticate"))
	}
}
