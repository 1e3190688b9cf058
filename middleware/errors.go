package middleware

import (
	"net/http"
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
	ReasonUnsupportedBinding  Reason = "unsupported_binding"  // bound to a key we cannot check (DPoP jkt, jwk, …)
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
)

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
