package httpfetch

import "net/url"

// URLError is the error of a URL that a URL policy refuses. Its text names
// no package: the package that checked the URL wraps it with its own prefix
// (jwks.CheckURL returns "jwks: " + Problem), and a caller that names the
// setting itself (the binary names its variable) prints Problem alone.
type URLError struct {
	// URL is the URL as given, with any user info replaced by "REDACTED",
	// since it may be a password or a token.
	URL string
	// Problem is a client-safe sentence naming URL (as above) and what is
	// wrong with it, such as `"http://idp.example.com/" must use https
	// (http is allowed only for loopback hosts)`.
	Problem string
}

func (e *URLError) Error() string { return e.Problem }

// Redact replaces a URL's user info, a password or a token, with
// "REDACTED"; text that is not a URL with user info is returned unchanged.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = url.User("REDACTED")
	return u.String()
}
