// Package deploy holds tokenward's deployment files, checked offline by this
// package's tests: the Kubernetes manifests in kubernetes/, Istio's extension
// providers for tokenward in istio/, and the repository's Dockerfile.
//
// It is its own module, so that the main module never depends on the
// Kubernetes API packages. Run the checks with
//
//	cd deploy && go vet ./... && go test ./...
//
// # What is checked
//
// Every document of every manifest is decoded strictly into its Go type from
// k8s.io/api (Istio's AuthorizationPolicy into istio.io/client-go's, its spec
// through protojson), as the API server would with strict field validation:
// an unknown or misspelt field, a field in the wrong case, a duplicate key, a
// value of the wrong type or a kind the checks do not know fails. Istio's
// mesh config fragment is decoded the same way into istio.io/api's
// MeshConfig. Istio's own decoders ignore unknown fields; these do not.
//
// On top of that, the properties that matter for tokenward: resources on
// every container, the security context and probes of tokenward's
// containers, Services and the Ingress reaching tokenward's port, the
// TOKENWARD_* variables being the binary's documented ones with well-formed
// values, the rules file parsing as the binary parses it, the termination
// grace period outlasting tokenward's drain, the native sidecar being one (and configuring tokenward
// as the plain-container fallback does), and the Istio recipe fitting
// together: the policy's provider, tokenward behind each provider's service
// and port, the headers the HTTP provider sends and copies, the callers
// tokenward answers. The Dockerfile is checked for what the image promises:
// a static binary on distroless or scratch, running as non-root.
package deploy
