package opaque

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tokenward/tokenward/middleware"
)

// UserInfoOptions configures a [UserInfo] checker. Issuer is required; for
// the others the zero value is the default.
type UserInfoOptions struct {
	// Issuer is the issuer whose /userinfo endpoint this is, exactly as the
	// validator trusts it. It becomes the "iss" of the claims: a profile
	// names no issuer that could be trusted.
	Issuer string
	// Timeout bounds one call to the issuer. Zero means [DefaultTimeout].
	Timeout time.Duration
	// CacheTTL is how long a profile is cached (a profile has no expiry).
	// Zero means [DefaultCacheTTL]; negative means not at all. A token
	// revoked at the issuer stays accepted until its cached answer expires.
	CacheTTL time.Duration
	// StaleIfBusy is as [IntrospectorOptions.StaleIfBusy]. A profile has no
	// expiry, so StaleIfBusy alone bounds it.
	StaleIfBusy time.Duration
	// NegativeTTL is how long a refusal (401) is cached. Zero means
	// [DefaultNegativeTTL]; negative means not at all. Failures to ask the
	// issuer are never cached.
	NegativeTTL time.Duration
	// MaxEntries bounds the cached profiles, and apart from them the cached
	// refusals. Zero means [DefaultMaxEntries].
	MaxEntries int
	// CacheMaxBytes bounds the estimated memory of the cached profiles. Zero
	// means [DefaultCacheMaxBytes].
	CacheMaxBytes int64
	// MaxConcurrency is as [IntrospectorOptions.MaxConcurrency].
	MaxConcurrency int
	// HTTPClient makes the calls; redirects are never followed. Nil means a
	// client with http.DefaultTransport's settings and at most
	// MaxConcurrency connections to the endpoint's host.
	HTTPClient *http.Client
	// Logger receives failures to ask the issuer, never a token. Nil means
	// no logging.
	Logger *slog.Logger
	// OnCheck is as [IntrospectorOptions.OnCheck].
	OnCheck func(result string, cached bool)
	// Now is the clock of the cache. Nil means time.Now.
	Now func() time.Time
}

// UserInfo checks opaque access tokens by calling the issuer's OpenID
// Connect /userinfo endpoint with them, as Auth0 requires for the opaque
// tokens it issues when no API audience is requested. It implements
// [middleware.OpaqueChecker] and is safe for concurrent use.
type UserInfo struct {
	c        *core
	endpoint string
	issuer   string
}

// NewUserInfo returns a checker that calls the /userinfo endpoint (https,
// or http on a loopback host). Every configuration problem is reported at
// once.
func NewUserInfo(endpoint string, opts UserInfoOptions) (*UserInfo, error) {
	s, errs := newSettings("userinfo", endpoint, settings{
		issuer:      opts.Issuer,
		timeout:     opts.Timeout,
		ttl:         opts.CacheTTL,
		staleIfBusy: opts.StaleIfBusy,
		negTTL:      opts.NegativeTTL,
		maxEntries:  opts.MaxEntries,
		maxBytes:    opts.CacheMaxBytes,
		concurrency: opts.MaxConcurrency,
		client:      opts.HTTPClient,
		log:         opts.Logger,
		onCheck:     opts.OnCheck,
		now:         opts.Now,
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	u := &UserInfo{endpoint: endpoint, issuer: opts.Issuer}
	u.c = newCore("userinfo", endpoint, s, u.fetch)
	return u, nil
}

// CheckOpaque returns the claims of a token the issuer's /userinfo accepts:
// the profile (sub, email, ...) with Kind [middleware.KindUserInfo], "iss"
// the configured issuer, and no audience, scopes or time claims, so a route
// that requires scopes refuses it with insufficient_scope. It fails with
// reason inactive when /userinfo refuses the token (401), and
// issuer_unavailable when the issuer cannot be asked within the timeout or
// answers something unusable. The claims are a copy; their slices are shared
// and must not be modified.
func (u *UserInfo) CheckOpaque(ctx context.Context, token string) (*middleware.Claims, error) {
	return u.c.check(ctx, token)
}

// Stats returns what the checker did so far.
func (u *UserInfo) Stats() Stats { return u.c.stats() }

// Endpoint returns the /userinfo endpoint.
func (u *UserInfo) Endpoint() string { return u.endpoint }

func (u *UserInfo) fetch(ctx context.Context, token string) (*middleware.Claims, int64, *middleware.Error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.endpoint, nil)
	if err != nil {
		return nil, 0, unavailable("bad userinfo endpoint", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, body, err := u.c.do(req)
	if err != nil {
		return nil, 0, unavailable("userinfo at "+u.endpoint+" failed", safeError(err))
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, 0, &middleware.Error{Reason: middleware.ReasonInactive, Detail: "userinfo refused the token"}
	case resp.StatusCode == http.StatusForbidden && bearerChallenge(resp.Header):
		// RFC 6750 insufficient_scope: the token is good for something,
		// but not for /userinfo, so nothing vouches for a user.
		return nil, 0, &middleware.Error{Reason: middleware.ReasonInactive, Detail: "userinfo refused the token (insufficient scope)"}
	default:
		return nil, 0, unavailable(fmt.Sprintf("userinfo at %s answered status %d", u.endpoint, resp.StatusCode), nil)
	}
	c, b, perr := parseProfile(body, u.issuer)
	if perr != nil {
		perr.Detail = "userinfo at " + u.endpoint + ": " + perr.Detail
		return nil, 0, perr
	}
	return c, int64(len(b)), nil
}

func bearerChallenge(h http.Header) bool {
	for _, v := range h.Values("WWW-Authenticate") {
		if len(v) >= 6 && strings.EqualFold(v[:6], "Bearer") {
			return true
		}
	}
	return false
}

// profileDropped are the members of a profile that would say something about
// the token rather than its user: a profile vouches for neither an audience,
// nor scopes, nor the token's lifetime, so they are dropped before parsing,
// and "iss" is replaced by the configured issuer.
var profileDropped = []string{"iss", "aud", "scope", "scp", "permissions", "exp", "nbf", "iat"}

// parseProfile turns a /userinfo answer into claims, and returns the JSON
// they were parsed from. An answer that is not a JSON object, whose
// registered claims are malformed, or that has no "sub" (OpenID Connect
// Core §5.3.2 requires it) is unusable: reason issuer_unavailable.
func parseProfile(body []byte, issuer string) (*middleware.Claims, []byte, *middleware.Error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil, unavailable("the profile is not a JSON object (a signed profile, application/jwt, is not supported)", nil)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, nil, unavailable("the profile is not valid JSON", err)
	}
	// encoding/json matches names case-insensitively ("Aud" fills aud), so
	// drop every spelling.
	for name := range m {
		for _, dropped := range profileDropped {
			if strings.EqualFold(name, dropped) {
				delete(m, name)
				break
			}
		}
	}
	iss, err := json.Marshal(issuer)
	if err != nil {
		return nil, nil, unavailable("encoding the issuer", err)
	}
	m["iss"] = iss
	b, err := json.Marshal(m)
	if err != nil {
		return nil, nil, unavailable("re-encoding the profile", err)
	}
	c, err := middleware.ParseClaims(b, middleware.KindUserInfo)
	if err != nil {
		return nil, nil, unavailable("the profile's claims are malformed", err)
	}
	if c.Subject == "" {
		return nil, nil, unavailable("the profile has no sub", nil)
	}
	return c, b, nil
}
