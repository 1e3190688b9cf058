package jwkstest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/jwks/jwkstest"
)

// TestMintVerifies checks, for every algorithm, that the JWKS publishes the
// signing key's public half in the right JWK form and that tokens verify with
// it by crypto/* alone.
func TestMintVerifies(t *testing.T) {
	tests := []struct {
		alg     string
		kty     string
		members []string // besides kty, kid, use, alg
	}{
		{"", "RSA", []string{"n", "e"}}, // zero value: RS256
		{"RS256", "RSA", []string{"n", "e"}},
		{"RS384", "RSA", []string{"n", "e"}},
		{"RS512", "RSA", []string{"n", "e"}},
		{"PS256", "RSA", []string{"n", "e"}},
		{"PS384", "RSA", []string{"n", "e"}},
		{"PS512", "RSA", []string{"n", "e"}},
		{"ES256", "EC", []string{"crv", "x", "y"}},
		{"ES384", "EC", []string{"crv", "x", "y"}},
		{"ES512", "EC", []string{"crv", "x", "y"}},
		{"EdDSA", "OKP", []string{"crv", "x"}},
	}
	for _, tt := range tests {
		t.Run("alg="+tt.alg, func(t *testing.T) {
			iss := jwkstest.NewIssuerWithOptions(jwkstest.Options{Algorithm: tt.alg})
			defer iss.Close()
			key := iss.SigningKey()
			wantAlg := tt.alg
			if wantAlg == "" {
				wantAlg = "RS256"
			}
			if key.Algorithm != wantAlg {
				t.Fatalf("SigningKey().Algorithm = %q, want %q", key.Algorithm, wantAlg)
			}

			kids, keys := fetchJWKS(t, iss.JWKSURL())
			if !slices.Equal(kids, []string{key.ID}) {
				t.Fatalf("JWKS kids = %q, want [%q]", kids, key.ID)
			}
			j := keys[key.ID]
			wantMembers := append([]string{"alg", "kid", "kty", "use"}, tt.members...)
			slices.Sort(wantMembers)
			if got := slices.Sorted(maps.Keys(j)); !slices.Equal(got, wantMembers) {
				t.Errorf("JWK members = %q, want %q (public members only)", got, wantMembers)
			}
			if j.str("kty") != tt.kty || j.str("alg") != wantAlg || j.str("use") != "sig" {
				t.Errorf("JWK kty, alg, use = %q, %q, %q; want %q, %q, \"sig\"", j.str("kty"), j.str("alg"), j.str("use"), tt.kty, wantAlg)
			}
			pub, err := publicKey(j)
			if err != nil {
				t.Fatalf("decoding JWK: %v", err)
			}
			if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Fatal("the published key is not the signing key")
			}

			token, err := iss.Mint(iss.Claims("https://api.example.com", nil))
			if err != nil {
				t.Fatal(err)
			}
			header, claims, err := verify(token, pub, wantAlg)
			if err != nil {
				t.Fatalf("verifying with the published key: %v", err)
			}
			wantHeader := map[string]any{"alg": wantAlg, "typ": "JWT", "kid": key.ID}
			if !maps.Equal(header, wantHeader) {
				t.Errorf("header = %v, want %v", header, wantHeader)
			}
			if claims["iss"] != iss.URL() || claims["aud"] != "https://api.example.com" {
				t.Errorf("claims = %v", claims)
			}

			// The verifier must be able to fail: the same signature over
			// other claims does not verify.
			parts := strings.Split(token, ".")
			forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin"}`)) + "." + parts[2]
			if _, _, err := verify(forged, pub, wantAlg); err == nil {
				t.Error("a signature over other claims verified")
			}
		})
	}
}

func TestKeySign(t *testing.T) {
	key, err := jwkstest.NewKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	other, err := jwkstest.NewKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	if key.ID == "" || key.ID == other.ID {
		t.Fatalf("kids %q and %q: want distinct, non-empty", key.ID, other.ID)
	}
	claims := map[string]any{"sub": "someone"}
	tests := []struct {
		name   string
		header map[string]any
		want   map[string]any
	}{
		{"defaults", nil, map[string]any{"alg": "ES256", "typ": "JWT", "kid": key.ID}},
		{"typ at+jwt", map[string]any{"typ": "at+jwt"}, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": key.ID}},
		{"typ deleted", map[string]any{"typ": nil}, map[string]any{"alg": "ES256", "kid": key.ID}},
		{"kid deleted", map[string]any{"kid": nil}, map[string]any{"alg": "ES256", "typ": "JWT"}},
		// The header may lie; the signature is still ES256 by this key.
		{"alg and kid lie", map[string]any{"alg": "RS256", "kid": "someone-else"}, map[string]any{"alg": "RS256", "typ": "JWT", "kid": "someone-else"}},
		{"jku added", map[string]any{"jku": "http://evil.example/jwks.json"}, map[string]any{"alg": "ES256", "typ": "JWT", "kid": key.ID, "jku": "http://evil.example/jwks.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, err := key.Sign(tt.header, claims)
			if err != nil {
				t.Fatal(err)
			}
			header, got, err := verify(token, key.Public(), "ES256")
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if !maps.Equal(header, tt.want) {
				t.Errorf("header = %v, want %v", header, tt.want)
			}
			if !maps.Equal(got, claims) {
				t.Errorf("claims = %v, want %v", got, claims)
			}
		})
	}
}

func TestKeyErrors(t *testing.T) {
	rsaKey, err := jwkstest.NewKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"", "none", "HS256", "rs256", "ES256K", "Ed25519"} {
		if _, err := jwkstest.NewKey(alg); err == nil {
			t.Errorf("NewKey(%q): no error", alg)
		}
	}
	bad := []struct {
		name string
		key  *jwkstest.Key
	}{
		{"nil key", nil},
		{"no private key", &jwkstest.Key{ID: "k", Algorithm: "RS256"}},
		{"no kid", &jwkstest.Key{Algorithm: "RS256", Private: rsaKey.Private}},
		{"unknown alg", &jwkstest.Key{ID: "k", Algorithm: "HS256", Private: rsaKey.Private}},
		{"RSA key for ES256", &jwkstest.Key{ID: "k", Algorithm: "ES256", Private: rsaKey.Private}},
		{"P-256 key for ES384", &jwkstest.Key{ID: "k", Algorithm: "ES384", Private: p256}},
		{"P-256 key for RS256", &jwkstest.Key{ID: "k", Algorithm: "RS256", Private: p256}},
		{"Ed25519 key for ES256", &jwkstest.Key{ID: "k", Algorithm: "ES256", Private: edKey}},
	}
	iss := newIssuer(t)
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.key.Sign(nil, map[string]any{}); err == nil {
				t.Error("Sign: no error")
			}
			if err := iss.PublishKey(tt.key); err == nil {
				t.Error("PublishKey: no error")
			}
		})
	}
	// Values JSON cannot encode are reported, not panicked on.
	if _, err := rsaKey.Sign(nil, map[string]any{"f": func() {}}); err == nil {
		t.Error("Sign with unencodable claims: no error")
	}
	if _, err := rsaKey.Sign(map[string]any{"x": make(chan int)}, nil); err == nil {
		t.Error("Sign with unencodable header: no error")
	}
	// A hand-built key fit for its algorithm works.
	ok := &jwkstest.Key{ID: "hand-made", Algorithm: "PS256", Private: rsaKey.Private}
	token, err := ok.Sign(nil, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := verify(token, ok.Public(), "PS256"); err != nil {
		t.Errorf("hand-made key: %v", err)
	}
}

// TestJWKSPublishesNoPrivateMembers decodes the JWKS generically, so a
// private member ("d", "p", ...) anywhere would show.
func TestJWKSPublishesNoPrivateMembers(t *testing.T) {
	iss := newIssuer(t)
	for _, alg := range []string{"RS256", "EdDSA", "ES384"} {
		if _, err := iss.AddKey(alg); err != nil {
			t.Fatal(err)
		}
	}
	_, _, body := get(t, iss.JWKSURL())
	var set map[string][]map[string]json.RawMessage
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	if len(set["keys"]) != 4 {
		t.Fatalf("%d keys, want 4", len(set["keys"]))
	}
	for _, k := range set["keys"] {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("JWK has private member %q", private)
			}
		}
	}
}

// TestNewKeyRSADistinct: RSA keys from the pool made in advance and those
// generated after it is spent are valid and never repeat in a process.
func TestNewKeyRSADistinct(t *testing.T) {
	seen := map[string]bool{}
	for i := range 98 { // past the pool's 96, whatever other tests took
		k, err := jwkstest.NewKey("RS256")
		if err != nil {
			t.Fatal(err)
		}
		priv := k.Private.(*rsa.PrivateKey)
		if err := priv.Validate(); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
		if n := priv.N.String(); seen[n] {
			t.Fatalf("key %d repeats an earlier key", i)
		} else {
			seen[n] = true
		}
		if priv.N.BitLen() != 2048 {
			t.Fatalf("key %d has %d bits", i, priv.N.BitLen())
		}
	}
}
