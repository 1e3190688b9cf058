package middleware

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/tokenward/tokenward/scopes"
)

// Request is the part of a request that a decision reads. Each front end
// fills it from what it has: the middleware and the reverse proxy from the
// *http.Request ([RequestOf]), forward-auth from the original method and URI
// that the gateway sends with the client's headers.
type Request struct {
	// Method, URL and Host are the request being judged (for forward-auth,
	// the original one), as the client sent it. Check compares DPoP
	// proofs' htm and htu (RFC 9449) with them: URL's path, Host (URL.Host
	// when Host is "") — unless [DPoPOptions].PublicURL names the scheme
	// and authority.
	Method string
	URL    *url.URL
	Host   string
	// Scheme is "http" or "https": the scheme the client used, for the
	// URL a DPoP proof's htu must name. "" means "http". [RequestOf] sets
	// it from the connection; [Guard.ForwardedFrom] from a trusted proxy's
	// X-Forwarded-Proto.
	Scheme string
	// Header holds the client's headers; the token comes from its
	// Authorization field.
	Header http.Header
	// Token is a token found outside the Authorization header (by
	// [Options.TokenFrom], a cookie), used only when Header has no
	// Authorization field. "" means none.
	Token string
	// Peer is what is known of the client's connection.
	Peer Peer
}

// Peer is what is known of the connection the request came on. The zero
// value means nothing is known.
type Peer struct {
	// Addr is the address of the connection's other end ("host:port" or a
	// host): the client's, or that of a proxy or gateway in front of it
	// (forward-auth: the gateway's). Check reads certificate headers only
	// when it is one of [GuardOptions.TrustedProxies]. "" means unknown,
	// and so untrusted.
	Addr string
	// Certificate is the TLS client certificate of that connection,
	// verified by whoever terminated TLS; nil means none. Check reads it
	// for certificate-bound tokens (RFC 8705), unless Addr is a trusted
	// proxy: then the certificate is the proxy's own, and the client's
	// comes in a header.
	Certificate *x509.Certificate
}

// RequestOf returns the parts of r that a decision reads. URL is the
// request target as the client sent it (r.RequestURI) when a handler in
// front rewrote r.URL (http.StripPrefix, say): a DPoP proof names the URL
// the client used, and a proof for the rewritten one names another
// resource.
func RequestOf(r *http.Request) Request {
	u := r.URL
	if sent, _, _ := strings.Cut(r.RequestURI, "?"); sent != "" && u != nil && sent != u.Path && sent != u.RawPath {
		// Rare (a rewrite, an absolute-form target): parsed only then.
		if su, err := url.ParseRequestURI(r.RequestURI); err == nil {
			u = su
		}
	}
	req := Request{Method: r.Method, URL: u, Host: r.Host, Header: r.Header, Scheme: "http", Peer: Peer{Addr: r.RemoteAddr}}
	if r.TLS != nil {
		req.Scheme = "https"
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		req.Peer.Certificate = r.TLS.PeerCertificates[0]
	}
	return req
}

// GuardOptions tunes a [Guard]. The zero value is the default realm, and
// trusts no proxy: a client certificate comes only from the TLS connection.
type GuardOptions struct {
	// Realm names the protection space in challenges ([WriteError]).
	// Empty means [DefaultRealm]. It must pass [CheckRealm].
	Realm string
	// TrustedProxies are the IP addresses and CIDRs ("10.0.0.7",
	// "10.0.0.0/8", "fd00::/8") of proxies that terminate TLS in front of
	// tokenward and pass the client's certificate on in a header:
	// RFC 9440's Client-Cert ([ClientCertHeader]) or Envoy's
	// X-Forwarded-Client-Cert ([XFCCHeader]). From a request whose
	// [Peer].Addr is one of them, only those headers name the client's
	// certificate; from any other, they are ignored, so that a client
	// cannot assert a certificate it does not hold. Nil means none. A
	// prefix of every address (0.0.0.0/0, ::/0) is refused.
	TrustedProxies []string
	// ResourceMetadata is the URL of the protected resource's metadata
	// document (RFC 9728, package resource), sent as resource_metadata in
	// every challenge [Guard.WriteError] writes, so that a client finds the
	// authorization server. Empty means no such parameter. It must pass
	// [CheckResourceMetadata].
	ResourceMetadata string
	// DPoP tunes DPoP-bound tokens (RFC 9449). The zero value accepts
	// both schemes (see [DPoPOptions]).
	DPoP DPoPOptions
}

// Guard is the one decision every front end makes: the middleware ([New],
// [Require]), and package proxy's reverse proxy and forward-auth handler
// call [Guard.Check], so that a request gets the same answer whichever way
// it comes. Building on it (sender-constrained tokens, gRPC ext_authz) means
// changing Check, not each front end. A Guard is safe for concurrent use.
type Guard struct {
	v        *Validator
	realm    string
	metadata string         // resource_metadata of challenges; "" for none
	proxies  []netip.Prefix // TrustedProxies
	dpop     *dpopConfig
}

// NewGuard returns a guard that validates tokens with v.
func NewGuard(v *Validator, opts GuardOptions) (*Guard, error) {
	var errs []error
	if v == nil {
		errs = append(errs, errors.New("tokenward: nil validator"))
	}
	realm := opts.Realm
	if realm == "" {
		realm = DefaultRealm
	}
	if err := CheckRealm(realm); err != nil {
		errs = append(errs, err)
	}
	if err := CheckResourceMetadata(opts.ResourceMetadata); err != nil {
		errs = append(errs, err)
	}
	proxies, err := parseTrustedProxies(opts.TrustedProxies)
	if err != nil {
		errs = append(errs, err)
	}
	dp, err := newDPoPConfig(opts.DPoP)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Guard{v: v, realm: realm, metadata: opts.ResourceMetadata, proxies: proxies, dpop: dp}, nil
}

// Realm is the realm to answer refusals with: WriteError(w, g.Realm(), err).
func (g *Guard) Realm() string { return g.realm }

// WriteError answers a refused request as [WriteError] does, with the
// guard's realm, and resource_metadata in the challenge when the guard has
// one ([GuardOptions].ResourceMetadata).
func (g *Guard) WriteError(w http.ResponseWriter, err *Error) {
	writeError(w, g.challenge(), err)
}

// challenge is what the guard's challenges say.
func (g *Guard) challenge() challenge {
	return challenge{realm: g.realm, metadata: g.metadata, mode: g.dpop.mode, algs: g.dpop.algs}
}

// Check decides whether req may pass with required scopes: one token (the
// Authorization header, Bearer or DPoP by the guard's [DPoPMode], else
// req.Token as a bearer token), validated ([Validator.Validate]), with its
// proof if it is sender-constrained ([Claims].Confirmation: a DPoP proof
// for a cnf.jkt token, which must come with the DPoP scheme; the client
// certificate of a certificate-bound token), on every request, cache hits
// included, granting required. It returns the verified claims and a nil
// error, or an [*Error] saying why not, which [Guard.WriteError] turns into
// the answer; [Guard.NonceHeader] adds the DPoP-Nonce either answer may
// need.
//
// When the token is valid but lacks the scopes, the claims are returned with
// the insufficient_scope error, for logs: a request may pass only when the
// error is nil. Compare the *Error itself with nil: stored in an error
// variable, a nil *Error is not a nil error (which refuses every request).
// required should have passed [scopes.Requirement.Validate] at configuration
// time.
func (g *Guard) Check(ctx context.Context, req Request, required scopes.Requirement) (*Claims, *Error) {
	token, scheme, e := g.credentials(req)
	if e != nil {
		return nil, e
	}
	var proof string
	if scheme == TokenTypeDPoP {
		// The proof's presence and size before any work on the token.
		if proof, e = g.proofHeader(req); e != nil {
			return nil, e
		}
	}
	claims, err := g.v.Validate(ctx, token)
	if err != nil {
		e := asError(err)
		if scheme == TokenTypeBearer && g.dpop.mode == DPoPRequired {
			return nil, &Error{Reason: ReasonDPoPRequired, Detail: "the bearer token is also refused: " + string(e.Reason)}
		}
		if scheme == TokenTypeDPoP {
			c := *e
			c.dpop = true
			e = &c
		}
		return nil, e
	}
	// Never a bound token as a bearer token: refused before the scopes,
	// as an invalid token (401), not an insufficient one.
	c := claims.Confirmation
	if e := g.checkScheme(scheme, c); e != nil {
		return nil, e
	}
	if c != nil {
		if e := g.confirm(req, c); e != nil {
			e.dpop = scheme == TokenTypeDPoP
			return nil, e
		}
	}
	if scheme == TokenTypeDPoP {
		nonce, e := g.checkProof(ctx, req, proof, token, c.KeyThumbprint)
		if e != nil {
			return nil, e
		}
		claims.dpopNonce = nonce
	}
	claims.TokenType = scheme
	if e := authorize(claims, required); e != nil {
		e.dpop = scheme == TokenTypeDPoP
		return claims, e
	}
	return claims, nil
}

// authorize is the scope step of a decision, shared by [Guard.Check] and
// [Require].
func authorize(claims *Claims, required scopes.Requirement) *Error {
	if required.Satisfied(claims.Scopes) {
		return nil
	}
	return &Error{Reason: ReasonInsufficientScope, Scope: required.String(),
		Detail: "missing " + strings.Join(required.Missing(claims.Scopes), " ")}
}

func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Reason: ReasonMalformed, Err: err}
}

// CheckResourceMetadata reports whether u can be the resource_metadata of a
// challenge: "" (none), or an absolute http or https URL without user info
// or fragment, in printable ASCII without '"' or '\', so that it sits in a
// quoted-string unescaped. Package resource builds it from the resource URI.
func CheckResourceMetadata(u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	bad := err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.User != nil || p.Fragment != ""
	for i := 0; i < len(u) && !bad; i++ {
		c := u[i]
		bad = c <= 0x20 || c >= 0x7f || c == '"' || c == '\\'
	}
	if bad {
		return fmt.Errorf("tokenward: resource metadata URL %q must be an absolute http(s) URL in printable ASCII without '\"' or '\\'", u)
	}
	return nil
}

// CheckRealm reports whether realm can be the realm of a challenge: printable
// ASCII without '"' or '\', so that it sits in a quoted-string unescaped and
// every client parses it alike. [NewGuard] (and so [New] and package proxy)
// refuses any other; the binary checks TOKENWARD_REALM with it.
func CheckRealm(realm string) error {
	for i := 0; i < len(realm); i++ {
		if c := realm[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return fmt.Errorf("tokenward: realm %q must be printable ASCII without '\"' or '\\'", realm)
		}
	}
	return nil
}
