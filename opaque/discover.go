package opaque

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/tokenward/tokenward/internal/httpfetch"
)

// discoveryTimeout bounds Discover when the context has no deadline.
const discoveryTimeout = 10 * time.Second

// maxDiscovery bounds the discovery document (Auth0's is about 2 KiB).
const maxDiscovery = 1 << 20

// Discover reads the issuer's OpenID Connect discovery document
// (issuer + "/.well-known/openid-configuration", as go-oidc forms it) and
// returns its "userinfo_endpoint" and "introspection_endpoint" (RFC 8414),
// either of which may be "" when the issuer has none. It fails if the
// document's "issuer" is not exactly issuer, if it lists neither endpoint, or
// if an endpoint is neither https nor http on a loopback host. client nil
// means a default client; redirects are followed only to URLs such as these.
func Discover(ctx context.Context, client *http.Client, issuer string) (userinfo, introspection string, err error) {
	if err := httpfetch.CheckURL(issuer); err != nil {
		return "", "", fmt.Errorf("opaque: discovery: %w", err)
	}
	c := httpfetch.Client(client, maxDiscovery, func(u *url.URL) error { return httpfetch.CheckURL(u.String()) })
	if _, ok := ctx.Deadline(); !ok && c.Timeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, discoveryTimeout)
		defer cancel()
	}
	p, err := httpfetch.Discover(ctx, c, issuer)
	if err != nil {
		return "", "", fmt.Errorf("opaque: %w", err)
	}
	var doc struct {
		IntrospectionEndpoint string `json:"introspection_endpoint"`
	}
	if err := p.Claims(&doc); err != nil {
		return "", "", fmt.Errorf("opaque: discovery document of %s: introspection_endpoint is not a string", issuer)
	}
	userinfo, introspection = p.UserInfoEndpoint(), doc.IntrospectionEndpoint
	if userinfo == "" && introspection == "" {
		return "", "", fmt.Errorf("opaque: discovery document of %s lists neither userinfo_endpoint nor introspection_endpoint", issuer)
	}
	var errs []error
	for _, e := range []struct{ name, url string }{
		{"userinfo_endpoint", userinfo},
		{"introspection_endpoint", introspection},
	} {
		if e.url == "" {
			continue
		}
		if err := httpfetch.CheckURL(e.url); err != nil {
			errs = append(errs, fmt.Errorf("opaque: discovery document of %s: %s: %w", issuer, e.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", "", err
	}
	return userinfo, introspection, nil
}
