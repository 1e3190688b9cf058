package middleware

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokenward/tokenward/dpop"
)

// This file is the proof of DPoP-bound tokens (RFC 9449): the DPoP scheme,
// the modes, and the proof check that [Guard.Check] runs on every request
// presenting a token with the DPoP scheme.

// DPoPMode says which authorization schemes a [Guard] accepts.
type DPoPMode uint8

const (
	// DPoPAllowed accepts both schemes, Bearer and DPoP: the zero value
	// and the default.
	DPoPAllowed DPoPMode = iota
	// DPoPDisabled accepts Bearer only: "Authorization: DPoP" is refused
	// (dpop_disabled), and so, as always, are cnf.jkt tokens sent as
	// Bearer (dpop_downgrade).
	DPoPDisabled
	// DPoPRequired accepts DPoP only: Bearer is refused with the DPoP
	// challenge (dpop_required).
	DPoPRequired
)

// String returns the mode's name, as [ParseDPoPMode] reads it.
func (m DPoPMode) String() string {
	switch m {
	case DPoPAllowed:
		return "allowed"
	case DPoPDisabled:
		return "disabled"
	case DPoPRequired:
		return "required"
	}
	return fmt.Sprintf("DPoPMode(%d)", uint8(m))
}

// ParseDPoPMode reads "allowed", "disabled" or "required".
func ParseDPoPMode(s string) (DPoPMode, error) {
	switch s {
	case "allowed":
		return DPoPAllowed, nil
	case "disabled":
		return DPoPDisabled, nil
	case "required":
		return DPoPRequired, nil
	}
	return 0, fmt.Errorf("tokenward: DPoP mode %q is not allowed, disabled or required", s)
}

// The DPoP defaults, for a zero [DPoPOptions] field.
const (
	DefaultDPoPMaxAge    = 60 * time.Second
	DefaultDPoPMaxFuture = 5 * time.Second
)

// DPoPHeader is the request header carrying the proof, and DPoPNonceHeader
// the answer header carrying a server nonce (RFC 9449 §4.1, §8).
const (
	DPoPHeader      = "DPoP"
	DPoPNonceHeader = "DPoP-Nonce"

	dpopKey = "Dpop" // DPoPHeader as http.Header keys it
)

// DPoPOptions tunes DPoP (RFC 9449) in a [Guard]. The zero value accepts
// both schemes, ES256 proofs up to 60 s old and 5 s ahead, no server nonce,
// and remembers proofs in this process's memory.
type DPoPOptions struct {
	// Mode says which schemes are accepted. Zero is DPoPAllowed.
	Mode DPoPMode
	// Algorithms are the proof algorithms accepted, from dpop.Algorithms
	// (ES256 ES384 RS256 PS256 EdDSA Ed25519; never none or HMAC). Nil
	// means ES256.
	Algorithms []string
	// MaxAge is how old a proof's iat may be. Zero means 60 s.
	MaxAge time.Duration
	// MaxFuture is how far ahead of the clock a proof's iat may be. Zero
	// means 5 s.
	MaxFuture time.Duration
	// Leeway is added to MaxAge and MaxFuture, for clock skew. Zero means
	// none.
	Leeway time.Duration
	// MaxProofBytes bounds a proof, checked before it is decoded. Zero
	// means dpop.DefaultMaxBytes (8192).
	MaxProofBytes int
	// Nonces, when set, makes every proof carry a current server nonce
	// (RFC 9449 §8): a proof without one gets 401 use_dpop_nonce with a
	// DPoP-Nonce header. Nil means no server nonce.
	Nonces *dpop.Nonces
	// Replay remembers the proofs seen, so that each is accepted once.
	// Nil means a dpop.MemoryStore with default bounds, made by [NewGuard]:
	// it stops a replay at this process only; with several replicas, share
	// one store (package dpop/redisstore). An error from it refuses the
	// request with 503 (fail closed).
	Replay dpop.Store
	// PublicURL is the absolute base URL clients use
	// ("https://api.example.com"): the scheme and authority of the htu a
	// proof must name come from it instead of the request. It has no path,
	// query, fragment or user info. "" means from the request
	// ([Request].Scheme and Host).
	PublicURL string
}

// dpopConfig is a Guard's DPoP configuration, checked.
type dpopConfig struct {
	mode      DPoPMode
	verifier  *dpop.Verifier
	algs      string // space-separated, for challenges
	maxAge    time.Duration
	maxFuture time.Duration
	leeway    time.Duration
	nonces    *dpop.Nonces
	replay    dpop.Store
	// scheme and host of PublicURL; "" to take them from the request.
	scheme, host string
}

func newDPoPConfig(o DPoPOptions) (*dpopConfig, error) {
	var errs []error
	if o.Mode > DPoPRequired {
		errs = append(errs, fmt.Errorf("tokenward: unknown DPoP mode %d", o.Mode))
	}
	v, err := dpop.NewVerifier(dpop.VerifierOptions{Algorithms: o.Algorithms, MaxBytes: o.MaxProofBytes})
	if err != nil {
		errs = append(errs, err)
	}
	if o.MaxAge < 0 || o.MaxFuture < 0 || o.Leeway < 0 {
		errs = append(errs, errors.New("tokenward: negative DPoP MaxAge, MaxFuture or Leeway"))
	}
	c := &dpopConfig{mode: o.Mode, verifier: v, maxAge: o.MaxAge, maxFuture: o.MaxFuture, leeway: o.Leeway,
		nonces: o.Nonces, replay: o.Replay}
	if o.PublicURL != "" {
		u, err := url.Parse(o.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
			errs = append(errs, fmt.Errorf("tokenward: DPoP public URL %q must be an absolute http(s) URL with no path, query, fragment or user info", o.PublicURL))
		} else {
			c.scheme, c.host = u.Scheme, u.Host
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if c.maxAge == 0 {
		c.maxAge = DefaultDPoPMaxAge
	}
	if c.maxFuture == 0 {
		c.maxFuture = DefaultDPoPMaxFuture
	}
	if c.replay == nil {
		c.replay = dpop.NewMemoryStore(dpop.MemoryOptions{})
	}
	c.algs = strings.Join(v.Algorithms(), " ")
	return c, nil
}

// CheckDPoPOptions reports every problem of o, as [NewGuard] would.
func CheckDPoPOptions(o DPoPOptions) error {
	o.Replay = noStore{} // not made for a check
	_, err := newDPoPConfig(o)
	return err
}

type noStore struct{}

func (noStore) Seen(context.Context, [32]byte, time.Duration) (bool, error) { return false, nil }

// Token types, as [Claims].TokenType holds them.
const (
	TokenTypeBearer = "Bearer"
	TokenTypeDPoP   = "DPoP"
)

// credentials returns the token of req and the scheme it came with, by the
// guard's mode: one Authorization header, Bearer or DPoP, else req.Token
// (as Bearer) when there is no Authorization header.
func (g *Guard) credentials(req Request) (token, scheme string, e *Error) {
	values := req.Header["Authorization"]
	if len(values) == 0 && req.Token != "" {
		return req.Token, TokenTypeBearer, nil
	}
	token, scheme, err := extractAuthorization(values)
	if err != nil {
		return "", "", err
	}
	if scheme == TokenTypeDPoP && g.dpop.mode == DPoPDisabled {
		return "", "", &Error{Reason: ReasonDPoPDisabled, dpop: true}
	}
	return token, scheme, nil
}

// checkScheme applies the mode and the no-downgrade rule (RFC 9449 §7.2)
// to a valid token presented with scheme.
func (g *Guard) checkScheme(scheme string, c *Confirmation) *Error {
	bound := c != nil && c.KeyThumbprint != ""
	switch {
	case scheme == TokenTypeBearer && bound:
		return &Error{Reason: ReasonDPoPDowngrade, Detail: "cnf.jkt token presented as Bearer"}
	case scheme == TokenTypeBearer && g.dpop.mode == DPoPRequired:
		return &Error{Reason: ReasonDPoPRequired}
	case scheme == TokenTypeDPoP && !bound:
		return &Error{Reason: ReasonDPoPBinding, Detail: "DPoP scheme with a token that has no cnf.jkt", dpop: true}
	}
	return nil
}

// proofHeader returns the one DPoP header of req: its absence or several
// are dpop_proof_missing, one over the size limit dpop_proof_too_large,
// both before anything is decoded.
func (g *Guard) proofHeader(req Request) (string, *Error) {
	values := req.Header[dpopKey]
	if len(values) != 1 || values[0] == "" {
		return "", &Error{Reason: ReasonDPoPProofMissing, dpop: true,
			Detail: fmt.Sprintf("%d DPoP headers", len(values))}
	}
	if len(values[0]) > g.dpop.verifier.MaxBytes() {
		return "", &Error{Reason: ReasonDPoPProofTooLarge, dpop: true,
			Detail: fmt.Sprintf("%d bytes, limit %d", len(values[0]), g.dpop.verifier.MaxBytes())}
	}
	return values[0], nil
}

// checkProof is RFC 9449 §4.3 for one request: the proof's structure, key,
// the key's thumbprint against the token's cnf.jkt (before any signature
// work) and signature, then htm, htu, iat, jti, ath, the server nonce, and
// last the replay store, so that
// only proofs that passed everything else take room in it. It returns the
// proof's nonce. The proof is never cached.
func (g *Guard) checkProof(ctx context.Context, req Request, raw, token, jkt string) (nonce string, e *Error) {
	d := g.dpop
	// The key against cnf.jkt before its signature is verified.
	p, err := d.verifier.ParseFor(raw, jkt)
	if err != nil {
		return "", &Error{Reason: proofReason(err), Err: err, dpop: true}
	}
	if p.Method == "" || p.Method != req.Method {
		return "", &Error{Reason: ReasonDPoPMethod, Detail: fmt.Sprintf("htm %q, request method %q", clip(p.Method), clip(req.Method)), dpop: true}
	}
	want, err := dpop.NormalizeURL(g.requestURL(req))
	if err != nil {
		return "", &Error{Reason: ReasonDPoPURL, Detail: "request URL: " + err.Error(), dpop: true}
	}
	got, err := dpop.NormalizeURL(p.URL)
	if err != nil || got != want {
		return "", &Error{Reason: ReasonDPoPURL, Detail: fmt.Sprintf("htu %q, request URL %q", clip(got), clip(want)), dpop: true}
	}
	now := g.v.now()
	switch {
	case !p.HasIAT:
		return "", &Error{Reason: ReasonDPoPIAT, Detail: "no iat", dpop: true}
	case now.Sub(p.IssuedAt) > d.maxAge+d.leeway:
		return "", &Error{Reason: ReasonDPoPIAT, Detail: "iat " + ago(now.Sub(p.IssuedAt)) + " ago", dpop: true}
	case p.IssuedAt.Sub(now) > d.maxFuture+d.leeway:
		return "", &Error{Reason: ReasonDPoPIAT, Detail: "iat " + ago(p.IssuedAt.Sub(now)) + " ahead", dpop: true}
	}
	if p.ID == "" {
		return "", &Error{Reason: ReasonDPoPJTI, dpop: true}
	}
	if subtle.ConstantTimeCompare([]byte(p.TokenHash), []byte(dpop.TokenHash(token))) != 1 {
		return "", &Error{Reason: ReasonDPoPATH, dpop: true}
	}
	if d.nonces != nil && !d.nonces.Valid(p.Nonce, now) {
		detail := "no nonce"
		if p.Nonce != "" {
			detail = "nonce not current"
		}
		return "", &Error{Reason: ReasonDPoPNonce, Detail: detail, dpop: true}
	}
	// Remembered until the proof is too old for the window anyway.
	ttl := p.IssuedAt.Add(d.maxAge+d.leeway).Sub(now) + time.Second
	replay, err := d.replay.Seen(ctx, p.ReplayID(), ttl)
	switch {
	case err != nil:
		return "", &Error{Reason: ReasonDPoPStoreUnavailable, Err: err, dpop: true}
	case replay:
		return "", &Error{Reason: ReasonDPoPReplay, Detail: "jti seen before", dpop: true}
	}
	return p.Nonce, nil
}

func proofReason(err error) Reason {
	switch {
	case errors.Is(err, dpop.ErrTooLarge):
		return ReasonDPoPProofTooLarge
	case errors.Is(err, dpop.ErrType):
		return ReasonDPoPType
	case errors.Is(err, dpop.ErrAlgorithm):
		return ReasonDPoPAlgorithm
	case errors.Is(err, dpop.ErrKey):
		return ReasonDPoPKey
	case errors.Is(err, dpop.ErrSignature):
		return ReasonDPoPSignature
	case errors.Is(err, dpop.ErrBinding):
		return ReasonDPoPBinding
	}
	return ReasonDPoPProofMalformed
}

func clip(s string) string {
	if len(s) > 256 {
		return s[:256] + "…"
	}
	return s
}

// requestURL is the URL the client sent req to, as htu names it: the
// scheme and authority of [DPoPOptions].PublicURL when set, else of the
// request, and the request's path.
func (g *Guard) requestURL(req Request) string {
	scheme, host := g.dpop.scheme, g.dpop.host
	if scheme == "" {
		scheme = req.Scheme
		if scheme == "" {
			scheme = "http"
		}
		host = req.Host
		if host == "" && req.URL != nil {
			host = req.URL.Host
		}
	}
	path := "/"
	if req.URL != nil {
		path = req.URL.EscapedPath()
	}
	return scheme + "://" + host + path
}

// ForwardedFrom fills req.Scheme and req.Host from X-Forwarded-Proto and
// X-Forwarded-Host, only when req.Peer.Addr is one of
// [GuardOptions].TrustedProxies and each header is one value that can be a
// scheme ("http", "https") or a host; from any other peer they are ignored,
// so that a client cannot choose the URL its proofs are checked against.
func (g *Guard) ForwardedFrom(req *Request) {
	if !g.trusted(req.Peer.Addr) {
		return
	}
	if v := req.Header["X-Forwarded-Proto"]; len(v) == 1 {
		if p := strings.ToLower(strings.TrimSpace(v[0])); p == "http" || p == "https" {
			req.Scheme = p
		}
	}
	if v := req.Header["X-Forwarded-Host"]; len(v) == 1 {
		if h := strings.TrimSpace(v[0]); ValidHost(h) {
			req.Host = h
		}
	}
}

// ValidHost reports whether h can be the authority of a request URL: a
// host[:port] without user info, path or list separator.
func ValidHost(h string) bool {
	if h == "" || len(h) > 255 || strings.ContainsAny(h, "/\\@?#, \t") {
		return false
	}
	u, err := url.Parse("http://" + h + "/")
	return err == nil && u.Host == h && u.User == nil
}

// NonceHeader sets DPoP-Nonce on h, the headers of the answer to a request
// that got claims and err from [Guard.Check], when the guard has server
// nonces and the client needs a new one: on a refusal of a DPoP request
// (use_dpop_nonce above all), and on success when the proof's nonce is no
// longer the current one (it rotated). Front ends call it for every answer.
func (g *Guard) NonceHeader(h http.Header, claims *Claims, err *Error) {
	n := g.dpop.nonces
	if n == nil {
		return
	}
	now := g.v.now()
	switch {
	case err != nil:
		if err.Reason == ReasonDPoPNonce || err.dpop {
			h.Set(DPoPNonceHeader, n.Current(now))
		}
	case claims != nil && claims.TokenType == TokenTypeDPoP:
		if cur := n.Current(now); claims.dpopNonce != cur {
			h.Set(DPoPNonceHeader, cur)
		}
	}
}

// DPoPMode returns the guard's mode.
func (g *Guard) DPoPMode() DPoPMode { return g.dpop.mode }

// DPoPAlgorithms returns the proof algorithms the guard accepts, for
// RFC 9728 metadata (dpop_signing_alg_values_supported).
func (g *Guard) DPoPAlgorithms() []string { return g.dpop.verifier.Algorithms() }

// DPoPReplayStore returns the guard's replay store, for its health.
func (g *Guard) DPoPReplayStore() dpop.Store { return g.dpop.replay }
