// Package extauthz answers Envoy's external authorization over gRPC
// (envoy.service.auth.v3.Authorization/Check, the API Istio's
// envoyExtAuthzGrpc provider calls) with the decision of
// [proxy.ForwardAuth]: the method, path (with its query), host and headers
// of the AttributeContext go through [proxy.ForwardAuth.Check], the same
// function forward-auth's HTTP handler uses, so the two cannot drift. The
// [Server] also answers gRPC health checks (grpc.health.v1) with readiness:
// NOT_SERVING until every trusted issuer's keys have been loaded.
//
// It lives apart from package proxy so that the proxy, the middleware and
// their users do not import gRPC.
//
// # Security
//
//   - An allow is an OkHttpResponse with the identity headers to set
//     (overwriting any copy) and headers_to_remove naming every configured
//     identity header it does not set (all of them on a public route) and
//     every other spelling of one the client sent (X_Auth_Subject for
//     X-Auth-Subject, which CGI-style upstreams read alike): a client's copy
//     never reaches the upstream.
//   - An allow also removes each header the client sent that upstreams may
//     take for the request's host or path instead of the attributes'
//     (X-Forwarded-Host, Forwarded, X-Original-URL, X-Rewrite-URL, and the
//     other gateways' X-Original-*/X-Forwarded-Uri/-Method), in any spelling:
//     Envoy passes them on, and a Flask app behind Werkzeug's ProxyFix
//     serves the host a client's X-Forwarded-Host names, not the one judged.
//   - A deny is a DeniedHttpResponse with the status, WWW-Authenticate,
//     Retry-After (503) and JSON body the proxy would answer, and a non-OK
//     gRPC status in the CheckResponse. Failures are never a gRPC error, so
//     Envoy never falls back to its failure_mode_allow for a refusal.
//   - The normalization contract and route rules apply to the
//     AttributeContext's method and path as to forward-auth's original URI:
//     "/static/..;/admin" is a 400 before any token is looked at.
//   - Bad input is a 400 deny, never a panic: missing attributes (method,
//     path or host: without the host a host-pattern rule could not match), a
//     fragment, a path that is not in origin form, headers beyond
//     proxy.MaxHeaderBytes. A message beyond 256 KiB (a request body sent
//     with with_request_body) fails the call, which Envoy answers with a
//     deny unless failure_mode_allow is set: keep it unset. At most 100
//     calls run at once on a connection, so that one connection holds at
//     most 25 MiB of messages in transit, however slowly it sends them.
//   - Headers Envoy joined with "," (repeated headers without
//     encode_raw_headers) are judged joined: two Authorization headers
//     become one value with two tokens, refused with 400 (invalid_request).
//   - With allowed origins (proxy.Config.AllowedOrigins), a request whose
//     origin header is not one of them is a 403 deny before anything else;
//     several origin headers joined with "," match none. The protected
//     resource's metadata is not served here (route its path to the HTTP
//     listener); a question about that path is judged by the rules.
//   - The source peer address is passed on to the decision; the connection
//     is Envoy's, so the listener should be reachable by the gateway only
//     (a NetworkPolicy, or a loopback address in the same pod).
package extauthz
