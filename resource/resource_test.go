package resource_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/resource"
)

func newValidator(t *testing.T, issuers ...string) *middleware.Validator {
	t.Helper()
	iss := jwkstest.NewIssuer()
	t.Cleanup(iss.Close)
	body, err := jwkstest.JWKS(iss.Keys()...)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := jwks.NewStatic(body)
	if err != nil {
		t.Fatal(err)
	}
	var trusted []middleware.Issuer
	for _, u := range issuers {
		trusted = append(trusted, middleware.Issuer{URL: u, Keys: keys})
	}
	v, err := middleware.NewValidator(trusted, []string{"https://api.example.com"}, middleware.ValidatorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCheckURI(t *testing.T) {
	for _, tt := range []struct {
		uri string
		ok  bool
	}{
		{"https://api.example.com", true},
		{"https://api.example.com/", true},
		{"https://api.example.com/mcp", true},
		{"https://api.example.com:8443/mcp/", true},
		{"http://127.0.0.1:8080/mcp", true},
		{"http://localhost:8080", true},
		{"http://[::1]:8080", true},
		{"http://api.example.com/mcp", false}, // http only on loopback
		{"https://api.example.com/mcp#frag", false},
		{"https://api.example.com/mcp#", false},
		{"https://api.example.com/mcp?x=1", false},
		{"https://api.example.com/mcp?", false},
		{"https://user:secret@api.example.com/", false},
		{"/mcp", false},
		{"api.example.com/mcp", false},
		{"ftp://api.example.com/", false},
		{"urn:example:mcp", false},
		{`https://api.example.com/a"b`, false},
		{`https://api.example.com/a\b`, false},
		{"https://api.example.com/a b", false},
		{"", false},
	} {
		err := resource.CheckURI(tt.uri)
		if (err == nil) != tt.ok {
			t.Errorf("CheckURI(%q) = %v, want ok %v", tt.uri, err, tt.ok)
		}
		var ue *resource.URIError
		if err != nil && !errors.As(err, &ue) {
			t.Errorf("CheckURI(%q) = %T, want *resource.URIError", tt.uri, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("CheckURI(%q) echoes the user info: %v", tt.uri, err)
		}
	}
}

func TestMetadataURL(t *testing.T) {
	for uri, want := range map[string]string{
		"https://api.example.com":           "https://api.example.com/.well-known/oauth-protected-resource",
		"https://api.example.com/":          "https://api.example.com/.well-known/oauth-protected-resource",
		"https://api.example.com/mcp":       "https://api.example.com/.well-known/oauth-protected-resource/mcp",
		"https://api.example.com/mcp/":      "https://api.example.com/.well-known/oauth-protected-resource/mcp",
		"https://api.example.com:8443/a/b":  "https://api.example.com:8443/.well-known/oauth-protected-resource/a/b",
		"http://127.0.0.1:9/tools/mcp%20x/": "http://127.0.0.1:9/.well-known/oauth-protected-resource/tools/mcp%20x",
	} {
		if got := resource.MetadataURL(uri); got != want {
			t.Errorf("MetadataURL(%q) = %q, want %q", uri, got, want)
		}
	}
}

// TestNewReportsEveryProblem: a bad URI, an authorization server that is
// not a trusted issuer, a bad scope and a bad documentation URL, all at
// once.
func TestNewReportsEveryProblem(t *testing.T) {
	v := newValidator(t, "https://idp.example.com/")
	_, err := resource.New("http://api.example.com/mcp", v, resource.Options{
		AuthorizationServers: []string{"https://evil.example.com/"},
		Scopes:               []string{"bad scope\""},
		Documentation:        "javascript:alert(1)",
	})
	if err == nil {
		t.Fatal("New accepted a bad configuration")
	}
	for _, want := range []string{"must use https", "evil.example.com", "scope", "javascript"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := resource.New("https://api.example.com", nil, resource.Options{}); err == nil {
		t.Error("New accepted a nil validator")
	}
}

func TestHandler(t *testing.T) {
	v := newValidator(t, "https://idp.example.com/", "https://login.example.com/")
	h, err := resource.New("https://api.example.com/mcp", v, resource.Options{
		Scopes: []string{"tools:read", "tools:call"}, Name: "Contacts MCP",
		Documentation: "https://docs.example.com/mcp?lang=en"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" ||
			!strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
			t.Errorf("GET %s: %d %q %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("GET %s: %q: %v", path, body, err)
		}
		want := map[string]any{
			"resource":                 "https://api.example.com/mcp",
			"authorization_servers":    []any{"https://idp.example.com/", "https://login.example.com/"},
			"scopes_supported":         []any{"tools:read", "tools:call"},
			"bearer_methods_supported": []any{"header"},
			"resource_name":            "Contacts MCP",
			"resource_documentation":   "https://docs.example.com/mcp?lang=en",
		}
		if len(m) != len(want) {
			t.Errorf("GET %s: members %v, want %v", path, m, want)
		}
		for k, w := range want {
			if g, _ := json.Marshal(m[k]); string(g) != mustJSON(t, w) {
				t.Errorf("GET %s: %s = %s, want %s", path, k, g, mustJSON(t, w))
			}
		}
	}

	// Only the configured subset of issuers, when given.
	sub, err := resource.New("https://api.example.com/mcp", v, resource.Options{AuthorizationServers: []string{"https://login.example.com/"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := sub.Metadata().AuthorizationServers; !slices.Equal(got, []string{"https://login.example.com/"}) {
		t.Errorf("AuthorizationServers = %v", got)
	}

	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{"HEAD", "/.well-known/oauth-protected-resource/mcp", 200},
		{"POST", "/.well-known/oauth-protected-resource/mcp", 405},
		{"GET", "/.well-known/oauth-protected-resource/other", 404},
		{"GET", "/.well-known/oauth-protected-resource/mcp/", 404},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDPoPMembers: the DPoP members of RFC 9728 §2 are listed as given, left
// out when DPoP is not accepted, and "required" without an algorithm is a
// configuration error.
func TestDPoPMembers(t *testing.T) {
	v := newValidator(t, "https://idp.example.com/")
	for _, tc := range []struct {
		opts resource.Options
		want []string // substrings of the document
		not  []string
	}{
		{resource.Options{DPoPAlgorithms: []string{"ES256", "EdDSA"}, DPoPRequired: true},
			[]string{`"dpop_signing_alg_values_supported":["ES256","EdDSA"]`, `"dpop_bound_access_tokens_required":true`}, nil},
		{resource.Options{DPoPAlgorithms: []string{"ES256"}},
			[]string{`"dpop_signing_alg_values_supported":["ES256"]`}, []string{"dpop_bound_access_tokens_required"}},
		{resource.Options{}, nil, []string{"dpop_"}},
	} {
		h, err := resource.New("https://api.example.com", v, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", resource.WellKnownPath, nil))
		body := rec.Body.String()
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%+v: document %s lacks %s", tc.opts, body, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(body, n) {
				t.Errorf("%+v: document %s has %s", tc.opts, body, n)
			}
		}
	}
	if _, err := resource.New("https://api.example.com", v, resource.Options{DPoPRequired: true}); err == nil {
		t.Error("New accepted DPoP required with no algorithm")
	}
}
