package middleware_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
)

// ExampleDPoPOptions protects an API that requires DPoP-bound tokens
// (RFC 9449): every request carries a token bound to the client's key and
// a fresh proof of possession of that key, for its method and URL. A bearer
// token, or a proof used twice, is refused.
func ExampleDPoPOptions() {
	idp := jwkstest.NewIssuer()
	defer idp.Close()
	const audience = "https://api.example.com"
	keys, err := jwks.NewRemote(idp.JWKSURL(), jwks.RemoteOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: idp.URL(), Keys: keys}}, []string{audience}, middleware.ValidatorOptions{})
	if err != nil {
		log.Fatal(err)
	}
	mw, err := middleware.New(v, middleware.Options{DPoP: middleware.DPoPOptions{
		Mode:       middleware.DPoPRequired,
		Algorithms: []string{"ES256", "EdDSA"},
		// Behind a load balancer, the URL clients use; proofs name it.
		PublicURL: "https://api.example.com",
	}})
	if err != nil {
		log.Fatal(err)
	}
	api := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := middleware.ClaimsFrom(r.Context())
		fmt.Fprint(w, c.TokenType, " ", c.Confirmation.KeyThumbprint)
	})))
	defer api.Close()

	client, err := jwkstest.NewProofKey("ES256")
	if err != nil {
		log.Fatal(err)
	}
	token, err := idp.MintDPoP(idp.Claims(audience, nil), client)
	if err != nil {
		log.Fatal(err)
	}
	proof, err := client.Proof(http.MethodGet, "https://api.example.com/contacts", token)
	if err != nil {
		log.Fatal(err)
	}
	bearer, err := idp.Mint(idp.Claims(audience, nil))
	if err != nil {
		log.Fatal(err)
	}
	send := func(authorization, proof string) {
		req, _ := http.NewRequest(http.MethodGet, api.URL+"/contacts", nil)
		req.Header.Set("Authorization", authorization)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			fmt.Println(resp.Status, resp.Header.Get("WWW-Authenticate")[:len(`DPoP realm="api", algs="ES256 EdDSA"`)])
			return
		}
		body, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.Status, string(body) == "DPoP "+client.Thumbprint())
	}
	send("DPoP "+token, proof)   // passes
	send("DPoP "+token, proof)   // the same proof again: a replay
	send("Bearer "+bearer, "")   // a bearer token where DPoP is required
	send("Bearer "+token, proof) // a DPoP-bound token as a bearer token
	// Output:
	// 200 OK true
	// 401 Unauthorized DPoP realm="api", algs="ES256 EdDSA"
	// 401 Unauthorized DPoP realm="api", algs="ES256 EdDSA"
	// 401 Unauthorized DPoP realm="api", algs="ES256 EdDSA"
}
