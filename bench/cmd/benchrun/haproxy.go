package main

import (
	"fmt"
	"strings"
)

// haproxyConfig verifies the tokens as tokenward does, with what HAProxy 2.5+
// offers:
//
//   - the bearer token from Authorization (http_auth_bearer);
//   - alg must be RS256, and jwt_verify must succeed with the issuer's public
//     key (PEM);
//   - the claims JSON is decoded once (field(2,.),ub64dec: HAProxy 2.6's
//     jwt_payload_query needs a path and would decode the payload again for
//     every claim) and queried with json_query;
//   - exp must be present and in the future (no leeway; tokenward allows 30 s);
//   - iss must equal the issuer exactly;
//   - aud: HAProxy's JSON path has no "any element" query (and json_query
//     returns nothing for an array), so the API must be aud itself (a
//     string), aud[0] or aud[1]: enough for Auth0's [API, userinfo] array,
//     not for longer arrays.
//
// Refusals are 401, like tokenward's. nbthread matches the Go servers'
// GOMAXPROCS; no logging; connections to the upstream are reused.
func haproxyConfig(threads int, listen, upstream, pemPath, issuer, audience string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    nbthread %d
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s

frontend api
    bind %s
    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
    http-request deny deny_status 401 unless { var(txn.alg) -m str RS256 }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.alg,%q) -m int 1 }
    http-request set-var(txn.claims) var(txn.bearer),field(2,.),ub64dec
    http-request set-var(txn.exp) var(txn.claims),json_query('$.exp','int')
    http-request set-var(txn.now) date
    http-request deny deny_status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
    http-request deny deny_status 401 unless { var(txn.claims),json_query('$.iss') -m str %s }
    acl aud_ok var(txn.claims),json_query('$.aud') -m str %s
    acl aud_ok var(txn.claims),json_query('$.aud[0]') -m str %s
    acl aud_ok var(txn.claims),json_query('$.aud[1]') -m str %s
    http-request deny deny_status 401 unless aud_ok
    default_backend upstream

backend upstream
    http-reuse always
    server api %s
`, threads, listen, pemPath, issuer, audience, audience, audience, upstream)
	return b.String()
}
