// Package proxy runs the validator in front of APIs that cannot be changed:
// [Proxy] is a reverse proxy (the Kubernetes sidecar), [ForwardAuth] answers
// NGINX auth_request, Traefik ForwardAuth and Envoy ext_authz. What they
// decide is recorded through an [Observer] (package admin has the Prometheus
// one, and the admin server: /metrics, /healthz, /readyz).
//
// Both handlers take their decision from middleware.Guard.Check, the
// middleware's own: proxy adds what comes before it (the normalization
// contract, route rules, stripping client-sent identity headers) and after
// it (identity headers, logs, metrics), never a check of its own on the
// token.
//
// Route rules ([ParseRules]) use net/http.ServeMux patterns, so the most
// specific pattern wins and tokenward has no matcher of its own. A request
// that matches no rule still needs a valid token and the global scopes;
// public: true is the only way past validation. Rules can be replaced while
// the handlers serve: give [Config].RuleSet and call [RuleSet.Store] with
// rules that compiled.
//
// # Security
//
//   - Every configured identity header ([Config].ClaimHeaders, ScopesHeader,
//     TokenTypeHeader) is deleted from the client's request before anything
//     else, on every route, public ones included; on success it is set from
//     the verified claims only.
//   - Headers that assert the client's address or the proxy chain —
//     Forwarded, every X-Forwarded-*, X-Real-IP, True-Client-IP, X-Client-IP,
//     CF-Connecting-IP, Fastly-Client-IP, X-Cluster-Client-IP,
//     X-Original-Forwarded-For, Client-Cert, Client-Cert-Chain (and so
//     X-Forwarded-Client-Cert; with [Config].ForwardClientCert, only the
//     certificate tokenward judged is set anew) — are removed
//     from the client's request in any case and with "_" for "-" (servers
//     naming headers CGI-style, such as Python's wsgiref, read X_Real_IP as
//     X-Real-IP); then X-Forwarded-For, -Host
//     and -Proto are set anew (httputil.ProxyRequest.SetXForwarded).
//     Hop-by-hop headers are removed by httputil before the rewrite hook runs.
//   - Certificate-bound tokens: the client certificate comes from the TLS
//     connection, or from Client-Cert / X-Forwarded-Client-Cert sent by an
//     address in [Config].TrustedProxies — for forward-auth, the gateway's
//     connection (HTTP) or gRPC peer ([Question].Gateway); the Question's
//     Peer is never read for the decision. From any other address the
//     headers count for nothing (see package middleware's Security).
//   - DPoP (RFC 9449; [Config].DPoP) is checked by package middleware's
//     Guard, as for the library. The URL a proof's htu must name is
//     [middleware.DPoPOptions].PublicURL's scheme and authority when set.
//     Otherwise, in the reverse proxy, the connection's scheme (TLS or not)
//     and the Host header — X-Forwarded-Proto and X-Forwarded-Host count
//     only from an address in [Config].TrustedProxies, one value each, so
//     that a client cannot choose the URL its stolen proof is checked
//     against; in forward-auth, the gateway's original-request headers
//     (X-Forwarded-Host or X-Original-URL's host, X-Forwarded-Proto or
//     X-Original-URL's scheme, which must agree and name http or https, or
//     no proof's htu matches; "http" when neither is sent) and, from Envoy's gRPC ext_authz, the
//     request's scheme attribute. The DPoP header is removed before the
//     upstream (reverse proxy) and named for Envoy to remove (forward-auth)
//     unless [Config].ForwardDPoPProof. A fresh DPoP-Nonce is set on a
//     DPoP refusal and on a success whose proof's nonce rotated; through
//     forward-auth it is on the answer to the gateway (a refusal's passes
//     to the client like WWW-Authenticate; on a 200 the gateway must copy
//     it to the client's answer, and ext_authz gets it as a response header
//     to add).
//   - The scopes header carries only RFC 6749 scope-tokens without a comma,
//     whole, within 4,096 bytes: a granted scope with a space or comma (a
//     "permissions" member "profile:edit admin") would be split by the
//     upstream into scopes never granted, so it is left out (logged once,
//     without the token).
//   - A forward-auth 200 names in X-Envoy-Auth-Headers-To-Remove every
//     configured identity header it does not set (all of them on a public
//     route), since Envoy's ext_authz replaces only the headers an answer has
//     and would pass on a client's copy of the others, and the headers an
//     upstream may read as the request's host or path (X-Forwarded-Host,
//     Forwarded, X-Original-URL, X-Rewrite-URL, …), which Envoy passes on
//     from the client.
//   - Forward-auth never judges its own request line unless
//     [ForwardAuthOptions].AllowRequestLine says so. Then the request line
//     always counts: any original-request header present (X-Forwarded-Method,
//     -Uri, -Host, X-Original-Method, -URI, -URL) is a client's copy that
//     Envoy passed on (it sets none of them), and together they must name
//     the request line's method, path, query and host, or the question is a
//     400: a client never picks the route judged. The configured PathPrefix must begin the request
//     target and be followed by "/", or the question is a 400; the
//     derived path goes through the normalization contract and the route
//     rules like any original URI.
//   - [ForwardAuth.Check] (Envoy's gRPC ext_authz, package extauthz) and
//     [ForwardAuth.ServeHTTP] share one function from the original request
//     to the answer; Check's allow also names every other spelling of an
//     identity header the client sent ("_" for "-"), and each header it sent
//     that upstreams may read as the request's host or path
//     (X-Forwarded-Host, Forwarded, X-Original-URL, X-Rewrite-URL, …), for
//     the gateway to remove.
//   - Every other gateway must itself remove a client's copy of each
//     identity header that a forward-auth answer lacks; the README's recipe
//     for each does. Those for NGINX and Caddy (forward_auth) run against the
//     real servers in TestNGINXForwardAuth and TestCaddyForwardAuth, public
//     routes and tokens without the claim included: Caddy 2.6's copy_headers
//     would otherwise send the upstream its placeholder's text, later
//     versions the client's copy.
//   - The normalization contract, one function for both modes (the proxy's
//     request line; forward-auth's original method and URI and the client
//     headers the gateway passes on): a request is forwarded or allowed only
//     if every reasonable upstream would route it to the path and method
//     whose rule was applied; otherwise it is refused with 400
//     (invalid_request) before any token is looked at. Refused: dot
//     segments, empty segments, backslashes, percent-encoded ".", "\" and "/"
//     (unless [RulesOptions].AllowEncodedSlash); ";" anywhere in the path,
//     raw or %3B (servlet containers drop ";params" and then resolve dot
//     segments); a fragment; a method that is not an upper-case token
//     (Werkzeug and Rack upper-case it); the method-override headers
//     X-HTTP-Method-Override, X-HTTP-Method and X-Method-Override in every
//     spelling (case, "_" for "-"), unless [RulesOptions].AllowMethodOverride
//     names them; a _method query parameter.
//   - [Rules.Match] gives a request the stricter of the routes of the
//     spellings that upstreams route alike: the path with its trailing slash
//     added or removed (Express, Spring 5, Flask's redirects) and the path in
//     lower case against the rules in lower case (Express, ASP.NET). Public
//     only if all are; otherwise every requirement applies. An allowed method
//     override gets the stricter of both methods' routes, and a POST whose
//     body may be a form (a _method field, which is not read) the stricter
//     of every method's.
//   - These are tested against real upstreams (embedded Tomcat, Flask,
//     Express, ServeMux) by TestDifferentialRoutes in the interop module,
//     not only against ServeMux.
//   - A request's host is matched against host patterns ignoring ASCII case
//     and a trailing dot (patterns must be written in lower case), so
//     ADMIN.example.com. cannot fall through to a weaker or public rule.
//   - Header size is bounded ([MaxHeaderBytes], 431 beyond), headers must
//     arrive within ReadHeaderTimeout, each read of a request body waits at
//     most BodyReadTimeout, also for what net/http reads of a body the
//     handler left ([NewServerWith]), and each write to a client at most
//     SendTimeout ([Listener]). A [Listener] refuses connections over its
//     bound at once (a 503, or a close under TLS) rather than queueing
//     them, so that neither a flood of connections nor slow clients hold
//     unbounded memory.
//   - Upstream failures answer 502 (504 on timeout) with a fixed JSON body;
//     refusals never echo the token or an internal error.
//   - On the lean upstream path, a connection is pooled only after an answer
//     read to its end that may have a body: after an answer to HEAD, a 204 or
//     a 304 it is closed, since a body the upstream sends anyway may arrive
//     at any time. A pooled connection is reused only if the upstream has
//     neither closed it nor sent anything on it since, so stray bytes are
//     never read as another client's response — except bytes beyond a
//     declared length that arrive after that check, as with net/http's
//     Transport. A request that failed on a pooled connection before any
//     answer is sent again only where net/http would (GET, HEAD, OPTIONS,
//     TRACE, or an Idempotency-Key); upstream response headers are capped at
//     1 MiB. [UpstreamOptions].StandardTransport turns the lean path off.
//   - Each request reads the rules in force once ([RuleSet]) and is judged
//     wholly by that set: normalization options, route and scopes. A
//     replacement is atomic: a request sees the old set or the new one,
//     never a mix. Only compiled rules can be stored, and a set in force is
//     never removed, only replaced.
//   - Metric labels are bounded: outcome, reason, configured issuer.
//   - With [Config].AllowedOrigins, a request whose Origin header is not
//     one of them (compared ignoring case), or that has several, is refused
//     with 403 before anything else — normalization, rules, token, the
//     metadata document — in the proxy and in both forward-auth front ends
//     (on the Origin the gateway passes on). A request without Origin is
//     judged as usual: only browsers send it, and DNS rebinding is a
//     browser attack. Nil means Origin is not checked.
//   - With [Config].Resource, the proxy answers every path under
//     /.well-known/oauth-protected-resource itself (the document, 404, or
//     405 for a method other than GET and HEAD) and never forwards one to
//     the upstream. Forward-auth serves it only on a request that names no
//     original method or URI; a question about that path is judged by the
//     rules like any other, so the document's path is never a way to an
//     allow.
//   - Streams are not buffered: an answer that is text/event-stream or of
//     unknown length is flushed on every write (httputil.ReverseProxy's
//     rule, on both upstream paths), headers such as Mcp-Session-Id and
//     Last-Event-ID pass unchanged, and no timeout but the wait for the
//     upstream's response headers ([UpstreamOptions].ResponseHeaderTimeout)
//     applies to an exchange.
package proxy
