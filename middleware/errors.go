package middleware

import (
	"net/http"
	"slices"
)

// Reason says why a request or token was refused. It is safe to log and to use
// as a metric label: the set of values is fixed.
type Reason string

// The reasons, one per check. Each maps to one HTTP answer (see [Error.Status]).
const (
	ReasonNoToken           Reason = "no_token"           // no credentials, or another scheme
	ReasonInvalidRequest    Reason = "invalid_request"    // malformed Authorization header
	ReasonTooLarge          Reason = "too_large"          // token over the size limit
	ReasonMalformed         Reason = "malformed"          // not a well-formed compact JWS / claims
	ReasonOpaque            Reason = "opaque"             // not a JWT, and no opaque-token checker
	ReasonAlgorithm         Reason = "algorithm"          // alg not allowed, or not the key's
	ReasonType              Reason = "type"               // typ not an access token type
	ReasonUnsupported       Reason = "unsupported_header" // crit names an extension we do not implement
	ReasonIssuer            Reason = "issuer"             // iss not trusted
	ReasonUnknownKey        Reason = "unknown_key"        // kid not in the issuer's set
	ReasonKeysUnavailable   Reason = "keys_unavailable"   // issuer's keys never loaded
	ReasonSignature         Reason = "signature"          // signature does not verify
	ReasonExpired           Reason = "expired"            // exp passed, or missing
	ReasonNotYetValid       Reason = "not_yet_valid"      // nbf in the future
	ReasonIssuedInFuture    Reason = "issued_in_future"   // iat in the future
	ReasonAudience          Reason = "audience"           // no accepted audience
	ReasonRevoked           Reason = "revoked"            // on the deny list
	ReasonInactive          Reason = "inactive"           // the issuer says the opaque token is not active
	ReasonIssuerUnavailable Reason = "issuer_unavailable" // the issuer could not be asked about an opaque token
	ReasonIssuerBusy        Reason = "issuer_busy"        // as many calls to the issuer in progress as allowed: not asked
	ReasonInsufficientScope Reason = "insufficient_scope" // valid token, missing scopes

	// Sender-constrained tokens (cnf, RFC 7800): never accepted as bearer tokens.
	ReasonNoCertificate       Reason = "no_certificate"       // certificate-bound token (RFC 8705), no client certificate
	ReasonCertificateMismatch Reason = "certificate_mismatch" // certificate-bound token, another client certificate
	ReasonUnsupportedBinding  Reason = "unsupported_binding"  // bound to a key we cannot check (cnf jwk, jku, …)

	// DPoP (RFC 9449): the scheme, the mode and the proof.
	ReasonDPoPProofMissing     Reason = "dpop_proof_missing"     // DPoP scheme with no DPoP header, or several
	ReasonDPoPProofMalformed   Reason = "dpop_proof_malformed"   // not a compact JWS of JSON objects, claims of the wrong types
	ReasonDPoPProofTooLarge    Reason = "dpop_proof_too_large"   // proof over the size limit
	ReasonDPoPType             Reason = "dpop_type"              // typ not dpop+jwt
	ReasonDPoPAlgorithm        Reason = "dpop_algorithm"         // alg not in the allow-list
	ReasonDPoPKey              Reason = "dpop_key"               // jwk missing, private, or not usable with alg
	ReasonDPoPSignature        Reason = "dpop_signature"         // proof signature does not verify with its jwk
	ReasonDPoPMethod           Reason = "dpop_method"            // htm is not the request method
	ReasonDPoPURL              Reason = "dpop_url"               // htu is not the request URL
	ReasonDPoPIAT              Reason = "dpop_iat"               // iat missing or outside the window
	ReasonDPoPJTI              Reason = "dpop_jti"               // jti missing
	ReasonDPoPReplay           Reason = "dpop_replay"            // jti seen before (the replay store)
	ReasonDPoPATH              Reason = "dpop_ath"               // ath is not the hash of the token
	ReasonDPoPBinding          Reason = "dpop_binding"           // proof key is not the token's cnf.jkt, or a token without cnf.jkt
	ReasonDPoPNonce            Reason = "dpop_nonce"             // no current server nonce in the proof
	ReasonDPoPDowngrade        Reason = "dpop_downgrade"         // a cnf.jkt token presented as Bearer
	ReasonDPoPRequired         Reason = "dpop_required"          // Bearer where DPoP is required
	ReasonDPoPDisabled         Reason = "dpop_disabled"          // DPoP scheme where DPoP is disabled
	ReasonDPoPStoreUnavailable Reason = "dpop_store_unavailable" // the replay store could not answer
)

// answer is how one reason is answered over HTTP (RFC 6750 §3.1).
type answer struct {
	status      int
	code        string // RFC 6750 error code; "" for a bare challenge
	description string // client-safe default description
}

// answers maps every reason to its HTTP answer: the one place where that is decided.
var answers = map[Reason]answer{
	ReasonNoToken:           {http.StatusUnauthorized, "", "no bearer token"},
	ReasonInvalidRequest:    {http.StatusBadRequest, "invalid_request", "malformed Authorization header"},
	ReasonTooLarge:          {http.StatusUnauthorized, "invalid_token", "token too large"},
	ReasonMalformed:         {http.StatusUnauthorized, "invalid_token", "token malformed"},
	ReasonOpaque:            {http.StatusUnauthorized, "invalid_token", "opaque tokens are not accepted here"},
	ReasonAlgorithm:         {http.StatusUnauthorized, "invalid_token", "signing algorithm not accepted"},
	ReasonType:              {http.StatusUnauthorized, "invalid_token", "token type not accepted"},
	ReasonUnsupported:       {http.StatusUnauthorized, "invalid_token", "critical header parameter not supported"},
	ReasonIssuer:            {http.StatusUnauthorized, "invalid_token", "issuer not trusted"},
	ReasonUnknownKey:        {http.StatusUnauthorized, "invalid_token", "signing key not found"},
	ReasonKeysUnavailable:   {http.StatusServiceUnavailable, "", "issuer keys unavailable"},
	ReasonSignature:         {http.StatusUnauthorized, "invalid_token", "signature invalid"},
	ReasonExpired:           {http.StatusUnauthorized, "invalid_token", "token expired"},
	ReasonNotYetValid:       {http.StatusUnauthorized, "invalid_token", "token not yet valid"},
	ReasonIssuedInFuture:    {http.StatusUnauthorized, "invalid_token", "token issued in the future"},
	ReasonAudience:          {http.StatusUnauthorized, "invalid_token", "audience not accepted"},
	ReasonRevoked:           {http.StatusUnauthorized, "invalid_token", "token revoked"},
	ReasonInactive:          {http.StatusUnauthorized, "invalid_token", "token not active"},
	ReasonIssuerUnavailable: {http.StatusServiceUnavailable, "", "issuer unavailable"},
	ReasonIssuerBusy:        {http.StatusServiceUnavailable, "", "issuer busy"},
	ReasonInsufficientScope: {http.StatusForbidden, "insufficient_scope", "insufficient scope"},

	ReasonNoCertificate:       {http.StatusUnauthorized, "invalid_token", "token is bound to a client certificate and none was presented"},
	ReasonCertificateMismatch: {http.StatusUnauthorized, "invalid_token", "client certificate does not match the token"},
	ReasonUnsupportedBinding:  {http.StatusUnauthorized, "invalid_token", "token is sender-constrained with a proof this API does not check"},

	ReasonDPoPProofMissing:     {http.StatusUnauthorized, "invalid_dpop_proof", "one DPoP proof header is required"},
	ReasonDPoPProofMalformed:   {http.StatusUnauthorized, "invalid_dpop_proof", "DPoP proof malformed"},
	ReasonDPoPProofTooLarge:    {http.StatusUnauthorized, "invalid_dpop_proof", "DPoP proof too large"},
	ReasonDPoPType:             {http.StatusUnauthorized, "invalid_dpop_proof", "DPoP proof typ is not dpop+jwt"},
	ReasonDPoPAlgorithm:        {http.StatusUnauthorized, "invalid_dpop_proof", "DPoP proof algorithm not accepted"},
	ReasonDPoPKey:              {http.StatusUnauthorized, "invalid_dpop_proof", "DPoP proof key missing, private or not usable"},
	ReasonDPoPSignature:        {http.StatusUnauthorized, "invalid_dpop_proof", "DPoP proof signature invalid"},
	ReasonDPoPMethod:           {http.StatusUnauthorized, "invalid_dpop_proof", "DPoP proof htm does not match the request method"},
	ReasonDPoPURL:              {http.StatusUnauthorized, "invalid_dpop_proof", "DPoP proof htu does not match the request URL"},
	ReasonDPoPIAT:              {http.StatusUnauthorized, "invalid_dpop_proof", "DPoP proof iat missing or outside the accepted window"},
	ReasonDPoPJTI:              {http.StatusUnauthorized, "invalid_dpop_proof", "DPoP proof jti missing"},
	ReasonDPoPReplay:           {http.StatusUnauthorized, "invalid_dpop_proof", "DPoP proof already used"},
	ReasonDPoPATH:              {http.StatusUnauthorized, "invalid_dpop_proof", "DPoP proof ath does not match the access token"},
	ReasonDPoPBinding:          {http.StatusUnauthorized, "invalid_token", "access token is not bound to the DPoP proof key"},
	ReasonDPoPNonce:            {http.StatusUnauthorized, "use_dpop_nonce", "DPoP proof must carry the server nonce"},
	ReasonDPoPDowngrade:        {http.StatusUnauthorized, "invalid_token", "DPoP-bound token presented as a bearer token"},
	ReasonDPoPRequired:         {http.StatusUnauthorized, "invalid_token", "DPoP-bound token and proof required"},
	ReasonDPoPDisabled:         {http.StatusUnauthorized, "invalid_token", "DPoP is not accepted here"},
	ReasonDPoPStoreUnavailable: {http.StatusServiceUnavailable, "", "DPoP replay store unavailable"},
}

// Sentinels to test an error's reason with [errors.Is]:
//
//	if errors.Is(err, middleware.ErrExpired) { … }
var (
	ErrNoToken           = &Error{Reason: ReasonNoToken}
	ErrInvalidRequest    = &Error{Reason: ReasonInvalidRequest}
	ErrTooLarge          = &Error{Reason: ReasonTooLarge}
	ErrMalformed         = &Error{Reason: ReasonMalformed}
	ErrOpaque            = &Error{Reason: ReasonOpaque}
	ErrAlgorithm         = &Error{Reason: ReasonAlgorithm}
	ErrType              = &Error{Reason: ReasonType}
	ErrUnsupported       = &Error{Reason: ReasonUnsupported}
	ErrIssuer            = &Error{Reason: ReasonIssuer}
	ErrUnknownKey        = &Error{Reason: ReasonUnknownKey}
	ErrKeysUnavailable   = &Error{Reason: ReasonKeysUnavailable}
	ErrSignature         = &Error{Reason: ReasonSignature}
	ErrExpired           = &Error{Reason: ReasonExpired}
	ErrNotYetValid       = &Error{Reason: ReasonNotYetValid}
	ErrIssuedInFuture    = &Error{Reason: ReasonIssuedInFuture}
	ErrAudience          = &Error{Reason: ReasonAudience}
	ErrRevoked           = &Error{Reason: ReasonRevoked}
	ErrInactive          = &Error{Reason: ReasonInactive}
	ErrIssuerUnavailable = &Error{Reason: ReasonIssuerUnavailable}
	ErrIssuerBusy        = &Error{Reason: ReasonIssuerBusy}
	ErrInsufficientScope = &Error{Reason: ReasonInsufficientScope}

	ErrNoCertificate       = &Error{Reason: ReasonNoCertificate}
	ErrCertificateMismatch = &Error{Reason: ReasonCertificateMismatch}
	ErrUnsupportedBinding  = &Error{Reason: ReasonUnsupportedBinding}

	ErrDPoPProofMissing     = &Error{Reason: ReasonDPoPProofMissing}
	ErrDPoPProofMalformed   = &Error{Reason: ReasonDPoPProofMalformed}
	ErrDPoPProofTooLarge    = &Error{Reason: ReasonDPoPProofTooLarge}
	ErrDPoPType             = &Error{Reason: ReasonDPoPType}
	ErrDPoPAlgorithm        = &Error{Reason: ReasonDPoPAlgorithm}
	ErrDPoPKey              = &Error{Reason: ReasonDPoPKey}
	ErrDPoPSignature        = &Error{Reason: ReasonDPoPSignature}
	ErrDPoPMethod           = &Error{Reason: ReasonDPoPMethod}
	ErrDPoPURL              = &Error{Reason: ReasonDPoPURL}
	ErrDPoPIAT              = &Error{Reason: ReasonDPoPIAT}
	ErrDPoPJTI              = &Error{Reason: ReasonDPoPJTI}
	ErrDPoPReplay           = &Error{Reason: ReasonDPoPReplay}
	ErrDPoPATH              = &Error{Reason: ReasonDPoPATH}
	ErrDPoPBinding          = &Error{Reason: ReasonDPoPBinding}
	ErrDPoPNonce            = &Error{Reason: ReasonDPoPNonce}
	ErrDPoPDowngrade        = &Error{Reason: ReasonDPoPDowngrade}
	ErrDPoPRequired         = &Error{Reason: ReasonDPoPRequired}
	ErrDPoPDisabled         = &Error{Reason: ReasonDPoPDisabled}
	ErrDPoPStoreUnavailable = &Error{Reason: ReasonDPoPStoreUnavailable}
)

// Reasons returns every reason, for metrics that pre-register their labels.
func Reasons() []Reason {
	out := make([]Reason, 0, len(answers))
	for r := range answers {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// Error is why a request or token was refused. What a client may see
// (Reason, Description, Scope) is kept apart from what only a log may see
// (Detail, Err).
type Error struct {
	// Reason is the machine-readable cause.
	Reason Reason
	// Description is a client-safe sentence; "" means the reason's default.
	// It never contains the token, a key or an internal error string.
	Description string
	// Scope is, for insufficient_scope, the scopes the route needs.
	Scope string
	// Detail is extra help for the operator's log (for example, that a
	// rejected issuer differs from a trusted one only by a trailing slash).
	// Never sent to the client. It may quote claim values, never the token.
	Detail string
	// Err is the underlying cause, for logs only.
	Err error

	// dpop is set when the request used the DPoP scheme (or the refusal
	// is about its proof): the challenge carrying the error is DPoP's.
	dpop bool
}

func (e *Error) Error() string {
	if e == nil {
		return "tokenward: <nil>" // a nil *Error in an error variable; see Guard.Check
	}
	s := "tokenward: " + e.description()
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.Err
}

// Is reports whether target is an *Error with the same reason, so that
// errors.Is(err, ErrExpired) holds for every expired-token error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && e != nil && t != nil && t.Reason == e.Reason
}

// Status is the HTTP status for this error: 400, 401, 403 or 503.
func (e *Error) Status() int {
	if a, ok := answers[e.Reason]; ok {
		return a.status
	}
	return http.StatusUnauthorized
}

// Code is the RFC 6750 error code ("invalid_request", "invalid_token",
// "insufficient_scope"), or "" when the answer is a bare challenge.
func (e *Error) Code() string {
	if a, ok := answers[e.Reason]; ok {
		return a.code
	}
	return "invalid_token"
}

func (e *Error) description() string {
	if e.Description != "" {
		return e.Description
	}
	if a, ok := answers[e.Reason]; ok {
		return a.description
	}
	return "token invalid"
}

// ClientDescription is the description sent to the client.
func (e *Error) ClientDescription() string { return e.description() }

func fail(r Reason, description string) *Error {
	return &Error{Reason: r, Description: description}
}
