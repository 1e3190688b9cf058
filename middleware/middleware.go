package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tokenward/tokenward/scopes"
)

// DefaultRealm is the realm of the WWW-Authenticate challenge when
// [Options.Realm] is empty.
const DefaultRealm = "api"

// RetryAfterSeconds is the Retry-After sent with a 503 while an issuer's keys
// are unavailable.
const RetryAfterSeconds = "5"

// Options tunes the middleware. The zero value requires a valid token and no
// scopes, and answers failures with [WriteError].
type Options struct {
	// Required are the scopes every request needs. Zero means none beyond a
	// valid token; add per-route scopes with [Require].
	Required scopes.Requirement
	// Realm names the protection space in challenges. Empty means
	// [DefaultRealm].
	Realm string
	// TrustedProxies are the proxies whose certificate headers name the
	// client's certificate, for certificate-bound tokens (see
	// [GuardOptions].TrustedProxies). From any other peer those headers
	// are ignored and removed before the next handler. Nil means none:
	// only the TLS connection's certificate (r.TLS) counts.
	TrustedProxies []string
	// ResourceMetadata is the URL of the protected resource's metadata
	// (RFC 9728; serve the document with package resource), sent as
	// resource_metadata in every challenge. Empty means none. It must pass
	// [CheckResourceMetadata].
	ResourceMetadata string
	// DPoP tunes DPoP-bound tokens (RFC 9449); see [DPoPOptions]. The
	// zero value accepts both schemes. A proof's htu is checked against
	// the URL the request came to: https when r.TLS is set, else http, and
	// r.Host — or, from one of TrustedProxies, X-Forwarded-Proto and
	// X-Forwarded-Host ([Guard.ForwardedFrom]) — unless DPoP.PublicURL is
	// set.
	DPoP DPoPOptions
	// TokenFrom is another place to find a token (see [FromCookie]),
	// consulted only when the request has no Authorization header. Nil means
	// the Authorization header only.
	TokenFrom func(*http.Request) (string, bool)
	// OnError writes the answer to a refused request. Nil means
	// [WriteError] with the realm.
	OnError func(w http.ResponseWriter, r *http.Request, err *Error)
	// Observe, if set, is called once per request with the outcome, for
	// metrics and logs — and once more when a [Require] behind the
	// middleware refuses the request for its scopes. It must not block or
	// retain the request.
	Observe func(r *http.Request, o Outcome)
}

// Outcome is what happened to one request.
type Outcome struct {
	Claims   *Claims       // the verified claims; nil when refused before
	Err      *Error        // nil when allowed
	Duration time.Duration // time spent extracting and validating the token
}

// handler is one configured middleware: the decision is its guard's.
type handler struct {
	g       *Guard
	opts    Options
	onError func(http.ResponseWriter, *http.Request, *Error)
}

// New returns middleware that lets a request through only with a valid bearer
// token carrying the required scopes, as [Guard.Check] decides. The verified
// claims are in the request context ([ClaimsFrom]). Refused requests are
// answered as RFC 6750 says: 401 with a challenge, 400 for a malformed
// header, 403 for missing scopes, 503 with Retry-After while the issuer's
// keys have never been loaded.
func New(v *Validator, opts Options) (func(http.Handler) http.Handler, error) {
	g, err := NewGuard(v, GuardOptions{Realm: opts.Realm, ResourceMetadata: opts.ResourceMetadata, TrustedProxies: opts.TrustedProxies,
		DPoP: opts.DPoP})
	if rerr := opts.Required.Validate(); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return nil, err
	}
	h := &handler{g: g, opts: opts, onError: opts.OnError}
	if h.onError == nil {
		h.onError = func(w http.ResponseWriter, _ *http.Request, err *Error) { g.WriteError(w, err) }
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			req := RequestOf(r)
			h.g.ForwardedFrom(&req)
			if !h.g.trusted(req.Peer.Addr) {
				// A certificate a client asserts itself is no one's: not
				// for Check, nor for the handlers behind.
				StripCertHeaders(r.Header)
			}
			if h.opts.TokenFrom != nil && len(r.Header["Authorization"]) == 0 {
				if t, ok := h.opts.TokenFrom(r); ok {
					req.Token = t
				}
			}
			claims, err := h.g.Check(r.Context(), req, h.opts.Required)
			if h.opts.Observe != nil {
				h.opts.Observe(r, Outcome{Claims: claims, Err: err, Duration: time.Since(start)})
			}
			h.g.NonceHeader(w.Header(), claims, err)
			if err != nil {
				h.onError(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authKey, &auth{claims: claims, h: h})))
		})
	}, nil
}

// auth is what the middleware puts in the request context.
type auth struct {
	claims *Claims
	h      *handler
}

type ctxKey struct{}

var authKey = &ctxKey{}

// ClaimsFrom returns the verified claims that the middleware put in the
// request context, or false when there are none.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	a, ok := ctx.Value(authKey).(*auth)
	if !ok || a == nil || a.claims == nil {
		return nil, false
	}
	return a.claims, true
}

// Require wraps a handler that needs scopes beyond those of the middleware in
// front of it, for per-route requirements:
//
//	mux.Handle("POST /contacts", middleware.Require(scopes.All("write:contacts"), createContact))
//
// A request that did not pass the middleware is refused with 401 (fail
// closed). Require panics if the requirement is invalid, as
// [http.ServeMux.Handle] does on a bad pattern: that is a programming error
// found at start, never on a request.
func Require(req scopes.Requirement, next http.Handler) http.Handler {
	if err := req.Validate(); err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := r.Context().Value(authKey).(*auth)
		if !ok || a == nil || a.claims == nil {
			WriteError(w, DefaultRealm, &Error{Reason: ReasonNoToken})
			return
		}
		if err := authorize(a.claims, req); err != nil {
			if a.h.opts.Observe != nil {
				a.h.opts.Observe(r, Outcome{Claims: a.claims, Err: err})
			}
			a.h.onError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// WriteError answers a refused request as RFC 6750 §3 and RFC 9449 §7.1
// say, with a small JSON body. It is the one place where an [*Error]
// becomes an HTTP answer:
//
//	401 no token:       WWW-Authenticate: Bearer realm="api"
//	400, 401, 403:      WWW-Authenticate: Bearer realm="api", error="…", error_description="…"[, scope="…"]
//	401 DPoP:           WWW-Authenticate: DPoP realm="api", algs="ES256", error="invalid_dpop_proof", error_description="…"
//	503 no keys:        Retry-After: 5
//
// The description never contains the token or an internal error.
// [Guard.WriteError] adds resource_metadata="…" (RFC 9728 §5.1) to each
// challenge, and challenges by its [DPoPMode], always in one header line:
// in the allowed mode, the refusal of a request that used the DPoP scheme
// (or of a DPoP-bound token sent as Bearer) carries the DPoP challenge with
// the error, then a bare Bearer one; any other refusal carries the Bearer
// challenge alone, as without DPoP (RFC 9728 metadata advertises DPoP). In
// the required mode every refusal carries DPoP's alone; in the disabled
// mode Bearer's alone. WriteError itself answers as a guard in the disabled
// mode would, but with DPoP's challenge (algs="ES256") for DPoP refusals.
func WriteError(w http.ResponseWriter, realm string, err *Error) {
	writeError(w, challenge{realm: realm, mode: DPoPDisabled, algs: "ES256", guardless: true}, err)
}

// challenge is what a guard's challenges say.
type challenge struct {
	realm, metadata string // metadata: resource_metadata, "" for none; checked by CheckResourceMetadata
	mode            DPoPMode
	algs            string // accepted proof algorithms, space-separated
	guardless       bool   // WriteError's: a DPoP refusal still gets a DPoP challenge
}

// writeError is WriteError with a guard's challenge.
func writeError(w http.ResponseWriter, ch challenge, err *Error) {
	rm := ""
	if ch.metadata != "" {
		rm = `, resource_metadata="` + ch.metadata + `"`
	}
	h := w.Header()
	status := err.Status()
	code := err.Code()
	desc := err.ClientDescription()
	params := ""
	if code != "" && status != http.StatusServiceUnavailable {
		params = `, error="` + code + `", error_description="` + quote(desc) + `"`
		if err.Scope != "" {
			params += `, scope="` + quote(err.Scope) + `"`
		}
	}
	bearer := `Bearer realm="` + ch.realm + `"`
	dpopCh := `DPoP realm="` + ch.realm + `", algs="` + ch.algs + `"`
	onDPoP := (err.dpop || err.Reason == ReasonDPoPDowngrade || err.Reason == ReasonDPoPRequired) && err.Reason != ReasonDPoPDisabled
	switch {
	case status == http.StatusServiceUnavailable:
		h.Set("Retry-After", RetryAfterSeconds)
		code = "temporarily_unavailable"
	case ch.mode == DPoPRequired:
		h.Set("WWW-Authenticate", dpopCh+params+rm)
	case ch.mode == DPoPDisabled && onDPoP && ch.guardless:
		h.Set("WWW-Authenticate", dpopCh+params+rm)
	case ch.mode == DPoPDisabled:
		h.Set("WWW-Authenticate", bearer+params+rm)
	case onDPoP:
		// One field line with both challenges, the one with the error
		// first: gateways pass a single WWW-Authenticate on.
		h.Set("WWW-Authenticate", dpopCh+params+rm+", "+bearer+rm)
	default:
		h.Set("WWW-Authenticate", bearer+params+rm)
	}
	if code == "" {
		code = "unauthorized"
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
		Scope       string `json:"scope,omitempty"`
	}{code, desc, err.Scope})
	w.Write(append(body, '\n'))
}

// quote keeps a value inside a quoted-string: our descriptions and validated
// scopes never contain these, but a custom description might.
func quote(s string) string {
	if !strings.ContainsAny(s, "\"\\\r\n") {
		return s
	}
	return strings.NewReplacer(`"`, `'`, `\`, `/`, "\r", " ", "\n", " ").Replace(s)
}
