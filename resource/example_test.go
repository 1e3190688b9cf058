package resource_test

import (
	"fmt"
	"net/http"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/resource"
)

// A Go MCP server (or any API) protected by the middleware, publishing its
// metadata and naming it in every challenge.
func Example() {
	iss := jwkstest.NewIssuer()
	defer iss.Close()
	body, _ := jwkstest.JWKS(iss.Keys()...)
	keys, _ := jwks.NewStatic(body)

	const uri = "https://mcp.example.com/mcp"
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: iss.URL(), Keys: keys}},
		[]string{uri}, // RFC 8707: the resource is the audience
		middleware.ValidatorOptions{})
	if err != nil {
		panic(err)
	}
	meta, err := resource.New(uri, v, resource.Options{Name: "Contacts MCP", Scopes: []string{"mcp:tools"}})
	if err != nil {
		panic(err)
	}
	protect, err := middleware.New(v, middleware.Options{ResourceMetadata: meta.MetadataURL()})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle(resource.WellKnownPath+"/", meta) // the path-inserted form and anything under it
	mux.Handle(resource.WellKnownPath, meta)
	mux.Handle("/mcp", protect(http.NotFoundHandler())) // your MCP handler here
	fmt.Println(meta.MetadataURL())
	// Output: https://mcp.example.com/.well-known/oauth-protected-resource/mcp
}
