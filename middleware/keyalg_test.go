package middleware_test

import (
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
)

// A key published without "alg" verifies one algorithm only: the first
// configured algorithm its key fits, in the allow-list's order. With RS256
// and PS256 both allowed, one RSA key does not verify both (issue 9,
// finding 11).
func TestKeyWithoutAlgBoundToOneAlgorithm(t *testing.T) {
	rs := newKey(t, "RS256")
	ps := &jwkstest.Key{ID: rs.ID, Algorithm: "PS256", Private: rs.Private} // the same RSA key, signing PSS
	es := newKey(t, "ES256")
	noAlg := func(k *jwkstest.Key) map[string]any { j := publicJWK(t, k); delete(j, "alg"); return j }
	set, err := jwks.NewStatic(jwksJSON(t, noAlg(rs), noAlg(es)))
	if err != nil {
		t.Fatal(err)
	}
	c := claimsAt(tenant, epoch, nil)
	for _, tt := range []struct {
		algs          []string
		valid, refuse *jwkstest.Key
	}{
		{[]string{"RS256", "PS256", "ES256"}, rs, ps},
		{[]string{"PS256", "RS256", "ES256"}, ps, rs},
		{[]string{"ES256", "PS256", "RS256"}, ps, rs}, // EC first changes nothing for RSA keys
	} {
		t.Run(tt.valid.Algorithm+" of "+tt.algs[0]+","+tt.algs[1], func(t *testing.T) {
			v := newValidator(t, []middleware.Issuer{{URL: tenant, Keys: set}},
				middleware.ValidatorOptions{Algorithms: tt.algs, Now: func() time.Time { return epoch }})
			if _, err := v.Validate(testContext(t), sign(t, tt.valid, nil, c)); err != nil {
				t.Fatalf("%s token: %v", tt.valid.Algorithm, err)
			}
			if _, err := v.Validate(testContext(t), sign(t, es, nil, c)); err != nil {
				t.Fatalf("ES256 token (the EC key's only algorithm): %v", err)
			}
			tok := sign(t, tt.refuse, nil, c)
			claims, err := v.Validate(testContext(t), tok)
			wantReason(t, claims, err, middleware.ErrAlgorithm, tok)
		})
	}
}

// A key published for encryption ("key_ops":["encrypt"], no "use") is not a
// verification key: a token it signed is refused (issue 9, finding 10).
func TestEncryptionKeyDoesNotVerify(t *testing.T) {
	rs, es, good := newKey(t, "RS256"), newKey(t, "ES256"), newKey(t, "ES384")
	forEncryption := func(k *jwkstest.Key) map[string]any {
		j := publicJWK(t, k)
		delete(j, "use")
		j["key_ops"] = []string{"encrypt"}
		return j
	}
	set, err := jwks.NewStatic(jwksJSON(t, forEncryption(rs), forEncryption(es), publicJWK(t, good)))
	if err != nil {
		t.Fatal(err)
	}
	v := newValidator(t, []middleware.Issuer{{URL: tenant, Keys: set}},
		middleware.ValidatorOptions{Algorithms: allAlgorithms, Now: func() time.Time { return epoch }})
	c := claimsAt(tenant, epoch, nil)
	if _, err := v.Validate(testContext(t), sign(t, good, nil, c)); err != nil {
		t.Fatalf("control: %v", err)
	}
	runAttacks(t, v, []attackCase{
		{"RSA key for encryption", sign(t, rs, nil, c), middleware.ErrUnknownKey},
		{"EC key for encryption", sign(t, es, nil, c), middleware.ErrUnknownKey},
	})
}
