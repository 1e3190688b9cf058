// Package interop holds tokenward's tests against programs it did not write,
// started for real on loopback: the differential route test runs every
// request line of a generated table through tokenward (proxy mode,
// forward-auth as each gateway asks, and the README's NGINX recipe) to real
// Tomcat, Flask, Express and Go ServeMux upstreams, and checks that no
// upstream serves a route the token does not allow. The MCP test puts the
// tokenward binary (built by TestMain) in front of an MCP server made with
// the official Go SDK (github.com/modelcontextprotocol/go-sdk) and talks to
// it with the SDK's client: discovery through resource_metadata (RFC 9728)
// with the SDK's own protected-resource metadata client, a tool listed and
// called with streamed progress, refusals for another resource's token and
// for a missing scope. The DPoP tests send proofs made by panva's npm package
// dpop (testdata/dpopclient/client.js), with tokens bound to the thumbprint
// that package computes, through the middleware and through the binary.
//
// It is its own module so that the main module's go test ./... stays quick
// and free of these runtimes; make test (and so CI) runs it. The upstream
// apps are in testdata/upstreams; .ci/run installs their runtimes.
package interop
