package jwkstest_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
)

// JWKS publishes exactly what an issuer serves for the same keys, and
// PublicJWK each of its members.
func TestJWKSIsWhatTheIssuerServes(t *testing.T) {
	iss := newIssuer(t)
	for _, alg := range []string{"ES256", "EdDSA"} {
		if _, err := iss.AddKey(alg); err != nil {
			t.Fatal(err)
		}
	}
	keys := iss.Keys()
	got, err := jwkstest.JWKS(keys...)
	if err != nil {
		t.Fatal(err)
	}
	status, _, served := get(t, iss.JWKSURL())
	if status != http.StatusOK || !bytes.Equal(got, served) {
		t.Fatalf("JWKS:\n%s\nthe issuer serves (status %d):\n%s", got, status, served)
	}
	var set struct{ Keys []json.RawMessage }
	if err := json.Unmarshal(got, &set); err != nil || len(set.Keys) != len(keys) {
		t.Fatalf("JWKS %s: %v", got, err)
	}
	for i, k := range keys {
		j, err := k.PublicJWK()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(j, set.Keys[i]) {
			t.Errorf("PublicJWK of %s = %s, the set has %s", k.Algorithm, j, set.Keys[i])
		}
		var raw rawJWK
		if err := json.Unmarshal(j, &raw); err != nil {
			t.Fatal(err)
		}
		if pub, err := publicKey(raw); err != nil || !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
			t.Errorf("PublicJWK of %s does not decode to its public key: %v", k.Algorithm, err)
		}
	}
	if empty, err := jwkstest.JWKS(); err != nil || string(empty) != `{"keys":[]}` {
		t.Errorf("JWKS() = %s, %v; want an empty set", empty, err)
	}
	if _, err := jwkstest.JWKS(&jwkstest.Key{ID: "k", Algorithm: "RS256"}); err == nil {
		t.Error("JWKS of a key without a private key: no error")
	}
}

// SignSegments signs the segments as given, however they are encoded: the
// signature verifies, and the segments are the token's, byte for byte.
func TestSignSegments(t *testing.T) {
	enc := base64.RawURLEncoding
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		key, err := jwkstest.NewKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		for name, seg := range map[string][2]string{
			"duplicate members": {enc.EncodeToString([]byte(`{"alg":"none","alg":"` + alg + `","kid":"` + key.ID + `"}`)),
				enc.EncodeToString([]byte(`{"sub":"a","sub":"b"}`))},
			"padded": {base64.URLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `"}`)), base64.URLEncoding.EncodeToString([]byte(`{"a":1}`))},
		} {
			token, err := key.SignSegments(seg[0], seg[1])
			if err != nil {
				t.Fatalf("%s, %s: %v", alg, name, err)
			}
			if !strings.HasPrefix(token, seg[0]+"."+seg[1]+".") || strings.Count(token, ".") != 2 {
				t.Fatalf("%s, %s: token %q does not carry the segments as given", alg, name, token)
			}
			if name == "duplicate members" {
				if _, _, err := verify(token, key.Public(), alg); err != nil {
					t.Errorf("%s, %s: %v", alg, name, err)
				}
			}
		}
	}
	if _, err := (&jwkstest.Key{ID: "k", Algorithm: "HS256"}).SignSegments("e30", "e30"); err == nil {
		t.Error("SignSegments with an unusable key: no error")
	}
}

// ExampleJWKS validates tokens against a static key set, for a test that
// runs no issuer: the JWK Set that jwks.NewStatic (or a file:// JWKS URL)
// reads, made from keys the test generated.
func ExampleJWKS() {
	key, err := jwkstest.NewKey("ES256")
	if err != nil {
		log.Fatal(err)
	}
	set, err := jwkstest.JWKS(key)
	if err != nil {
		log.Fatal(err)
	}
	keys, err := jwks.NewStatic(set)
	if err != nil {
		log.Fatal(err)
	}
	const issuer, audience = "https://tenant.example.com/", "https://api.example.com"
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: issuer, Keys: keys}}, []string{audience},
		middleware.ValidatorOptions{Algorithms: []string{"ES256"}})
	if err != nil {
		log.Fatal(err)
	}
	token, err := key.Sign(nil, map[string]any{
		"iss": issuer, "sub": "auth0|alice", "aud": audience, "exp": time.Now().Add(time.Hour).Unix(),
	})
	if err != nil {
		log.Fatal(err)
	}
	claims, err := v.Validate(context.Background(), token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.Subject)
	// Output: auth0|alice
}
