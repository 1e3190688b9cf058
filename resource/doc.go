// Package resource serves the metadata of an OAuth 2.0 protected resource
// (RFC 9728): the document at /.well-known/oauth-protected-resource that tells
// a client which authorization servers issue tokens for this resource, which
// scopes it knows and how to send a token. MCP clients find their
// authorization server this way, starting from the resource_metadata
// parameter of a 401 challenge ([Handler.MetadataURL], which
// [github.com/tokenward/tokenward/middleware.GuardOptions] carries).
//
// A [Handler] is built from the resource's canonical URI and the validator
// that guards it: the trusted issuers are the authorization servers unless
// a subset is configured. Package proxy serves it in front of the upstream.
//
// # Security
//
//   - The resource URI is checked at construction ([CheckURI]): absolute,
//     https (http only on a loopback host), no user info, query or fragment.
//     The metadata URL, derived from it, never from a request's Host, is
//     what every challenge names, so a client cannot make tokenward point
//     other clients elsewhere.
//   - The document is public (it holds nothing secret), the same bytes for
//     every request, built once at construction, and answers only GET and
//     HEAD; other methods get 405.
//   - Every authorization server listed must be a trusted issuer of the
//     validator: the document never sends a client to an issuer whose tokens
//     would be refused.
//   - RFC 8707: the resource URI is compared with a token's audience as an
//     exact string; "https://api.example.com/mcp" and
//     "https://api.example.com/mcp/" are different resources.
package resource
