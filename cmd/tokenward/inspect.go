package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/middleware"
)

// maxInspectInput bounds what inspect reads from stdin.
const maxInspectInput = 1 << 20

// inspectTimeout bounds the fetch of the issuer's keys.
const inspectTimeout = 30 * time.Second

// inspect decodes a token without trusting it and prints its header and
// claims, never its signature. Then, with the configuration the proxy would
// have, it says whether the token would be accepted and exactly why not. It
// contacts only the discovery and key set endpoints of the trusted issuer the
// token names, and only when the checks before the key lookup pass.
func inspect(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	method := fs.String("method", http.MethodGet, "method of the request to check the route scopes of (with -path)")
	path := fs.String("path", "", "also check the scopes that the route of this request path needs (TOKENWARD_RULES_FILE, TOKENWARD_REQUIRED_SCOPES)")
	if err := fs.Parse(args); err != nil {
		return &usageError{"inspect: " + err.Error() + "\nusage: tokenward inspect [-path /api/x [-method GET]] [token|-]"}
	}
	if fs.NArg() > 1 {
		return &usageError{"inspect: give one token (or - to read it from stdin)"}
	}
	raw := fs.Arg(0)
	if raw == "" || raw == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, maxInspectInput+1))
		if err != nil {
			return fmt.Errorf("inspect: reading stdin: %w", err)
		}
		if len(b) > maxInspectInput {
			return &usageError{"inspect: input over 1 MiB is not a token"}
		}
		raw = string(b)
	}
	token := cleanToken(raw)
	if token == "" {
		return &usageError{"inspect: no token given (as an argument, or on stdin)"}
	}

	w := &reportWriter{w: stdout}
	claims, decodable := printDecoded(w, token)

	if getenv("TOKENWARD_ISSUERS") == "" && getenv("TOKENWARD_AUDIENCES") == "" {
		w.printf("\nNOT VERIFIED: cannot verify without configuration.\n")
		w.printf("Set TOKENWARD_ISSUERS and TOKENWARD_AUDIENCES (and TOKENWARD_ALGORITHMS, TOKENWARD_JWKS_URIS\n")
		w.printf("if the proxy sets them) as for the proxy, to check the token as it would.\n")
		return errRejected
	}
	cfg, err := loadConfig(getenv, forInspect)
	if err != nil {
		return err
	}
	var route *http.Request
	if *path != "" {
		u, err := url.ParseRequestURI(*path)
		if err != nil {
			return &usageError{fmt.Sprintf("inspect: -path %q is not a request path", *path)}
		}
		route = &http.Request{Method: strings.ToUpper(*method), URL: u, Host: u.Host, Header: http.Header{}}
	}

	// One lazily made key set per trusted issuer: only the issuer the token
	// names, if trusted, is ever contacted.
	lazies := make(map[string]*lazyKeys, len(cfg.Issuers))
	issuers := make([]middleware.Issuer, 0, len(cfg.Issuers))
	for _, iss := range cfg.Issuers {
		opts := cfg.registryOptions(slog.New(slog.DiscardHandler))
		opts.JWKSURLs = nil
		if u, ok := cfg.jwksURLs[iss]; ok {
			opts.JWKSURLs = map[string]string{iss: u}
		}
		l := &lazyKeys{issuer: iss, opts: opts}
		defer l.close()
		lazies[iss] = l
		issuers = append(issuers, middleware.Issuer{URL: iss, Keys: l})
	}
	v, err := middleware.NewValidator(issuers, cfg.Audiences, cfg.validatorOptions())
	if err != nil {
		return asConfigError(err)
	}

	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	verified, verr := v.Validate(ctx, token)
	if verr == nil {
		required, where := cfg.required, "TOKENWARD_REQUIRED_SCOPES"
		if route != nil {
			r := cfg.rules.Match(route)
			if r.Public {
				w.printf("\nNote: %s %s is a public route: the proxy lets it through without looking at the token.\n", route.Method, route.URL.Path)
			}
			required = r.Required
			where = "the route"
			if r.Pattern != "" {
				where = fmt.Sprintf("the route %q", r.Pattern)
			}
		}
		if !required.Satisfied(verified.Scopes) {
			verr = &middleware.Error{
				Reason: middleware.ReasonInsufficientScope,
				Scope:  required.String(),
				Detail: fmt.Sprintf("%s needs %q; the token grants %q, missing %q", where, required.String(),
					verified.Scopes.String(), strings.Join(required.Missing(verified.Scopes), " ")),
			}
		}
	}
	if verr != nil {
		var e *middleware.Error
		if !errors.As(verr, &e) {
			e = &middleware.Error{Reason: middleware.ReasonMalformed, Err: verr}
		}
		w.printf("\nREJECTED: %s\n", e.ClientDescription())
		w.printf("  reason:  %s\n", e.Reason)
		if e.Detail != "" {
			w.printf("  detail:  %s\n", e.Detail)
		}
		if e.Reason == middleware.ReasonKeysUnavailable || e.Reason == middleware.ReasonUnknownKey {
			if iss, _ := claims["iss"].(string); lazies[iss] != nil {
				if s, ok := lazies[iss].status(); ok {
					w.printf("  keys:    %s\n", keySetSummary(s))
				}
			}
		}
		answer := fmt.Sprintf("%d", e.Status())
		if code := e.Code(); code != "" {
			answer += " " + code
		}
		w.printf("  answer:  %s (what the proxy would send)\n", answer)
		if !decodable {
			w.printf("  (the token could not be decoded, see above)\n")
		}
		return errRejected
	}

	w.printf("\nACCEPTED\n")
	w.printf("  issuer:   %s\n", verified.Issuer)
	w.printf("  subject:  %s\n", verified.Subject)
	w.printf("  audience: %s\n", strings.Join(verified.Audience, ", "))
	w.printf("  expires:  %s (in %s)\n", verified.ExpiresAt.UTC().Format(time.RFC3339), roundDuration(time.Until(verified.ExpiresAt)))
	w.printf("  scopes:   %s\n", verified.Scopes.String())
	if route == nil && cfg.rules.Len() > 0 {
		w.printf("  (route rules not checked: give -path, and -method, to check a route's scopes)\n")
	}
	return nil
}

// cleanToken takes a token as people paste it: with spaces, a "Bearer "
// prefix, or a whole "Authorization: Bearer ..." header.
func cleanToken(s string) string {
	s = strings.TrimSpace(s)
	if k, v, ok := strings.Cut(s, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Authorization") {
		s = strings.TrimSpace(v)
	}
	if scheme, rest, ok := strings.Cut(s, " "); ok && strings.EqualFold(scheme, "Bearer") {
		s = strings.TrimSpace(rest)
	}
	return s
}

// reportWriter prints inspect's report, ignoring write errors (stdout gone).
type reportWriter struct{ w io.Writer }

func (r *reportWriter) printf(format string, args ...any) { fmt.Fprintf(r.w, format, args...) }

// printDecoded prints the header and claims of token as indented JSON, and
// the time claims in words. Nothing is trusted: this is what the token says.
// It returns the claims, and whether header and claims could be decoded.
func printDecoded(w *reportWriter, token string) (map[string]any, bool) {
	parts := strings.Split(token, ".")
	switch len(parts) {
	case 3:
	case 5:
		w.printf("This has five segments, as an encrypted token (JWE) does: tokenward does not decrypt JWEs, so its claims cannot be read here. If its header has \"enc\" and a key-management \"alg\", tokenward treats it as opaque (refused with TOKENWARD_OPAQUE_TOKENS=reject, asked about otherwise); if not, it is refused as malformed.\n")
		return nil, false
	case 1:
		w.printf("This is not a JWT (no \".\"): an opaque token, which only its issuer can check.\n")
		return nil, false
	default:
		w.printf("This is not a JWT: %d segments, where a signed JWT has 3.\n", len(parts))
		return nil, false
	}
	ok := true
	header, note := decodeSegment(parts[0])
	w.printf("Header (decoded, not verified):\n")
	ok = printJSON(w, header, note) && ok
	payload, note := decodeSegment(parts[1])
	w.printf("Claims (decoded, not verified):\n")
	ok = printJSON(w, payload, note) && ok
	sig, _ := decodeSegment(parts[2])
	w.printf("Signature: %d bytes (not shown)\n", len(sig))

	var claims map[string]any
	if json.Unmarshal(payload, &claims) != nil {
		return nil, false
	}
	now := time.Now()
	var times []string
	for _, name := range []string{"iat", "nbf", "exp"} {
		f, isNum := claims[name].(float64)
		if !isNum || math.IsNaN(f) || math.Abs(f) > 1e11 {
			continue
		}
		t := time.Unix(int64(f), 0)
		var rel string
		if d := t.Sub(now); d >= 0 {
			rel = "in " + roundDuration(d)
		} else {
			rel = roundDuration(-d) + " ago"
		}
		times = append(times, fmt.Sprintf("  %s  %s  (%s)\n", name, t.UTC().Format(time.RFC3339), rel))
	}
	if len(times) > 0 {
		w.printf("Times:\n%s", strings.Join(times, ""))
	}
	return claims, ok
}

// decodeSegment decodes base64url leniently, so that a token the validator
// refuses for its encoding can still be read; the note says so.
func decodeSegment(seg string) ([]byte, string) {
	if b, err := base64.RawURLEncoding.Strict().DecodeString(seg); err == nil {
		return b, ""
	}
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		if b, err := enc.DecodeString(seg); err == nil {
			return b, "not strict base64url (padding, or the standard alphabet): the proxy refuses this"
		}
	}
	return nil, "not base64url"
}

// printJSON prints a decoded segment indented, or says why it cannot.
func printJSON(w *reportWriter, b []byte, note string) bool {
	if b == nil {
		w.printf("  (%s)\n", note)
		return false
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		w.printf("  (not JSON: %d bytes)\n", len(b))
		return false
	}
	w.printf("%s\n", buf.String())
	if note != "" {
		w.printf("  (%s)\n", note)
	}
	return true
}

// roundDuration renders a duration for reading.
func roundDuration(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Minute:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}

func keySetSummary(s jwks.Status) string {
	switch {
	case s.Loaded:
		return fmt.Sprintf("%d loaded from %s", s.Keys, s.URL)
	case s.LastError != "":
		return "none loaded: " + strings.Join(strings.Fields(s.LastError), " ")
	}
	return "none loaded"
}

// lazyKeys is the key set of one issuer, created on the first lookup, so that
// inspect contacts no issuer the token does not name.
type lazyKeys struct {
	issuer string
	opts   jwks.RegistryOptions

	once sync.Once
	reg  *jwks.Registry // set by once
	err  error          // set by once
}

func (l *lazyKeys) Key(ctx context.Context, kid string) (jwks.Key, error) {
	l.once.Do(func() { l.reg, l.err = jwks.NewRegistry([]string{l.issuer}, l.opts) })
	if l.err != nil {
		return jwks.Key{}, fmt.Errorf("%w: %v", jwks.ErrUnavailable, l.err)
	}
	set, _ := l.reg.Set(l.issuer)
	return set.Key(ctx, kid)
}

// status reports the key set, if it was created.
func (l *lazyKeys) status() (jwks.Status, bool) {
	l.once.Do(func() {}) // no creation from here; wait for one under way
	if l.reg == nil {
		return jwks.Status{}, false
	}
	st := l.reg.Status()
	return st[0].Status, true
}

func (l *lazyKeys) close() {
	l.once.Do(func() {})
	if l.reg != nil {
		l.reg.Close()
	}
}
