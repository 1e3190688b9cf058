package opaque

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokenward/tokenward/middleware"
)

// IntrospectorOptions configures an [Introspector]. ClientID, ClientSecret
// and Issuer are required; for the others the zero value is the default.
type IntrospectorOptions struct {
	// ClientID and ClientSecret authenticate tokenward to the introspection
	// endpoint with client_secret_basic (RFC 6749 §2.3.1), as RFC 7662
	// requires. Both are required. The secret is never logged.
	ClientID     string
	ClientSecret Secret
	// Issuer is the issuer whose tokens the endpoint introspects, exactly as
	// the validator trusts it. An answer's "iss", when present, must equal
	// it; an answer without "iss" is taken to be Issuer's.
	Issuer string
	// Timeout bounds one call to the issuer, from the request to the end of
	// its answer. Zero means [DefaultTimeout].
	Timeout time.Duration
	// CacheTTL is the longest an active answer is cached; it is never cached
	// past the token's "exp". Zero means [DefaultCacheTTL]; negative means
	// active answers are not cached. A token revoked at the issuer stays
	// accepted until its cached answer expires.
	CacheTTL time.Duration
	// StaleIfBusy is how long past CacheTTL an active answer may still be
	// used, and only by a check that would otherwise be refused with reason
	// issuer_busy (MaxConcurrency calls in progress, as in a flood of
	// made-up tokens): so the tokens of real users keep working during such
	// a flood. It never extends past the token's "exp", and never applies
	// to an inactive answer or a failure to ask the issuer. While it is
	// used, a token revoked at the issuer stays accepted up to StaleIfBusy
	// longer. Zero means CacheTTL; negative means never (such checks are
	// refused).
	StaleIfBusy time.Duration
	// NegativeTTL is how long an inactive (or refused) answer is cached.
	// Zero means [DefaultNegativeTTL]; negative means not at all. Failures
	// to ask the issuer are never cached.
	NegativeTTL time.Duration
	// MaxEntries bounds the cached active answers, and apart from them the
	// cached inactive ones. Zero means [DefaultMaxEntries].
	MaxEntries int
	// CacheMaxBytes bounds the estimated memory of the cached active
	// answers. Zero means [DefaultCacheMaxBytes].
	CacheMaxBytes int64
	// MaxConcurrency bounds the calls to the issuer in progress at once.
	// When that many are in progress, a check that needs one more (a token
	// neither cached nor being checked already) is refused at once with
	// reason issuer_busy (503 with Retry-After) rather than queued: a flood
	// of made-up tokens cannot pile up goroutines or connections, and
	// cached tokens are answered as before. Zero means
	// [DefaultMaxConcurrency].
	MaxConcurrency int
	// HTTPClient makes the calls; its Transport and Timeout are used, but
	// redirects are never followed. Nil means a client with
	// http.DefaultTransport's settings and at most MaxConcurrency
	// connections to the endpoint's host; a client given here should bound
	// its connections too (http.Transport.MaxConnsPerHost).
	HTTPClient *http.Client
	// Logger receives failures to ask the issuer, never a token or the
	// secret. Nil means no logging.
	Logger *slog.Logger
	// OnCheck, if set, is called once per check with its result
	// ([ResultActive], [ResultInactive] or [ResultError]) and whether the
	// cache answered, for metrics. It must not block.
	OnCheck func(result string, cached bool)
	// Now is the clock of the cache. Nil means time.Now.
	Now func() time.Time
}

// Introspector checks opaque access tokens with an RFC 7662 token
// introspection endpoint. It implements [middleware.OpaqueChecker] and is
// safe for concurrent use.
type Introspector struct {
	c        *core
	endpoint string
	issuer   string
	clientID string
	secret   Secret
}

// NewIntrospector returns a checker that POSTs tokens to the introspection
// endpoint (https, or http on a loopback host). Every configuration problem
// is reported at once.
func NewIntrospector(endpoint string, opts IntrospectorOptions) (*Introspector, error) {
	s, errs := newSettings("introspection", endpoint, settings{
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
	if opts.ClientID == "" {
		errs = append(errs, errors.New("opaque: introspection: no client ID"))
	}
	if opts.ClientSecret == "" {
		errs = append(errs, errors.New("opaque: introspection: no client secret"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	in := &Introspector{endpoint: endpoint, issuer: opts.Issuer, clientID: opts.ClientID, secret: opts.ClientSecret}
	in.c = newCore("introspection", endpoint, s, in.fetch)
	return in, nil
}

// CheckOpaque returns the claims of an active token, from the cache or the
// introspection endpoint, with Kind [middleware.KindIntrospection]. It fails
// with reason inactive when the issuer says the token is not active (or its
// answer is refused: another issuer, a refresh token, a sender-constrained
// token), and issuer_unavailable when the issuer cannot be asked within the
// timeout or answers something unusable. The claims are a copy; their slices
// are shared and must not be modified.
func (in *Introspector) CheckOpaque(ctx context.Context, token string) (*middleware.Claims, error) {
	return in.c.check(ctx, token)
}

// Stats returns what the introspector did so far.
func (in *Introspector) Stats() Stats { return in.c.stats() }

// Endpoint returns the introspection endpoint.
func (in *Introspector) Endpoint() string { return in.endpoint }

// String describes the introspector, without the secret, for %v and %+v
// (which would otherwise print its fields).
func (in *Introspector) String() string {
	return fmt.Sprintf("opaque.Introspector{endpoint: %s, issuer: %s, client_id: %s}", in.endpoint, in.issuer, in.clientID)
}

// GoString is String, for %#v.
func (in *Introspector) GoString() string { return in.String() }

// LogValue describes the introspector for log/slog, without the secret.
func (in *Introspector) LogValue() slog.Value {
	return slog.GroupValue(slog.String("endpoint", in.endpoint), slog.String("issuer", in.issuer), slog.String("client_id", in.clientID))
}

func (in *Introspector) fetch(ctx context.Context, token string) (*middleware.Claims, int64, *middleware.Error) {
	form := "token=" + url.QueryEscape(token) + "&token_type_hint=access_token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.endpoint, strings.NewReader(form))
	if err != nil {
		return nil, 0, unavailable("bad introspection endpoint", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(in.clientID), url.QueryEscape(string(in.secret)))
	resp, body, err := in.c.do(req)
	if err != nil {
		return nil, 0, unavailable("introspection at "+in.endpoint+" failed", safeError(err))
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		in.c.log.LogAttrs(ctx, slog.LevelError, "opaque: the introspection endpoint refused our client credentials; check the client ID and secret",
			slog.String("endpoint", in.endpoint), slog.String("client_id", in.clientID), slog.Int("status", resp.StatusCode))
		return nil, 0, unavailable(fmt.Sprintf("introspection at %s refused the client credentials (status %d)", in.endpoint, resp.StatusCode), nil)
	default:
		return nil, 0, unavailable(fmt.Sprintf("introspection at %s answered status %d", in.endpoint, resp.StatusCode), nil)
	}
	c, ierr := parseIntrospection(body, in.issuer)
	if ierr != nil {
		if ierr.Reason == middleware.ReasonIssuerUnavailable {
			ierr.Detail = "introspection at " + in.endpoint + ": " + ierr.Detail
		}
		return nil, 0, ierr
	}
	return c, int64(len(body)), nil
}

// accessTokenTypes are the "token_type" values of an access token that is
// used as a bearer token (RFC 6750, RFC 8693 §3), compared case-insensitively.
var accessTokenTypes = []string{"bearer", "access_token", "urn:ietf:params:oauth:token-type:access_token"}

// parseIntrospection turns an RFC 7662 answer into claims.
//
// "active" must be the JSON boolean true; anything else (false, "true", 1,
// absent) is inactive. A "token_type" or "token_use" that is not an access
// token's (a refresh token presented as an access token) is refused as
// inactive. A "cnf" claim (a sender-constrained token, RFC 7800) becomes
// Claims.Confirmation, whose proof [middleware.Guard.Check] requires on
// every request: the client certificate of a certificate-bound token
// (RFC 8705), a refusal for any other binding. An answer that is not a JSON
// object, or whose registered claims (cnf included) are malformed, is
// unusable: reason issuer_unavailable.
func parseIntrospection(body []byte, issuer string) (*middleware.Claims, *middleware.Error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, unavailable("the answer is not a JSON object", nil)
	}
	var top struct {
		Active    json.RawMessage `json:"active"`
		TokenType *string         `json:"token_type"`
		TokenUse  *string         `json:"token_use"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, unavailable("the answer is not valid JSON", err)
	}
	switch {
	case string(top.Active) == "false":
		return nil, middleware.ErrInactive
	case string(top.Active) != "true":
		return nil, &middleware.Error{Reason: middleware.ReasonInactive, Detail: "introspection answer's active is not the boolean true"}
	case top.TokenType != nil && !isAccessTokenType(*top.TokenType):
		return nil, &middleware.Error{Reason: middleware.ReasonInactive, Detail: fmt.Sprintf("introspection answer's token_type %.40q is not an access token's", *top.TokenType)}
	case top.TokenUse != nil && *top.TokenUse != "access_token":
		return nil, &middleware.Error{Reason: middleware.ReasonInactive, Detail: fmt.Sprintf("introspection answer's token_use %.40q is not access_token", *top.TokenUse)}
	}
	c, err := middleware.ParseClaims(body, middleware.KindIntrospection)
	if err != nil {
		return nil, unavailable("the answer's claims are malformed", err)
	}
	switch c.Issuer {
	case "":
		c.Issuer = issuer
	case issuer:
	default:
		return nil, &middleware.Error{Reason: middleware.ReasonIssuer, Detail: fmt.Sprintf("introspection answer names iss %.200q, not %q", c.Issuer, issuer)}
	}
	return c, nil
}

func isAccessTokenType(t string) bool {
	for _, a := range accessTokenTypes {
		if strings.EqualFold(t, a) {
			return true
		}
	}
	return false
}
