package resource

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/scopes"
)

// WellKnownPath is where the metadata of a resource without a path is served
// (RFC 9728 §3); a resource with a path has it inserted after this
// ([MetadataURL]).
const WellKnownPath = "/.well-known/oauth-protected-resource"

// Options completes the document. The zero value lists every trusted issuer
// and no scopes, name or documentation.
type Options struct {
	// AuthorizationServers are the issuers to list (authorization_servers),
	// each a trusted issuer of the validator. Nil means all of them.
	AuthorizationServers []string
	// Scopes are listed as scopes_supported. Nil means none listed.
	Scopes []string
	// Name is resource_name, for display to a user. "" means none.
	Name string
	// Documentation is resource_documentation, the URL of a page for
	// developers; https (http on loopback). "" means none.
	Documentation string
	// DPoPAlgorithms are the DPoP proof algorithms accepted
	// (dpop_signing_alg_values_supported, RFC 9728 §2). Nil means the
	// member is left out: DPoP is not accepted.
	DPoPAlgorithms []string
	// DPoPRequired says every token must be DPoP-bound
	// (dpop_bound_access_tokens_required: true). False leaves the member
	// out, which RFC 9728 reads as false.
	DPoPRequired bool
}

// Metadata is the document (RFC 9728 §2), with the members tokenward sets.
type Metadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
	ResourceDocumentation  string   `json:"resource_documentation,omitempty"`
	// DPoP (RFC 9449) as RFC 9728 §2 names it.
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
	DPoPBoundAccessTokensRequired bool     `json:"dpop_bound_access_tokens_required,omitempty"`
}

// Handler serves a resource's metadata document. It is safe for concurrent
// use.
type Handler struct {
	meta        Metadata
	body        []byte
	metadataURL string
	paths       []string // the well-known paths it answers on
}

// URIError is the error of a URI that [CheckURI] refuses. Problem names the
// URI and what is wrong, and no package, for a caller that names the setting.
type URIError struct {
	URI     string
	Problem string
}

func (e *URIError) Error() string { return "resource: " + e.Problem }

// CheckURI reports whether raw can be a resource's canonical URI (RFC 8707
// §2, RFC 9728 §1.2): an absolute https URL (http on a loopback host, for
// tests and demos) with a host, no user info, query or fragment, and in
// printable ASCII without '"' or '\' (it is quoted in challenges). It returns
// nil or a *URIError.
func CheckURI(raw string) error { return check(raw, false) }

// CheckPage reports whether raw can be the URL of a documentation page: as
// [CheckURI], except that a query is allowed. It returns nil or a *URIError.
func CheckPage(raw string) error { return check(raw, true) }

// check is CheckURI; page allows a query (a documentation page's URL).
func check(raw string, page bool) error {
	problem := func(p string) error {
		shown := raw
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			u.User = url.User("REDACTED")
			shown = u.String()
		}
		return &URIError{URI: shown, Problem: fmt.Sprintf("%q %s", shown, p)}
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return problem("must be printable ASCII without spaces, '\"' or '\\'")
		}
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return problem("is not a URL")
	case u.Host == "" || u.Opaque != "":
		return problem("is not an absolute URL with a host")
	case u.User != nil:
		return problem("must not have user info")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return problem("must not have a fragment (RFC 8707)")
	case !page && (u.RawQuery != "" || u.ForceQuery):
		return problem("must not have a query")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && loopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return problem("must use https (http is allowed only for loopback hosts)")
	}
	return problem("must be an https URL")
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// MetadataURL returns where the metadata of the resource uri is published
// (RFC 9728 §3.1): the well-known path inserted between the host and the
// path, whose terminating "/" is removed. For https://api.example.com/mcp
// it is https://api.example.com/.well-known/oauth-protected-resource/mcp.
// uri should have passed [CheckURI].
func MetadataURL(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host + wellKnown(u)
}

func wellKnown(u *url.URL) string {
	return WellKnownPath + strings.TrimSuffix(u.EscapedPath(), "/")
}

// New returns the handler of the metadata of the resource uri, guarded by
// v. Every problem is reported at once.
func New(uri string, v *middleware.Validator, opts Options) (*Handler, error) {
	var errs []error
	if err := CheckURI(uri); err != nil {
		errs = append(errs, err)
	}
	if v == nil {
		errs = append(errs, errors.New("resource: nil validator"))
		return nil, errors.Join(errs...)
	}
	trusted := v.Issuers()
	servers := opts.AuthorizationServers
	if servers == nil {
		servers = trusted
	}
	if len(servers) == 0 {
		errs = append(errs, errors.New("resource: no authorization servers"))
	}
	for _, s := range servers {
		if !slices.Contains(trusted, s) {
			errs = append(errs, fmt.Errorf("resource: authorization server %q is not a trusted issuer", s))
		}
	}
	if err := scopes.All(opts.Scopes...).Validate(); err != nil {
		errs = append(errs, err)
	}
	if opts.Documentation != "" {
		if err := CheckPage(opts.Documentation); err != nil {
			errs = append(errs, err)
		}
	}
	if opts.DPoPRequired && len(opts.DPoPAlgorithms) == 0 {
		errs = append(errs, errors.New("resource: DPoP-bound tokens required, but no DPoP algorithm listed"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	u, _ := url.Parse(uri)
	h := &Handler{
		meta: Metadata{
			Resource:                      uri,
			AuthorizationServers:          slices.Clone(servers),
			ScopesSupported:               slices.Clone(opts.Scopes),
			BearerMethodsSupported:        []string{"header"},
			ResourceName:                  opts.Name,
			ResourceDocumentation:         opts.Documentation,
			DPoPSigningAlgValuesSupported: slices.Clone(opts.DPoPAlgorithms),
			DPoPBoundAccessTokensRequired: opts.DPoPRequired,
		},
		metadataURL: MetadataURL(uri),
		paths:       []string{wellKnown(u)},
	}
	if h.paths[0] != WellKnownPath {
		// Clients that do not follow resource_metadata try the root form
		// too (the MCP specification's fallback).
		h.paths = append(h.paths, WellKnownPath)
	}
	body, err := json.Marshal(h.meta)
	if err != nil {
		return nil, err
	}
	h.body = append(body, '\n')
	return h, nil
}

// Metadata returns the document's members.
func (h *Handler) Metadata() Metadata { return h.meta }

// MetadataURL is the document's URL, for the resource_metadata parameter
// of challenges.
func (h *Handler) MetadataURL() string { return h.metadataURL }

// Owns reports whether path is one the handler answers for: anything under
// the well-known prefix, which a front end never forwards to the upstream.
func (h *Handler) Owns(path string) bool {
	return path == WellKnownPath || strings.HasPrefix(path, WellKnownPath+"/")
}

// ServeHTTP answers GET and HEAD on the document's paths with the document
// (cacheable for an hour), other methods with 405, other paths under the
// well-known prefix with 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	if !slices.Contains(h.paths, r.URL.EscapedPath()) {
		hd.Set("Content-Type", "application/json")
		hd.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"not_found","error_description":"no metadata here"}` + "\n"))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		hd.Set("Content-Type", "application/json")
		hd.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusMethodNotAllowed)
		w.Write([]byte(`{"error":"method_not_allowed","error_description":"use GET"}` + "\n"))
		return
	}
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "public, max-age=3600")
	hd.Set("Content-Length", fmt.Sprint(len(h.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(h.body)
	}
}
