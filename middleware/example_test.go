package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/scopes"
)

// printGET sends a GET with an optional bearer token and prints the answer: the
// body when allowed, the challenge when refused.
func printGET(url, token string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		fmt.Printf("%s: %s\n", resp.Status, body)
		return
	}
	fmt.Printf("%s: %s\n", resp.Status, resp.Header.Get("WWW-Authenticate"))
}

// ExampleNew protects one handler: every request needs a valid access token
// of the trusted issuer for the API's audience, with scope read:contacts.
func ExampleNew() {
	// A test issuer on loopback stands in for the Auth0 tenant; in
	// production the issuer is "https://YOUR_TENANT.auth0.com/".
	idp := jwkstest.NewIssuer()
	defer idp.Close()
	const audience = "https://api.example.com"

	// The issuer's keys, found by OpenID Connect discovery, cached and
	// refreshed in the background.
	keys, err := jwks.NewDiscovered(idp.URL(), jwks.RemoteOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()

	v, err := middleware.NewValidator(
		[]middleware.Issuer{{URL: idp.URL(), Keys: keys}},
		[]string{audience},
		middleware.ValidatorOptions{},
	)
	if err != nil {
		log.Fatal(err)
	}
	protect, err := middleware.New(v, middleware.Options{Required: scopes.All("read:contacts")})
	if err != nil {
		log.Fatal(err)
	}
	contacts := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := middleware.ClaimsFrom(r.Context())
		fmt.Fprintf(w, "contacts of %s", claims.Subject)
	})
	api := httptest.NewServer(protect(contacts))
	defer api.Close()

	reader, err := idp.Mint(idp.Claims(audience, map[string]any{"scope": "openid read:contacts"}))
	if err != nil {
		log.Fatal(err)
	}
	other, err := idp.Mint(idp.Claims(audience, map[string]any{"scope": "openid"}))
	if err != nil {
		log.Fatal(err)
	}
	printGET(api.URL, reader)
	printGET(api.URL, "")
	printGET(api.URL, other)
	printGET(api.URL, "not-a-jwt")
	// Output:
	// 200 OK: contacts of auth0|test-user
	// 401 Unauthorized: Bearer realm="api"
	// 403 Forbidden: Bearer realm="api", error="insufficient_scope", error_description="insufficient scope", scope="read:contacts"
	// 401 Unauthorized: Bearer realm="api", error="invalid_token", error_description="opaque tokens are not accepted here"
}

// ExampleClaims_Decode reads custom claims. Auth0 Actions add them under a
// namespace (a URL the tenant owns); they are decoded into any struct.
func ExampleClaims_Decode() {
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

	token, err := idp.Mint(idp.Claims(audience, map[string]any{
		"https://example.com/roles": []string{"admin", "editor"},
		"https://example.com/org":   map[string]any{"id": "org_42", "plan": "gold"},
	}))
	if err != nil {
		log.Fatal(err)
	}
	claims, err := v.Validate(context.Background(), token)
	if err != nil {
		log.Fatal(err)
	}

	var custom struct {
		Roles []string `json:"https://example.com/roles"`
		Org   struct {
			ID   string `json:"id"`
			Plan string `json:"plan"`
		} `json:"https://example.com/org"`
	}
	if err := claims.Decode(&custom); err != nil {
		log.Fatal(err)
	}
	fmt.Println("subject:", claims.Subject)
	fmt.Println("roles:", custom.Roles)
	fmt.Println("org:", custom.Org.ID, custom.Org.Plan)
	// Output:
	// subject: auth0|test-user
	// roles: [admin editor]
	// org: org_42 gold
}

// Example_multipleIssuers trusts an Auth0 tenant under both of its names: the
// custom domain and the tenant domain issue tokens with different "iss", and
// sign them with the same keys. Each name is matched exactly; sharing one key
// set URL in a jwks.Registry makes one fetch serve both.
func Example_multipleIssuers() {
	// The test issuer publishes the tenant's keys.
	idp := jwkstest.NewIssuer()
	defer idp.Close()
	const (
		audience = "https://api.example.com"
		custom   = "https://login.northwind.com/"
		tenant   = "https://northwind.auth0.com/"
	)

	// In production JWKSURLs is usually left out (discovery finds it);
	// here it points both names at the test issuer's key set.
	reg, err := jwks.NewRegistry([]string{custom, tenant}, jwks.RegistryOptions{
		JWKSURLs: map[string]string{custom: idp.JWKSURL(), tenant: idp.JWKSURL()},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	var issuers []middleware.Issuer
	for _, iss := range reg.Issuers() {
		set, _ := reg.Set(iss)
		issuers = append(issuers, middleware.Issuer{URL: iss, Keys: set})
	}
	v, err := middleware.NewValidator(issuers, []string{audience}, middleware.ValidatorOptions{})
	if err != nil {
		log.Fatal(err)
	}

	for _, iss := range []string{custom, tenant, "https://northwind.eu.auth0.com/", "https://login.northwind.com"} {
		token, err := idp.Mint(idp.Claims(audience, map[string]any{"iss": iss}))
		if err != nil {
			log.Fatal(err)
		}
		claims, err := v.Validate(context.Background(), token)
		var e *middleware.Error
		switch {
		case err == nil:
			fmt.Printf("%-32s accepted, issuer %s\n", iss, claims.Issuer)
		case errors.As(err, &e):
			fmt.Printf("%-32s refused: %s\n", iss, e.ClientDescription())
		}
	}
	fmt.Println("JWKS requests:", idp.JWKSRequests())
	// Output:
	// https://login.northwind.com/     accepted, issuer https://login.northwind.com/
	// https://northwind.auth0.com/     accepted, issuer https://northwind.auth0.com/
	// https://northwind.eu.auth0.com/  refused: issuer not trusted
	// https://login.northwind.com      refused: issuer not trusted
	// JWKS requests: 1
}

// ExampleRequire sets scopes per route: one middleware validates the token
// in front of an http.ServeMux, and Require asks each route for its own
// scopes.
func ExampleRequire() {
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
	protect, err := middleware.New(v, middleware.Options{})
	if err != nil {
		log.Fatal(err)
	}

	say := func(s string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, s, r.PathValue("id")) })
	}
	mux := http.NewServeMux()
	mux.Handle("GET /contacts/{id}", middleware.Require(scopes.All("read:contacts"), say("contact ")))
	mux.Handle("DELETE /contacts/{id}", middleware.Require(scopes.Any("delete:contacts", "admin"), say("deleted ")))
	mux.Handle("GET /profile", say("any valid token")) // no scope beyond the middleware's
	api := httptest.NewServer(protect(mux))
	defer api.Close()

	// Auth0 RBAC puts the user's permissions in "permissions".
	token, err := idp.Mint(idp.Claims(audience, map[string]any{"permissions": []string{"read:contacts"}}))
	if err != nil {
		log.Fatal(err)
	}
	printGET(api.URL+"/contacts/7", token)
	printGET(api.URL+"/profile", token)
	req, err := http.NewRequest(http.MethodDelete, api.URL+"/contacts/7", nil)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Printf("%s: %s\n", resp.Status, resp.Header.Get("WWW-Authenticate"))
	// Output:
	// 200 OK: contact 7
	// 200 OK: any valid token
	// 403 Forbidden: Bearer realm="api", error="insufficient_scope", error_description="insufficient scope", scope="admin delete:contacts"
}

// ExampleGuard_Check asks the decision every front end shares without an
// http.Handler: a front end that is not net/http (a gRPC check service, a
// message consumer) fills a Request from what it has and answers with the
// *Error's status and reason.
func ExampleGuard_Check() {
	idp := jwkstest.NewIssuer()
	defer idp.Close()
	const audience = "https://api.example.com"
	keys, err := jwks.NewDiscovered(idp.URL(), jwks.RemoteOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer keys.Close()
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: idp.URL(), Keys: keys}},
		[]string{audience}, middleware.ValidatorOptions{})
	if err != nil {
		log.Fatal(err)
	}
	g, err := middleware.NewGuard(v, middleware.GuardOptions{Realm: "contacts"})
	if err != nil {
		log.Fatal(err)
	}
	token, err := idp.Mint(idp.Claims(audience, map[string]any{"scope": "read:contacts"}))
	if err != nil {
		log.Fatal(err)
	}
	ask := func(authorization string, required scopes.Requirement) {
		req := middleware.Request{Method: http.MethodGet, Header: http.Header{"Authorization": {authorization}}}
		claims, e := g.Check(context.Background(), req, required)
		if e != nil {
			fmt.Println(e.Status(), e.Reason)
			return
		}
		fmt.Println("allowed:", claims.Subject)
	}
	ask("Bearer "+token, scopes.All("read:contacts"))
	ask("Bearer "+token, scopes.All("write:contacts"))
	ask("Basic dXNlcjpwYXNz", scopes.All("read:contacts"))
	// Output:
	// allowed: auth0|test-user
	// 403 insufficient_scope
	// 401 no_token
}
