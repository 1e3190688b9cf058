// Package interop holds tokenward's tests against programs it did not write,
// started for real on loopback: the differential route test runs every
// request line of a generated table through tokenward (proxy mode,
// forward-auth as each gateway asks, and the README's NGINX recipe) to real
// Tomcat, Flask, Express and Go ServeMux upstreams, and checks that no
// upstream serves a route the token does not allow.
//
// It is its own module so that the main module's go test ./... stays quick
// and free of these runtimes; make test (and so CI) runs it. The upstream
// apps are in testdata/upstreams; .ci/run installs their runtimes.
package interop
