package opaque_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/opaque"
)

// TestIntrospectionDPoP: an introspection answer with cnf.jkt binds the
// opaque token to the key as a JWT's would: it passes only with the DPoP
// scheme and a proof by that key, every time (the answer is cached, the
// proof never), and is refused as Bearer.
func TestIntrospectionDPoP(t *testing.T) {
	iss := newIssuer(t)
	in := newIntrospector(t, iss, opaque.IntrospectorOptions{})
	v := newValidator(t, iss.URL(), in, middleware.ValidatorOptions{})
	api := newAPI(t, v)
	key, err := jwkstest.NewProofKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	other, err := jwkstest.NewProofKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	token := iss.MintOpaque(iss.Claims(audience, map[string]any{"cnf": map[string]any{"jkt": key.Thumbprint()}}))
	url := api.URL + "/contacts"
	send := func(scheme string, k *jwkstest.ProofKey) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", scheme+" "+token)
		if k != nil {
			p, err := k.Proof(http.MethodGet, url, token, jwkstest.WithIssuedAt(time.Now()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("DPoP", p)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 2 {
		if got := send("DPoP", key); got != http.StatusOK {
			t.Fatalf("DPoP with its proof (%d): %d", i, got)
		}
	}
	if got := send("DPoP", other); got != http.StatusUnauthorized {
		t.Errorf("proof by another key: %d", got)
	}
	if got := send("DPoP", nil); got != http.StatusUnauthorized {
		t.Errorf("no proof: %d", got)
	}
	if got := send("Bearer", key); got != http.StatusUnauthorized {
		t.Errorf("as Bearer: %d", got)
	}
}
