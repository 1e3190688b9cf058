package middleware_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tokenward/tokenward/dpop"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
)

// Attack review of the DPoP proof check (RFC 9449): each test is a way a
// proof that must be refused was accepted.

func b64JSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b)
}

// TestDPoPAttackStripPrefix: the middleware mounted under http.StripPrefix
// compared htu with the stripped path: the client's proof for the URL it
// used was refused, and a proof for another resource (the stripped path at
// the root) accepted.
func TestDPoPAttackStripPrefix(t *testing.T) {
	f := newDPoPFixture(t)
	key := proofKey(t, "ES256")
	tok := f.bound(t, key)
	mw, err := middleware.New(f.v, middleware.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", http.StripPrefix("/api", mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	if a := do(t, "GET", srv.URL+"/api/x", dpopHeaders(tok, proof(t, key, "GET", srv.URL+"/api/x", tok))); a.status != 200 {
		t.Errorf("proof for the URL used: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", srv.URL+"/api/x", dpopHeaders(tok, proof(t, key, "GET", srv.URL+"/x", tok))); a.status != 401 {
		t.Errorf("proof for %s/x accepted at /api/x: %d", srv.URL, a.status)
	}
}

// TestDPoPAttackCrit: a proof naming a critical header extension the
// verifier does not understand is not a valid JWS (RFC 7515 §4.1.11).
func TestDPoPAttackCrit(t *testing.T) {
	f := newDPoPFixture(t)
	key := proofKey(t, "ES256")
	tok := f.bound(t, key)
	s := f.server(t, middleware.Options{})
	p := proof(t, key, "GET", s.url+"/x", tok, jwkstest.WithHeader(map[string]any{"crit": []string{"b64"}, "b64": false}))
	if a := do(t, "GET", s.url+"/x", dpopHeaders(tok, p)); a.status != 401 {
		t.Errorf("proof with crit: %d", a.status)
	}
}

// TestDPoPAttackEd25519SmallOrder: the identity point as an Ed25519 jwk
// verifies the signature R=identity, S=0 over any message: anyone can make
// proofs for a token bound to it, with no private key.
func TestDPoPAttackEd25519SmallOrder(t *testing.T) {
	f := newDPoPFixture(t)
	s := f.server(t, middleware.Options{DPoP: middleware.DPoPOptions{Algorithms: []string{"EdDSA"}}})
	x := make([]byte, 32)
	x[0] = 1 // y = 1: the identity
	jwk := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64.EncodeToString(x)}
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + b64.EncodeToString(x) + `"}`))
	claims := f.iss.Claims(audience, nil)
	claims["cnf"] = map[string]any{"jkt": b64.EncodeToString(sum[:])}
	tok, err := f.iss.Mint(claims)
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	sig[0] = 1
	p := b64JSON(t, map[string]any{"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk}) + "." +
		b64JSON(t, map[string]any{"htm": "GET", "htu": s.url + "/x", "iat": f.now().Unix(), "jti": "forged", "ath": dpop.TokenHash(tok)}) + "." + b64.EncodeToString(sig)
	if a := do(t, "GET", s.url+"/x", dpopHeaders(tok, p)); a.status != 401 {
		t.Errorf("forged proof for a small-order key: %d", a.status)
	}
}

// TestDPoPAttackStoreFlood: a client with a token of its own fills the
// memory store with proofs of its own, so that the store forgets another
// client's proof it captured. The proof is still refused as a replay (the
// store refuses what it may have forgotten), and the victim's next, fresh
// proof is accepted.
func TestDPoPAttackStoreFlood(t *testing.T) {
	f := newDPoPFixture(t)
	store := dpop.NewMemoryStore(dpop.MemoryOptions{MaxEntries: 50, Now: f.now})
	s := f.server(t, middleware.Options{DPoP: middleware.DPoPOptions{Replay: store}})
	victim, attacker := proofKey(t, "ES256"), proofKey(t, "ES256")
	vt, at := f.bound(t, victim), f.bound(t, attacker)
	u := s.url + "/x"
	stolen := proof(t, victim, "GET", u, vt, jwkstest.WithIssuedAt(f.now()))
	if a := do(t, "GET", u, dpopHeaders(vt, stolen)); a.status != 200 {
		t.Fatalf("victim: %d", a.status)
	}
	for i := range store.Cap() {
		p := proof(t, attacker, "GET", u, at, jwkstest.WithJTI(fmt.Sprint("flood-", i)), jwkstest.WithIssuedAt(f.now().Add(4*time.Second)))
		if a := do(t, "GET", u, dpopHeaders(at, p)); a.status != 200 {
			t.Fatalf("flood %d: %d", i, a.status)
		}
	}
	if store.ForgottenEarly() == 0 {
		t.Fatal("the flood did not make the store forget anything: the test shows nothing")
	}
	a := do(t, "GET", u, dpopHeaders(vt, stolen))
	checkRefusal(t, s, a, middleware.ReasonDPoPReplay, http.StatusUnauthorized, "invalid_dpop_proof", `DPoP realm="api", algs="ES256", error="invalid_dpop_proof"`)
	f.clock.Add(int64(2 * dpop.FloorSlack))
	if a := do(t, "GET", u, dpopHeaders(vt, proof(t, victim, "GET", u, vt, jwkstest.WithIssuedAt(f.now())))); a.status != 200 {
		t.Errorf("the victim's fresh proof after the flood: %d (%v)", a.status, s.outcome().Err)
	}
}

// TestDPoPAttackUnboundKeyVerified: a proof whose jwk is not the key the
// token is bound to is refused for that (dpop_binding) before its signature
// is verified, so that a client with any valid token cannot make the guard
// verify signatures with keys of its choosing (an RSA-8192 jwk with
// e=2^31-1 costs about 4.5 ms per proof, 60 ES256 proofs). Shown here by
// the reason of such a proof with a bad signature.
func TestDPoPAttackUnboundKeyVerified(t *testing.T) {
	f := newDPoPFixture(t)
	key, other := proofKey(t, "ES256"), proofKey(t, "ES256")
	tok := f.bound(t, key)
	s := f.server(t, middleware.Options{})
	p := proof(t, other, "GET", s.url+"/x", tok)
	p = p[:len(p)-4] + "AAAA" // the signature no longer verifies
	a := do(t, "GET", s.url+"/x", dpopHeaders(tok, p))
	checkRefusal(t, s, a, middleware.ReasonDPoPBinding, http.StatusUnauthorized, "invalid_token", `DPoP realm="api", algs="ES256", error="invalid_token"`)
}

// TestDPoPAttackCookieDowngrade: a cnf.jkt token from Options.TokenFrom (a
// cookie) is a bearer token, refused as a downgrade even with a valid
// proof beside it.
func TestDPoPAttackCookieDowngrade(t *testing.T) {
	f := newDPoPFixture(t)
	key := proofKey(t, "ES256")
	tok := f.bound(t, key)
	s := f.server(t, middleware.Options{TokenFrom: middleware.FromCookie("at")})
	u := s.url + "/x"
	a := do(t, "GET", u, map[string][]string{"Dpop": {proof(t, key, "GET", u, tok)}}, &http.Cookie{Name: "at", Value: tok})
	checkRefusal(t, s, a, middleware.ReasonDPoPDowngrade, http.StatusUnauthorized, "invalid_token", `DPoP realm="api", algs="ES256", error="invalid_token"`)
}
