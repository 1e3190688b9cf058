// Package proxy runs the validator in front of APIs that cannot be changed:
// [Proxy] is a reverse proxy (the Kubernetes sidecar), [ForwardAuth] answers
// NGINX auth_request, Traefik ForwardAuth and Envoy ext_authz, and
// [NewAdmin] serves /metrics, /healthz and /readyz.
//
// Route rules ([ParseRules]) use net/http.ServeMux patterns, so the most
// specific pattern wins and tokenward has no matcher of its own. A request
// that matches no rule still needs a valid token and the global scopes;
// public: true is the only way past validation.
//
// # Security
//
//   - Every configured identity header is deleted from the client's request
//     before anything else, on every route, public ones included; on success
//     it is set from the verified claims only.
//   - X-Forwarded-* headers sent by the client are dropped and set anew
//     (httputil.ProxyRequest.SetXForwarded); hop-by-hop headers are removed by
//     httputil before the rewrite hook runs.
//   - Request paths that are not canonical (dot segments, empty segments,
//     backslashes, percent-encoded "/", "\" or ".") are refused with 400, so
//     the rule that matched is the rule of the path the upstream serves.
//   - A request's host is matched against host patterns ignoring ASCII case
//     and a trailing dot (patterns must be written in lower case), so
//     ADMIN.example.com. cannot fall through to a weaker or public rule.
//   - Header size is bounded ([MaxHeaderBytes], 431 beyond), headers must
//     arrive within ReadHeaderTimeout ([NewServer]).
//   - Upstream failures answer 502 (504 on timeout) with a fixed JSON body;
//     refusals never echo the token or an internal error.
//   - A pooled upstream connection is reused only if the upstream has
//     neither closed it nor sent anything on it since its last answer, so
//     stray bytes (a body on a HEAD answer, say) are never read as another
//     client's response; upstream response headers are capped at 1 MiB.
//   - Metric labels are bounded: outcome, reason, configured issuer.
package proxy
