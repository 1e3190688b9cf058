package middleware

import (
	"net/http"
	"strings"
)

// ExtractBearer returns the bearer token of the Authorization header (RFC 6750
// §2.1). The scheme is case-insensitive. It fails with [ErrNoToken] when there
// is no Authorization header or it names another scheme (Basic, say), and with
// reason invalid_request when there are several Authorization headers, no
// token after "Bearer", more than one token, or characters a token cannot
// have.
func ExtractBearer(h http.Header) (string, error) {
	token, scheme, err := extractAuthorization(h["Authorization"])
	if err != nil {
		return "", err
	}
	if scheme != TokenTypeBearer {
		return "", &Error{Reason: ReasonNoToken}
	}
	return token, nil
}

// extractAuthorization returns the token of the Authorization header's
// lines and its scheme, TokenTypeBearer or TokenTypeDPoP (RFC 9449 §7.1:
// the same token syntax). Another scheme is no token.
func extractAuthorization(values []string) (token, scheme string, e *Error) {
	switch len(values) {
	case 0:
		return "", "", &Error{Reason: ReasonNoToken}
	case 1:
	default:
		return "", "", fail(ReasonInvalidRequest, "more than one Authorization header")
	}
	s, rest, _ := strings.Cut(strings.TrimLeft(values[0], " "), " ")
	switch {
	case strings.EqualFold(s, TokenTypeBearer):
		scheme = TokenTypeBearer
	case strings.EqualFold(s, TokenTypeDPoP):
		scheme = TokenTypeDPoP
	case s == "":
		return "", "", fail(ReasonInvalidRequest, "empty Authorization header")
	default:
		return "", "", &Error{Reason: ReasonNoToken}
	}
	token = strings.Trim(rest, " ")
	switch {
	case isB64Token(token):
		return token, scheme, nil
	case token == "":
		return "", "", fail(ReasonInvalidRequest, "no token after "+scheme)
	case strings.ContainsAny(token, " ,"):
		return "", "", fail(ReasonInvalidRequest, "more than one token")
	}
	kind := "bearer"
	if scheme == TokenTypeDPoP {
		kind = "DPoP"
	}
	return "", "", fail(ReasonInvalidRequest, "token has characters a "+kind+" token cannot have")
}

// isB64Token reports whether s is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for i < len(s) && b64TokenChar[s[i]] {
		i++
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// b64TokenChar marks the characters of a b64token before its padding: a
// table, because a chain of range tests mispredicts on random base64 and
// cost several µs per Auth0-sized token.
var b64TokenChar = func() (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
	}
	return t
}()

// FromCookie returns a token source that reads the named cookie, for
// [Options.TokenFrom]. It is consulted only when the request has no
// Authorization header.
func FromCookie(name string) func(*http.Request) (string, bool) {
	return func(r *http.Request) (string, bool) {
		c, err := r.Cookie(name)
		if err != nil || c.Value == "" {
			return "", false
		}
		return c.Value, true
	}
}
