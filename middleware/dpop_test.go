package middleware_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenward/tokenward/dpop"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
)

// dpopFixture is an issuer, a validator trusting it (with a cache, as in
// production), and the means to start middleware servers over them.
type dpopFixture struct {
	iss   *jwkstest.Issuer
	v     *middleware.Validator
	clock *atomic.Int64 // Unix nanoseconds; the validator's and guard's clock
}

func newDPoPFixture(t *testing.T) *dpopFixture {
	t.Helper()
	clock := new(atomic.Int64)
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	iss := startIssuer(t, jwkstest.Options{Now: now})
	v := newValidator(t, []middleware.Issuer{{URL: iss.URL(), Keys: remoteFor(t, iss, jwks.RemoteOptions{})}},
		middleware.ValidatorOptions{Now: now, CacheSize: 1000})
	return &dpopFixture{iss: iss, v: v, clock: clock}
}

func (f *dpopFixture) now() time.Time { return time.Unix(0, f.clock.Load()) }

// dpopServer is middleware.New with opts in front of a handler that answers
// with the token type and the subject; last is the outcome of the last
// request.
type dpopServer struct {
	url  string
	mu   sync.Mutex
	last middleware.Outcome
}

func (s *dpopServer) outcome() middleware.Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (f *dpopFixture) server(t *testing.T, opts middleware.Options) *dpopServer {
	t.Helper()
	s := &dpopServer{}
	opts.Observe = func(_ *http.Request, o middleware.Outcome) {
		s.mu.Lock()
		s.last = o
		s.mu.Unlock()
	}
	mw, err := middleware.New(f.v, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := middleware.ClaimsFrom(r.Context())
		w.Write([]byte(c.TokenType + " " + c.Subject))
	})))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (f *dpopFixture) bound(t testing.TB, key *jwkstest.ProofKey) string {
	t.Helper()
	tok, err := f.iss.MintDPoP(f.iss.Claims(audience, nil), key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *dpopFixture) bearer(t testing.TB) string {
	t.Helper()
	tok, err := f.iss.Mint(f.iss.Claims(audience, nil))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func proofKey(t testing.TB, alg string) *jwkstest.ProofKey {
	t.Helper()
	k, err := jwkstest.NewProofKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func proof(t testing.TB, k *jwkstest.ProofKey, method, url, token string, opts ...jwkstest.ProofOption) string {
	t.Helper()
	p, err := k.Proof(method, url, token, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func dpopHeaders(token string, proofs ...string) map[string][]string {
	return map[string][]string{"Authorization": {"DPoP " + token}, "Dpop": proofs}
}

// checkRefusal asserts the answer and the reason of a refused request.
func checkRefusal(t *testing.T, s *dpopServer, a answer, reason middleware.Reason, status int, code, challenge string) {
	t.Helper()
	if a.status != status {
		t.Errorf("status %d, want %d (body %q)", a.status, status, a.body)
	}
	if err := s.outcome().Err; err == nil || err.Reason != reason {
		t.Errorf("reason %v, want %s", err, reason)
	}
	var body struct{ Error string }
	if err := json.Unmarshal([]byte(a.body), &body); err != nil || body.Error != code {
		t.Errorf("body %q, want error %q", a.body, code)
	}
	if got := a.header.Values("WWW-Authenticate"); challenge == "" && len(got) != 0 ||
		challenge != "" && (len(got) != 1 || !strings.HasPrefix(got[0], challenge)) {
		t.Errorf("WWW-Authenticate %q, want one starting %q", got, challenge)
	}
}

// TestDPoPRejections is one case per reason a DPoP request is refused for,
// each through the middleware over real HTTP, with its status, error code,
// challenge and reason.
func TestDPoPRejections(t *testing.T) {
	f := newDPoPFixture(t)
	key := proofKey(t, "ES256")
	other := proofKey(t, "ES256")
	ed := proofKey(t, "EdDSA")
	tok := f.bound(t, key)
	edTok := f.bound(t, ed)
	unbound := f.bearer(t)

	allowed := f.server(t, middleware.Options{})
	u := allowed.url + "/contacts"
	const invalidProof = `DPoP realm="api", algs="ES256", error="invalid_dpop_proof"`
	const invalidToken = `DPoP realm="api", algs="ES256", error="invalid_token"`

	withJWK := func(jwk map[string]any) jwkstest.ProofOption {
		return jwkstest.WithHeader(map[string]any{"jwk": jwk})
	}
	private := key.JWK()
	private["d"] = "AAAA"
	replayed := proof(t, key, "GET", u, tok)
	if a := do(t, "GET", u, dpopHeaders(tok, replayed)); a.status != 200 {
		t.Fatalf("first use of the proof: %d %q", a.status, a.body)
	}

	tests := []struct {
		reason    middleware.Reason
		headers   map[string][]string
		code      string
		challenge string
	}{
		{middleware.ReasonDPoPProofMissing, dpopHeaders(tok), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPProofMissing, dpopHeaders(tok, proof(t, key, "GET", u, tok), proof(t, key, "GET", u, tok)), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPProofMalformed, dpopHeaders(tok, "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.c2ln"), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPProofTooLarge, dpopHeaders(tok, proof(t, key, "GET", u, tok, jwkstest.WithClaims(map[string]any{"pad": strings.Repeat("x", 9000)}))), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPType, dpopHeaders(tok, proof(t, key, "GET", u, tok, jwkstest.WithType("JWT"))), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPAlgorithm, dpopHeaders(edTok, proof(t, ed, "GET", u, edTok)), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPAlgorithm, dpopHeaders(tok, proof(t, key, "GET", u, tok, jwkstest.WithAlgorithm("HS256"))), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPKey, dpopHeaders(tok, proof(t, key, "GET", u, tok, withJWK(private))), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPKey, dpopHeaders(tok, proof(t, key, "GET", u, tok, jwkstest.WithHeader(map[string]any{"jwk": nil}))), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPSignature, dpopHeaders(tok, proof(t, other, "GET", u, tok, withJWK(key.JWK()))), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPMethod, dpopHeaders(tok, proof(t, key, "POST", u, tok)), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPURL, dpopHeaders(tok, proof(t, key, "GET", allowed.url+"/other", tok)), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPIAT, dpopHeaders(tok, proof(t, key, "GET", u, tok, jwkstest.WithIssuedAt(f.now().Add(-2*time.Minute)))), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPIAT, dpopHeaders(tok, proof(t, key, "GET", u, tok, jwkstest.WithIssuedAt(f.now().Add(time.Minute)))), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPJTI, dpopHeaders(tok, proof(t, key, "GET", u, tok, jwkstest.WithJTI(""))), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPReplay, dpopHeaders(tok, replayed), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPATH, dpopHeaders(tok, proof(t, key, "GET", u, unbound)), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPATH, dpopHeaders(tok, proof(t, key, "GET", u, "")), "invalid_dpop_proof", invalidProof},
		{middleware.ReasonDPoPBinding, dpopHeaders(tok, proof(t, other, "GET", u, tok)), "invalid_token", invalidToken},
		{middleware.ReasonDPoPBinding, dpopHeaders(unbound, proof(t, key, "GET", u, unbound)), "invalid_token", invalidToken},
		{middleware.ReasonDPoPDowngrade, map[string][]string{"Authorization": {"Bearer " + tok}}, "invalid_token", invalidToken},
	}
	for _, tt := range tests {
		t.Run(string(tt.reason), func(t *testing.T) {
			a := do(t, "GET", u, tt.headers)
			checkRefusal(t, allowed, a, tt.reason, http.StatusUnauthorized, tt.code, tt.challenge)
			if !strings.Contains(a.header.Get("WWW-Authenticate"), `, Bearer realm="api"`) {
				t.Errorf("allowed mode: no Bearer challenge in %q", a.header.Get("WWW-Authenticate"))
			}
			if strings.Contains(a.body, tok) || strings.Contains(a.body, "eyJ") {
				t.Errorf("the answer quotes the token or proof: %q", a.body)
			}
		})
	}

	t.Run(string(middleware.ReasonDPoPRequired), func(t *testing.T) {
		s := f.server(t, middleware.Options{DPoP: middleware.DPoPOptions{Mode: middleware.DPoPRequired}})
		a := do(t, "GET", s.url+"/", map[string][]string{"Authorization": {"Bearer " + unbound}})
		checkRefusal(t, s, a, middleware.ReasonDPoPRequired, 401, "invalid_token", invalidToken)
		if strings.Contains(a.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("required mode offers Bearer: %q", a.header.Get("WWW-Authenticate"))
		}
	})
	t.Run(string(middleware.ReasonDPoPDisabled), func(t *testing.T) {
		s := f.server(t, middleware.Options{DPoP: middleware.DPoPOptions{Mode: middleware.DPoPDisabled}})
		a := do(t, "GET", s.url+"/", dpopHeaders(tok, proof(t, key, "GET", s.url+"/", tok)))
		checkRefusal(t, s, a, middleware.ReasonDPoPDisabled, 401, "invalid_token", `Bearer realm="api", error="invalid_token"`)
		if strings.Contains(a.header.Get("WWW-Authenticate"), "DPoP realm") {
			t.Errorf("disabled mode offers DPoP: %q", a.header.Get("WWW-Authenticate"))
		}
	})
	t.Run(string(middleware.ReasonDPoPNonce), func(t *testing.T) {
		n := nonces(t)
		s := f.server(t, middleware.Options{DPoP: middleware.DPoPOptions{Nonces: n}})
		a := do(t, "GET", s.url+"/", dpopHeaders(tok, proof(t, key, "GET", s.url+"/", tok)))
		checkRefusal(t, s, a, middleware.ReasonDPoPNonce, 401, "use_dpop_nonce", `DPoP realm="api", algs="ES256", error="use_dpop_nonce"`)
		if got, want := a.header.Get("DPoP-Nonce"), n.Current(f.now()); got != want {
			t.Errorf("DPoP-Nonce %q, want %q", got, want)
		}
	})
	t.Run(string(middleware.ReasonDPoPStoreUnavailable), func(t *testing.T) {
		s := f.server(t, middleware.Options{DPoP: middleware.DPoPOptions{Replay: failingStore{}}})
		a := do(t, "GET", s.url+"/", dpopHeaders(tok, proof(t, key, "GET", s.url+"/", tok)))
		checkRefusal(t, s, a, middleware.ReasonDPoPStoreUnavailable, 503, "temporarily_unavailable", "")
		if ra := a.header.Get("Retry-After"); ra == "" {
			t.Error("503 without Retry-After")
		}
		// Bearer requests do not need the store.
		if a := do(t, "GET", s.url+"/", map[string][]string{"Authorization": {"Bearer " + unbound}}); a.status != 200 {
			t.Errorf("bearer while the store is down: %d", a.status)
		}
	})
}

// failingStore is a replay store that cannot answer (a fake, for fault
// injection).
type failingStore struct{}

func (failingStore) Seen(context.Context, [32]byte, time.Duration) (bool, error) {
	return false, errors.New("store unreachable")
}

func nonces(t testing.TB) *dpop.Nonces {
	t.Helper()
	n, err := dpop.NewNonces([]byte(strings.Repeat("s", 32)), dpop.NonceOptions{Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDPoPDowngradeEveryMode: a cnf.jkt token sent as Bearer is refused in
// all three modes (RFC 9449 §7.2), never taken for a bearer token.
func TestDPoPDowngradeEveryMode(t *testing.T) {
	f := newDPoPFixture(t)
	key := proofKey(t, "ES256")
	tok := f.bound(t, key)
	for _, mode := range []middleware.DPoPMode{middleware.DPoPAllowed, middleware.DPoPDisabled, middleware.DPoPRequired} {
		t.Run(mode.String(), func(t *testing.T) {
			s := f.server(t, middleware.Options{DPoP: middleware.DPoPOptions{Mode: mode}})
			a := do(t, "GET", s.url+"/", map[string][]string{"Authorization": {"Bearer " + tok}})
			want := `DPoP realm="api", algs="ES256", error="invalid_token"`
			if mode == middleware.DPoPDisabled {
				want = `Bearer realm="api", error="invalid_token"`
			}
			checkRefusal(t, s, a, middleware.ReasonDPoPDowngrade, 401, "invalid_token", want)
			// And with the DPoP header too: the scheme decides.
			a = do(t, "GET", s.url+"/", map[string][]string{"Authorization": {"Bearer " + tok}, "Dpop": {proof(t, key, "GET", s.url+"/", tok)}})
			checkRefusal(t, s, a, middleware.ReasonDPoPDowngrade, 401, "invalid_token", want)
		})
	}
}

// TestDPoPBothSchemesAllowed: in the default mode, a bearer token and a
// DPoP-bound token with its proof both pass, and the handler sees which.
func TestDPoPBothSchemesAllowed(t *testing.T) {
	f := newDPoPFixture(t)
	for _, alg := range []string{"ES256", "EdDSA", "RS256", "PS256", "ES384"} {
		t.Run(alg, func(t *testing.T) {
			key := proofKey(t, alg)
			tok := f.bound(t, key)
			s := f.server(t, middleware.Options{DPoP: middleware.DPoPOptions{Algorithms: []string{alg}}})
			u := s.url + "/contacts?page=2"
			// htu without the query; twice, with fresh proofs: the token
			// comes from the cache the second time, the proof never does.
			for range 2 {
				a := do(t, "GET", u, dpopHeaders(tok, proof(t, key, "GET", s.url+"/contacts", tok)))
				if a.status != 200 || a.body != "DPoP auth0|test-user" {
					t.Fatalf("DPoP: %d %q", a.status, a.body)
				}
			}
			if c := s.outcome().Claims; c == nil || c.Confirmation == nil || c.Confirmation.KeyThumbprint != key.Thumbprint() {
				t.Errorf("claims %+v: want cnf.jkt %s", c, key.Thumbprint())
			}
			a := do(t, "GET", u, map[string][]string{"Authorization": {"Bearer " + f.bearer(t)}})
			if a.status != 200 || a.body != "Bearer auth0|test-user" {
				t.Fatalf("Bearer: %d %q", a.status, a.body)
			}
		})
	}
}

// TestDPoPNonces: without a nonce the client gets one (use_dpop_nonce),
// with it the request passes and no new one is sent; once the window
// rotates, a success carries the new nonce, and a nonce two windows old is
// refused.
func TestDPoPNonces(t *testing.T) {
	f := newDPoPFixture(t)
	key := proofKey(t, "ES256")
	n := nonces(t)
	s := f.server(t, middleware.Options{DPoP: middleware.DPoPOptions{Nonces: n, MaxAge: time.Hour}})
	u := s.url + "/"
	tok := f.bound(t, key)
	iat := func() jwkstest.ProofOption { return jwkstest.WithIssuedAt(f.now()) }

	a := do(t, "GET", u, dpopHeaders(tok, proof(t, key, "GET", u, tok, iat())))
	checkRefusal(t, s, a, middleware.ReasonDPoPNonce, 401, "use_dpop_nonce", `DPoP realm="api", algs="ES256", error="use_dpop_nonce"`)
	first := a.header.Get("DPoP-Nonce")
	if first == "" {
		t.Fatal("no DPoP-Nonce with use_dpop_nonce")
	}
	a = do(t, "GET", u, dpopHeaders(tok, proof(t, key, "GET", u, tok, iat(), jwkstest.WithNonce(first))))
	if a.status != 200 {
		t.Fatalf("with the nonce: %d %q", a.status, a.body)
	}
	if got := a.header.Get("DPoP-Nonce"); got != "" {
		t.Errorf("DPoP-Nonce %q sent while the client's is current", got)
	}
	// The next window: the old nonce still passes, and the answer
	// carries the new one.
	f.clock.Add(int64(time.Minute))
	a = do(t, "GET", u, dpopHeaders(tok, proof(t, key, "GET", u, tok, iat(), jwkstest.WithNonce(first))))
	if a.status != 200 {
		t.Fatalf("previous window's nonce: %d %q", a.status, a.body)
	}
	second := a.header.Get("DPoP-Nonce")
	if second == "" || second == first || second != n.Current(f.now()) {
		t.Fatalf("rotated DPoP-Nonce %q (first %q)", second, first)
	}
	// Two windows on, the first is stale.
	f.clock.Add(int64(time.Minute))
	a = do(t, "GET", u, dpopHeaders(tok, proof(t, key, "GET", u, tok, iat(), jwkstest.WithNonce(first))))
	checkRefusal(t, s, a, middleware.ReasonDPoPNonce, 401, "use_dpop_nonce", `DPoP realm="api", algs="ES256", error="use_dpop_nonce"`)
	if a.header.Get("DPoP-Nonce") != n.Current(f.now()) {
		t.Errorf("stale nonce answered with DPoP-Nonce %q", a.header.Get("DPoP-Nonce"))
	}
	// A forged one.
	a = do(t, "GET", u, dpopHeaders(tok, proof(t, key, "GET", u, tok, iat(), jwkstest.WithNonce("AAAAAAAAAAAAAAAAAAAAAA"))))
	checkRefusal(t, s, a, middleware.ReasonDPoPNonce, 401, "use_dpop_nonce", `DPoP realm="api", algs="ES256", error="use_dpop_nonce"`)
}

// TestDPoPURL: htu is compared after normalization, with the request's
// scheme and host, or PublicURL's; X-Forwarded-* count only from a trusted
// proxy.
func TestDPoPURL(t *testing.T) {
	f := newDPoPFixture(t)
	key := proofKey(t, "ES256")
	tok := f.bound(t, key)
	check := func(t *testing.T, s *dpopServer, htu string, extra map[string][]string, want int) {
		t.Helper()
		h := dpopHeaders(tok, proof(t, key, "GET", htu, tok))
		for k, v := range extra {
			h[k] = v
		}
		a := do(t, "GET", s.url+"/a/b%7e/c", h)
		if a.status != want {
			t.Errorf("htu %q with %v: %d, want %d (%v)", htu, extra, a.status, want, s.outcome().Err)
		}
	}
	t.Run("normalized", func(t *testing.T) {
		s := f.server(t, middleware.Options{})
		host := strings.TrimPrefix(s.url, "http://")
		check(t, s, "HTTP://"+strings.ToUpper(host)+"/a/./b~/c#frag", nil, 200)
		check(t, s, "http://"+host+"/a/x/../b%7E/c?q=1", nil, 200)
		check(t, s, "https://"+host+"/a/b~/c", nil, 401)
		check(t, s, "http://"+host+"/A/b~/c", nil, 401)
	})
	t.Run("untrusted X-Forwarded", func(t *testing.T) {
		s := f.server(t, middleware.Options{})
		fwd := map[string][]string{"X-Forwarded-Host": {"api.example.com"}, "X-Forwarded-Proto": {"https"}}
		check(t, s, "https://api.example.com/a/b~/c", fwd, 401)
		check(t, s, s.url+"/a/b~/c", fwd, 200)
	})
	t.Run("trusted X-Forwarded", func(t *testing.T) {
		s := f.server(t, middleware.Options{TrustedProxies: []string{"127.0.0.1"}})
		fwd := map[string][]string{"X-Forwarded-Host": {"api.example.com"}, "X-Forwarded-Proto": {"https"}}
		check(t, s, "https://api.example.com:443/a/b~/c", fwd, 200)
		check(t, s, s.url+"/a/b~/c", fwd, 401)
	})
	t.Run("PublicURL", func(t *testing.T) {
		s := f.server(t, middleware.Options{DPoP: middleware.DPoPOptions{PublicURL: "https://API.example.com"}})
		check(t, s, "https://api.example.com/a/b~/c", nil, 200)
		check(t, s, s.url+"/a/b~/c", nil, 401)
	})
}

func TestDPoPOptionsChecked(t *testing.T) {
	bad := []middleware.DPoPOptions{
		{Algorithms: []string{"none"}},
		{Algorithms: []string{"HS256"}},
		{Algorithms: []string{}},
		{MaxAge: -1},
		{PublicURL: "https://api.example.com/v1"},
		{PublicURL: "ftp://api.example.com"},
		{Mode: 7},
	}
	for _, o := range bad {
		if err := middleware.CheckDPoPOptions(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if err := middleware.CheckDPoPOptions(middleware.DPoPOptions{}); err != nil {
		t.Errorf("zero options: %v", err)
	}
	for _, s := range []string{"allowed", "disabled", "required"} {
		m, err := middleware.ParseDPoPMode(s)
		if err != nil || m.String() != s {
			t.Errorf("ParseDPoPMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := middleware.ParseDPoPMode("on"); err == nil {
		t.Error(`"on" accepted`)
	}
}
