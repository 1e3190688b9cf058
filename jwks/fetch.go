package jwks

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokenward/tokenward/internal/httpfetch"
)

// URLError is the error of a URL that [CheckURL] refuses; CheckURL wraps it,
// so find it with errors.As. Its Problem is a client-safe sentence naming the
// URL (user info hidden) and what is wrong with it.
type URLError = httpfetch.URLError

// CheckURL accepts an issuer or key set URL: https, or http on a loopback host
// (127.0.0.0/8, [::1], localhost) for tests and demos. It also refuses URLs with
// user info, a query or a fragment, which no issuer identifier has. A refused
// URL's error wraps a [*URLError].
//
// It is the policy every package of this module applies to issuer URLs (kept
// in one internal place); it stays here for the library's users.
func CheckURL(raw string) error {
	if err := httpfetch.CheckURL(raw); err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	return nil
}

// IsLoopback reports whether host is localhost or a loopback IP address: the
// hosts [CheckURL] allows over http.
func IsLoopback(host string) bool { return httpfetch.IsLoopback(host) }

// newClient returns a client whose responses are read through a size limit and
// that follows redirects only to URLs [CheckURL] accepts.
func newClient(base *http.Client, timeout time.Duration, maxBody int64) *http.Client {
	c := httpfetch.Client(base, maxBody, func(u *url.URL) error { return CheckURL(u.String()) })
	if c.Timeout == 0 {
		c.Timeout = timeout
	}
	return c
}

// discover finds an issuer's jwks_uri through OpenID Connect discovery.
func discover(ctx context.Context, client *http.Client, issuer string) (string, error) {
	p, err := httpfetch.Discover(ctx, client, issuer)
	if err != nil {
		return "", fmt.Errorf("jwks: %w", err)
	}
	var doc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.Claims(&doc); err != nil || doc.JWKSURI == "" {
		return "", fmt.Errorf("jwks: discovery document of %s has no jwks_uri", issuer)
	}
	if err := CheckURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("jwks: discovery document of %s: %w", issuer, err)
	}
	return doc.JWKSURI, nil
}

// fetchSet GETs a JWK Set. It returns the parsed keys and the max-age the
// issuer asked for (zero when none).
func fetchSet(ctx context.Context, client *http.Client, jwksURL string) (*keys, []string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwksURL, nil)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("jwks: bad key set URL %q", jwksURL)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("jwks: fetch %s: %s", jwksURL, httpfetch.SafeError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, 0, fmt.Errorf("jwks: fetch %s: status %d", jwksURL, resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("jwks: fetch %s: %s", jwksURL, httpfetch.SafeError(err))
	}
	k, dropped, err := parse(body)
	if err != nil {
		return nil, dropped, 0, fmt.Errorf("%w (from %s)", err, jwksURL)
	}
	return k, dropped, maxAge(resp.Header.Get("Cache-Control")), nil
}

// maxAge reads the max-age directive of a Cache-Control header.
func maxAge(cc string) time.Duration {
	for directive := range strings.SplitSeq(cc, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(directive), "=")
		if !ok || !strings.EqualFold(name, "max-age") {
			continue
		}
		secs, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64)
		if err != nil || secs <= 0 {
			return 0
		}
		if secs > int64(365*24*time.Hour/time.Second) {
			secs = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	return 0
}
