package opaque

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tokenward/tokenward/jwks"
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
	if err := jwks.CheckURL(issuer); err != nil {
		return "", "", fmt.Errorf("opaque: discovery: %w", err)
	}
	c := &http.Client{}
	if client != nil {
		*c = *client
	}
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		return jwks.CheckURL(req.URL.String())
	}
	if _, ok := ctx.Deadline(); !ok && c.Timeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, discoveryTimeout)
		defer cancel()
	}
	wellKnown := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wellKnown, nil)
	if err != nil {
		return "", "", fmt.Errorf("opaque: discovery for %s: %w", issuer, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("opaque: discovery for %s: %w", issuer, safeError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("opaque: discovery for %s: status %d", issuer, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscovery+1))
	if err != nil {
		return "", "", fmt.Errorf("opaque: discovery for %s: %w", issuer, safeError(err))
	}
	if len(body) > maxDiscovery {
		return "", "", fmt.Errorf("opaque: discovery for %s: document larger than %d bytes", issuer, maxDiscovery)
	}
	var doc struct {
		Issuer                string `json:"issuer"`
		UserInfoEndpoint      string `json:"userinfo_endpoint"`
		IntrospectionEndpoint string `json:"introspection_endpoint"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", "", fmt.Errorf("opaque: discovery for %s: the document is not valid JSON", issuer)
	}
	if doc.Issuer != issuer {
		return "", "", fmt.Errorf("opaque: discovery document names issuer %.200q, not %q", doc.Issuer, issuer)
	}
	if doc.UserInfoEndpoint == "" && doc.IntrospectionEndpoint == "" {
		return "", "", fmt.Errorf("opaque: discovery document of %s lists neither userinfo_endpoint nor introspection_endpoint", issuer)
	}
	var errs []error
	for _, e := range []struct{ name, url string }{
		{"userinfo_endpoint", doc.UserInfoEndpoint},
		{"introspection_endpoint", doc.IntrospectionEndpoint},
	} {
		if e.url == "" {
			continue
		}
		if err := jwks.CheckURL(e.url); err != nil {
			errs = append(errs, fmt.Errorf("opaque: discovery document of %s: %s: %w", issuer, e.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", "", err
	}
	return doc.UserInfoEndpoint, doc.IntrospectionEndpoint, nil
}
