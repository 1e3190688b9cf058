package httpfetch

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// URLError is the error of a URL that [CheckURL] or [CheckSourceURL]
// refuses. Its text names no package: the package that checked the URL wraps
// it with its own prefix (jwks.CheckURL returns "jwks: " + Problem), and a
// caller that names the setting itself (the binary names its variable)
// prints Problem alone.
type URLError struct {
	// URL is the URL as given, with any user info replaced by "REDACTED",
	// since it may be a password or a token (and, for CheckSourceURL,
	// without its query).
	URL string
	// Problem is a client-safe sentence naming URL (as above) and what is
	// wrong with it, such as `"http://idp.example.com/" must use https
	// (http is allowed only for loopback hosts)`.
	Problem string
}

func (e *URLError) Error() string { return e.Problem }

// CheckURL is the policy for an issuer, for a URL an issuer publishes (key
// set, userinfo, introspection) and for where such a URL may redirect: https,
// or http on a loopback host (127.0.0.0/8, [::1], localhost) for tests and
// demos; no user info, query or fragment, which no issuer identifier has.
// It returns nil or a *URLError.
func CheckURL(raw string) error { return check(raw, false) }

// CheckSourceURL is the policy for a document tokenward is told to fetch
// (a deny list): as [CheckURL], except that a query, which may carry an access
// key, is allowed, and is never echoed; a fragment is allowed and not sent.
// It returns nil or a *URLError.
func CheckSourceURL(raw string) error { return check(raw, true) }

func check(raw string, source bool) error {
	shown := Redact(raw)
	if u, err := url.Parse(shown); err == nil && source && u.RawQuery != "" {
		u.RawQuery, u.Fragment = "", ""
		shown = u.String() + "?(query not shown)"
	}
	problem := func(p string) error {
		return &URLError{URL: shown, Problem: fmt.Sprintf("%q %s", shown, p)}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return problem("is not a URL")
	}
	switch {
	case u.Host == "" || u.Opaque != "":
		return problem("is not an absolute URL with a host")
	case u.User != nil:
		return problem("must not have user info")
	case !source && (u.RawQuery != "" || u.Fragment != ""):
		return problem("must not have a query or a fragment")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && IsLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return problem("must use https (http is allowed only for loopback hosts)")
	default:
		return problem("must be an https URL")
	}
}

// IsLoopback reports whether host is localhost or a loopback IP address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

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
