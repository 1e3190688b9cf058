package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/scopes"
)

// ClaimHeader sends one claim to the upstream as a header.
type ClaimHeader struct {
	// Claim is a top-level claim name ("sub", "https://example.com/roles"),
	// or a dotted path into nested objects ("org.id") when no top-level
	// claim has that exact name.
	Claim string
	// Header is the request header the value is sent in.
	Header string
}

// ParseClaimHeaders parses "claim=Header" pairs, comma-separated:
// "sub=X-Auth-Subject,https://example.com/roles=X-Auth-Roles". The last "="
// separates claim from header, since claim names may be URLs.
func ParseClaimHeaders(s string) ([]ClaimHeader, error) {
	var (
		out  []ClaimHeader
		errs []error
		seen = map[string]bool{}
	)
	for pair := range strings.SplitSeq(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		i := strings.LastIndexByte(pair, '=')
		if i <= 0 || i == len(pair)-1 {
			errs = append(errs, fmt.Errorf("%q is not claim=Header", pair))
			continue
		}
		ch := ClaimHeader{Claim: strings.TrimSpace(pair[:i]), Header: strings.TrimSpace(pair[i+1:])}
		if err := checkHeaderName(ch.Header); err != nil {
			errs = append(errs, err)
			continue
		}
		key := http.CanonicalHeaderKey(ch.Header)
		if seen[key] {
			errs = append(errs, fmt.Errorf("header %q given twice", ch.Header))
			continue
		}
		seen[key] = true
		ch.Header = key
		out = append(out, ch)
	}
	return out, errors.Join(errs...)
}

// checkHeaderName refuses names that are not HTTP tokens, and the headers
// whose meaning the proxy itself depends on.
func checkHeaderName(name string) error {
	if name == "" {
		return errors.New("empty header name")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return fmt.Errorf("header name %q has a character other than letters, digits, - and _", name)
		}
	}
	switch http.CanonicalHeaderKey(name) {
	case "Authorization", "Host", "Cookie", "Connection", "Content-Length", "Transfer-Encoding",
		"Upgrade", "Te", "Trailer", "Proxy-Authorization", "Forwarded", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Method", "X-Forwarded-Uri",
		"X-Original-Method", "X-Original-Uri":
		return fmt.Errorf("header %q cannot carry identity", name)
	}
	return nil
}

// maxHeaderValue bounds one identity header: claims can hold user-supplied
// profile data.
const maxHeaderValue = 4096

// identity computes the identity headers of verified claims.
type identity struct {
	claims       []ClaimHeader
	scopesHeader string // "" for none
	needsMap     bool   // some claim is not served from the typed fields
	// names holds every identity header in the form headerAlias gives.
	names map[string]bool
	log   *slog.Logger
	// all holds every identity header: the claim headers, then the scopes
	// header; allNames lists them comma-separated.
	all      []string
	allNames string
	// omitLogged is set once a scope left out of the scopes header has
	// been logged: logged once per handler, so a busy route cannot flood
	// the log.
	omitLogged atomic.Bool
}

func newIdentity(claims []ClaimHeader, scopesHeader string, log *slog.Logger) *identity {
	id := &identity{claims: claims, scopesHeader: scopesHeader, names: map[string]bool{}, log: log}
	for _, c := range claims {
		if _, ok := typedClaim(nil, c.Claim); !ok {
			id.needsMap = true
		}
		id.names[headerAlias(c.Header)] = true
		id.all = append(id.all, c.Header)
	}
	if scopesHeader != "" {
		id.names[headerAlias(scopesHeader)] = true
		id.all = append(id.all, scopesHeader)
	}
	id.allNames = strings.Join(id.all, ", ")
	return id
}

// unset lists, comma-separated, the identity headers that h lacks: for a
// gateway to remove from the request it forwards, since a gateway that
// copies only the headers present in an answer would otherwise pass a
// client's own copy on. "" when h has them all.
func (id *identity) unset(h http.Header) string {
	missing := 0
	for _, name := range id.all {
		if _, ok := h[name]; !ok {
			missing++
		}
	}
	switch missing {
	case 0:
		return ""
	case len(id.all):
		return id.allNames // a public route: no allocation
	}
	var b strings.Builder
	for _, name := range id.all {
		if _, ok := h[name]; !ok {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(name)
		}
	}
	return b.String()
}

// headerAlias is the name a CGI-style gateway (WSGI, Rack, PHP, many
// frameworks) reads a header by: "_" and "-" are the same to them, so a
// client-sent X_Auth_Subject arrives as X-Auth-Subject.
func headerAlias(name string) string {
	if strings.IndexByte(name, '_') < 0 {
		return http.CanonicalHeaderKey(name)
	}
	return http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))
}

// strip removes every configured identity header from a client's request,
// also when spelt with "_" for "-". Done on every route, public ones
// included, so a client can never send its own identity to the upstream.
func (id *identity) strip(h http.Header) {
	for k := range h {
		if id.names[headerAlias(k)] {
			delete(h, k)
		}
	}
}

// restore copies the identity headers of src into dst: httputil drops the
// headers a client names in Connection after we have set them.
func (id *identity) restore(dst, src http.Header) {
	for _, c := range id.claims {
		if v, ok := src[c.Header]; ok {
			dst[c.Header] = v
		}
	}
	if v, ok := src[id.scopesHeader]; ok && id.scopesHeader != "" {
		dst[id.scopesHeader] = v
	}
}

// set writes the identity headers of c into h. A claim that is absent
// leaves its header absent.
func (id *identity) set(h http.Header, c *middleware.Claims) {
	var all map[string]any
	if id.needsMap {
		// Decoded only when a configured claim is not a typed field.
		_ = c.Decode(&all)
	}
	for _, ch := range id.claims {
		v, ok := typedClaim(c, ch.Claim)
		if !ok {
			v, ok = lookupClaim(all, ch.Claim)
		}
		if ok && v != "" {
			h[ch.Header] = []string{sanitize(v)}
		}
	}
	if id.scopesHeader != "" && c.Scopes.Len() > 0 {
		if v := id.scopesValue(c.Scopes); v != "" {
			h[id.scopesHeader] = []string{v}
		}
	}
}

// scopesValue is the scopes header's value: the granted scopes that are RFC
// 6749 scope-tokens without a comma, separated by single spaces, as many
// whole scopes as fit in maxHeaderValue. A scope with a space, comma, quote,
// backslash, control or non-ASCII byte (possible in a "permissions" array:
// "profile:edit admin") is left out, since an upstream splitting the header
// on spaces or commas would read scopes that were never granted; so is a
// scope cut by the length bound. The first such scope is logged.
func (id *identity) scopesValue(granted scopes.Set) string {
	all := granted.String()
	// The common case allocates nothing more: as many separators as the
	// set needs, and nothing but scope-token bytes between them.
	if len(all) <= maxHeaderValue && strings.Count(all, " ") == granted.Len()-1 && headerScopes(all) {
		return all
	}
	var b strings.Builder
	for _, s := range granted.List() {
		why := ""
		switch {
		case !scopes.ValidToken(s) || strings.IndexByte(s, ',') >= 0:
			why = "not an RFC 6749 scope-token without a comma"
		case b.Len()+1+len(s) > maxHeaderValue:
			why = fmt.Sprintf("the header would exceed %d bytes", maxHeaderValue)
		}
		if why != "" {
			if id.omitLogged.CompareAndSwap(false, true) {
				if len(s) > 64 {
					s = s[:64] + "…"
				}
				id.log.Warn("scope left out of the scopes header; further ones are not logged",
					"header", id.scopesHeader, "scope", s, "why", why)
			}
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	return b.String()
}

// headerScopes reports whether s holds nothing but scope-token bytes other
// than ',' and the spaces between them.
func headerScopes(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != ' ' && (c == ',' || c < 0x21 || c == '"' || c == '\\' || c > 0x7e) {
			return false
		}
	}
	return true
}

// tokenTypeClaim names [Config].TokenTypeHeader's value among the claim
// headers: not a claim name any configuration spells (it starts with a NUL,
// which no environment variable can hold).
const tokenTypeClaim = "\x00token_type"

// typedClaim serves the common claims without decoding the JSON again. With
// c nil it only reports whether the claim is one of them.
func typedClaim(c *middleware.Claims, name string) (string, bool) {
	switch name {
	case "sub", "iss", "jti", "client_id", tokenTypeClaim:
	default:
		return "", false
	}
	if c == nil {
		return "", true
	}
	switch name {
	case "sub":
		return c.Subject, true
	case "iss":
		return c.Issuer, true
	case "jti":
		return c.ID, true
	case tokenTypeClaim:
		return c.TokenType, true
	default:
		return c.ClientID, true
	}
}

// lookupClaim finds a claim by exact top-level name, else by dotted path.
func lookupClaim(all map[string]any, name string) (string, bool) {
	if v, ok := all[name]; ok {
		return render(v), true
	}
	var cur any = all
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = m[part]; !ok {
			return "", false
		}
	}
	return render(cur), true
}

// render turns a claim value into a header value: arrays joined with ",",
// objects as JSON.
func render(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			parts = append(parts, render(e))
		}
		return strings.Join(parts, ",")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// sanitize keeps a header value a single line of bounded length.
func sanitize(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 && s[i] != '\t' || s[i] == 0x7f {
			clean = false
			break
		}
	}
	if !clean {
		s = strings.Map(func(r rune) rune {
			if r < 0x20 && r != '\t' || r == 0x7f {
				return ' '
			}
			return r
		}, s)
	}
	if len(s) > maxHeaderValue {
		s = s[:maxHeaderValue]
	}
	return textproto.TrimString(s)
}

// configured reports whether name is one of the identity headers exactly as
// configured (canonical form).
func (id *identity) configured(name string) bool {
	for _, n := range id.all {
		if n == name {
			return true
		}
	}
	return false
}
