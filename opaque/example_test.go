package opaque_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/opaque"
	"github.com/tokenward/tokenward/scopes"
)

// ExampleNewIntrospector protects an API that accepts both JWTs and opaque
// tokens, the latter checked with the issuer's RFC 7662 introspection
// endpoint, found by discovery.
func ExampleNewIntrospector() {
	iss := jwkstest.NewIssuerWithOptions(jwkstest.Options{Algorithm: "ES256"})
	defer iss.Close()
	iss.SetIntrospectionClient("tokenward", "s3cret")
	const audience = "https://api.example.com"

	_, endpoint, err := opaque.Discover(context.Background(), nil, iss.URL())
	if err != nil {
		log.Fatal(err)
	}
	in, err := opaque.NewIntrospector(endpoint, opaque.IntrospectorOptions{
		ClientID:     "tokenward",
		ClientSecret: "s3cret", // in production: opaque.ReadSecretFile, or the environment
		Issuer:       iss.URL(),
	})
	if err != nil {
		log.Fatal(err)
	}
	keys, err := jwks.NewRemote(iss.JWKSURL(), jwks.RemoteOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: iss.URL(), Keys: keys}}, []string{audience},
		middleware.ValidatorOptions{Opaque: in, Algorithms: []string{"ES256"}})
	if err != nil {
		log.Fatal(err)
	}
	mw, err := middleware.New(v, middleware.Options{Required: scopes.All("read:contacts")})
	if err != nil {
		log.Fatal(err)
	}
	api := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	defer api.Close()

	active := iss.MintOpaque(iss.Claims(audience, map[string]any{"scope": "read:contacts"}))
	noScope := iss.MintOpaque(iss.Claims(audience, nil))
	revoked := iss.MintOpaque(iss.Claims(audience, map[string]any{"scope": "read:contacts"}))
	iss.RevokeOpaque(revoked)
	jwt, err := iss.Mint(iss.Claims(audience, map[string]any{"scope": "read:contacts"}))
	if err != nil {
		log.Fatal(err)
	}
	for _, tc := range []struct{ name, token string }{
		{"opaque token", active},
		{"same token again", active},
		{"without the scope", noScope},
		{"revoked at the issuer", revoked},
		{"JWT", jwt},
	} {
		req, err := http.NewRequest(http.MethodGet, api.URL, nil)
		if err != nil {
			log.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tc.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Printf("%s: %s\n", tc.name, resp.Status)
	}
	fmt.Println("introspection calls:", iss.IntrospectionRequests())
	// Output:
	// opaque token: 200 OK
	// same token again: 200 OK
	// without the scope: 403 Forbidden
	// revoked at the issuer: 401 Unauthorized
	// JWT: 200 OK
	// introspection calls: 3
}

// ExampleNewUserInfo checks an Auth0-style opaque token with the issuer's
// /userinfo endpoint: the profile becomes the claims, without scopes.
func ExampleNewUserInfo() {
	iss := jwkstest.NewIssuerWithOptions(jwkstest.Options{Algorithm: "ES256"})
	defer iss.Close()
	endpoint, _, err := opaque.Discover(context.Background(), nil, iss.URL())
	if err != nil {
		log.Fatal(err)
	}
	ui, err := opaque.NewUserInfo(endpoint, opaque.UserInfoOptions{Issuer: iss.URL()})
	if err != nil {
		log.Fatal(err)
	}
	token := iss.MintOpaque(iss.Claims(iss.URL()+"userinfo", map[string]any{"email": "ada@example.com", "scope": "openid email"}))

	c, err := ui.CheckOpaque(context.Background(), token)
	if err != nil {
		log.Fatal(err)
	}
	var profile struct {
		Email string `json:"email"`
	}
	if err := c.Decode(&profile); err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Subject, profile.Email, c.Issuer == iss.URL(), c.Scopes.Len())

	_, err = ui.CheckOpaque(context.Background(), "dW5rbm93bi10b2tlbg")
	fmt.Println(err)
	// Output:
	// auth0|test-user ada@example.com true 0
	// tokenward: token not active (userinfo refused the token)
}

// ExampleSecret shows that a client secret does not leak into logs.
func ExampleSecret() {
	opts := opaque.IntrospectorOptions{ClientID: "tokenward", ClientSecret: "s3cret"}
	fmt.Println(opts.ClientSecret)
	fmt.Printf("%+v\n", opts.ClientSecret)
	// Output:
	// [REDACTED]
	// [REDACTED]
}
