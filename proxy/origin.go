package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// parseOrigins checks the allowed origins: each scheme://host[:port], http
// or https, nothing else. Nil in, nil out (Origin not checked).
func parseOrigins(list []string) (map[string]bool, error) {
	if list == nil {
		return nil, nil
	}
	var errs []error
	out := make(map[string]bool, len(list))
	for _, o := range list {
		if err := CheckOrigin(o); err != nil {
			errs = append(errs, err)
			continue
		}
		out[strings.ToLower(o)] = true
	}
	if len(out) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("proxy: allowed origins set but empty: name at least one, or leave it nil not to check Origin"))
	}
	return out, errors.Join(errs...)
}

// CheckOrigin reports whether o can be one of [Config].AllowedOrigins: an
// origin as browsers send it, scheme://host[:port], http or https, with no
// path (not even "/"), query, fragment or user info.
func CheckOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(o, "# ") {
		return fmt.Errorf("proxy: allowed origin %q is not scheme://host[:port] (http or https, no path)", o)
	}
	return nil
}

// originAllowed refuses, with 403, a request whose Origin header (in h, the
// client's headers) names an origin not allowed, or that has several: a page
// of another site reaching us through DNS rebinding. It reports whether the
// request may go on.
func (g *guard) originAllowed(w http.ResponseWriter, r *http.Request, h http.Header) bool {
	if g.origins == nil {
		return true
	}
	vs, ok := h["Origin"]
	if !ok {
		return true // not a browser's cross-origin request
	}
	if len(vs) == 1 && g.origins[strings.ToLower(vs[0])] {
		return true
	}
	g.log.Info("request refused", "reason", "origin", "status", http.StatusForbidden, "client", r.RemoteAddr)
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusForbidden)
	w.Write([]byte(`{"error":"forbidden_origin","error_description":"origin not allowed"}` + "\n"))
	return false
}
