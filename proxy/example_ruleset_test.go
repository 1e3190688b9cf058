package proxy_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
	"github.com/tokenward/tokenward/scopes"
)

// Rules replaced while the proxy serves: each request is judged wholly by
// the set in force when it arrives.
func ExampleRuleSet() {
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
	api := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer api.Close()

	compile := func(yaml string) *proxy.Rules {
		r, err := proxy.ParseRules([]byte(yaml), scopes.Requirement{})
		if err != nil {
			log.Fatal(err) // a reloader would keep the rules in force instead
		}
		return r
	}
	set := proxy.NewRuleSet(compile(`routes: [{match: "GET /things", scopes: ["read:things"]}]`))
	p, err := proxy.New(api.URL, proxy.Config{Validator: v, RuleSet: set}, proxy.UpstreamOptions{})
	if err != nil {
		log.Fatal(err)
	}
	token, err := idp.Mint(idp.Claims(audience, map[string]any{"scope": "read:things"}))
	if err != nil {
		log.Fatal(err)
	}
	ask := func() {
		req := httptest.NewRequest("GET", "/things", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	ask()
	set.Store(compile(`routes: [{match: "GET /things", scopes: ["admin"]}]`))
	ask()
	// Output:
	// 200
	// 403
}
