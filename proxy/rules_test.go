package proxy_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/proxy"
	"github.com/tokenward/tokenward/scopes"
)

func TestParseRules(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		global  scopes.Requirement
		wantLen int
		wantErr []string // every one must appear in the error; nil means no error
	}{
		{name: "valid", yaml: testRules, global: globalScopes, wantLen: 8},
		{name: "empty file", yaml: "", wantLen: 0},
		{name: "only a comment", yaml: "# no rules yet\n", wantLen: 0},
		{name: "empty list", yaml: "routes: []\n", wantLen: 0},
		{
			name:    "unknown field",
			yaml:    "routes:\n  - match: \"GET /a\"\n    scope: [\"read\"]\n",
			wantErr: []string{"scope"},
		},
		{
			name:    "unknown top-level field",
			yaml:    "rules:\n  - match: \"GET /a\"\n",
			wantErr: []string{"rules"},
		},
		{name: "not YAML", yaml: "routes: [", wantErr: []string{"proxy: rules"}},
		{name: "empty match", yaml: "routes:\n  - scopes: [\"a\"]\n", wantErr: []string{"rule 1", "match is empty"}},
		{name: "pattern without a path", yaml: "routes:\n  - match: \"GET\"\n", wantErr: []string{`rule 1 ("GET")`}},
		{name: "bad wildcard", yaml: "routes:\n  - match: \"/a/{b\"\n", wantErr: []string{`rule 1 ("/a/{b")`}},
		{name: "rest wildcard not last", yaml: "routes:\n  - match: \"/a/{b...}/c\"\n", wantErr: []string{`rule 1`}},
		{
			name:    "conflicting patterns",
			yaml:    "routes:\n  - match: \"GET /a/{x}\"\n  - match: \"GET /a/{y}\"\n",
			wantErr: []string{`rule 2 ("GET /a/{y}")`, "conflicts"},
		},
		{
			name:    "conflicting patterns, neither more specific",
			yaml:    "routes:\n  - match: \"/a/{x}/b\"\n  - match: \"/a/b/{y}\"\n",
			wantErr: []string{`rule 2`, "conflicts"},
		},
		{
			name:    "duplicate",
			yaml:    "routes:\n  - match: \"GET /a\"\n    scopes: [\"x\"]\n  - match: \"GET /a\"\n    scopes: [\"y\"]\n",
			wantErr: []string{`rule 2 ("GET /a")`, "given twice"},
		},
		{
			name:    "options",
			yaml:    "allow_method_override: [\"X-HTTP-Method-Override\", \"x_method_override\"]\nallow_encoded_slash: true\n" + testRules,
			global:  globalScopes,
			wantLen: 8,
		},
		{
			name:    "method-override header that is not a header name",
			yaml:    "allow_method_override: [\"X HTTP\", \"\"]\nroutes:\n  - match: \"GET /a\"\n",
			wantErr: []string{`"X HTTP" is not a header name`, `"" is not a header name`},
		},
		{
			name:    "unknown option",
			yaml:    "allow_semicolons: true\n",
			wantErr: []string{"allow_semicolons"},
		},
		{
			name:    "host not in lower case",
			yaml:    "routes:\n  - match: \"GET Admin.example.com/a\"\n  - match: \"admin.example.com./b\"\n",
			wantErr: []string{`rule 1 ("GET Admin.example.com/a")`, `rule 2 ("admin.example.com./b")`, "lower case"},
		},
		{
			name:    "public with scopes",
			yaml:    "routes:\n  - match: \"GET /a\"\n    public: true\n    scopes: [\"x\"]\n",
			wantErr: []string{"public route cannot require scopes"},
		},
		{
			name:    "public with any_scopes",
			yaml:    "routes:\n  - match: \"GET /a\"\n    public: true\n    any_scopes: [\"x\", \"y\"]\n",
			wantErr: []string{"public route cannot require scopes"},
		},
		{
			name:    "invalid scope",
			yaml:    "routes:\n  - match: \"GET /a\"\n    scopes: [\"read contacts\"]\n",
			wantErr: []string{`rule 1`, `"read contacts"`},
		},
		{
			name:    "invalid any scope",
			yaml:    "routes:\n  - match: \"GET /a\"\n    any_scopes: [\"ok\", \"bad\\\"quote\"]\n",
			wantErr: []string{`rule 1`, "double quote"},
		},
		{
			name:    "invalid global scope",
			yaml:    "",
			global:  scopes.All("bad scope"),
			wantErr: []string{`"bad scope"`},
		},
		{
			name: "all errors at once",
			yaml: `
routes:
  - match: "GET /ok"
    scopes: ["fine"]
  - match: ""
  - match: "GET /a/{x}"
  - match: "GET /a/{y}"
  - match: "GET /ok"
  - match: "GET /p"
    public: true
    scopes: ["x"]
  - match: "GET /s"
    scopes: ["a b"]
  - match: "/bad/{"
`,
			wantErr: []string{
				"rule 2: match is empty",
				`rule 4 ("GET /a/{y}")`,
				`rule 5 ("GET /ok"): pattern given twice`,
				`rule 6 ("GET /p"): a public route cannot require scopes`,
				`rule 7 ("GET /s")`,
				`rule 8 ("/bad/{")`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := proxy.ParseRules([]byte(tc.yaml), tc.global)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("ParseRules: %v", err)
				}
				if r.Len() != tc.wantLen {
					t.Errorf("Len = %d, want %d", r.Len(), tc.wantLen)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseRules succeeded; want an error containing %q", tc.wantErr)
			}
			if r != nil {
				t.Errorf("ParseRules returned rules with an error")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if !strings.HasPrefix(err.Error(), "proxy: ") && !strings.HasPrefix(err.Error(), "scopes: ") {
				t.Errorf("error %q lacks a package prefix", err)
			}
		})
	}
}

func TestLoadRules(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(testRules), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := proxy.LoadRules(path, globalScopes)
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 8 {
		t.Errorf("Len = %d, want 8", r.Len())
	}
	if _, err := proxy.LoadRules(filepath.Join(dir, "missing.yaml"), globalScopes); err == nil {
		t.Error("LoadRules of a missing file succeeded")
	}
}

// TestRulesMatch pins which requirement each request faces, through
// Proxy.Scopes and Rules.Match.
func TestRulesMatch(t *testing.T) {
	rules := mustRules(t, testRules)
	tests := []struct {
		method, target string
		wantPattern    string
		wantPublic     bool
		wantScopes     string
	}{
		{"GET", "/api/contacts/", "GET /api/contacts/", false, "api read:contacts"},
		{"HEAD", "/api/contacts/1", "GET /api/contacts/", false, "api read:contacts"},
		{"GET", "/api/contacts/7/notes", "GET /api/contacts/{id}/notes", false, "api read:notes"},
		{"POST", "/api/contacts/", "POST /api/contacts/", false, "api admin write:contacts"},
		{"DELETE", "/api/contacts/1", "DELETE /api/", false, "admin api"},
		{"PUT", "/api/contacts/1", "", false, "api"},
		{"GET", "/files/a/b/c.txt", "/files/{rest...}", false, "api read:files"},
		{"GET", "http://admin.example.com/public/x", "admin.example.com/", false, "admin api"},
		// Host names are matched as DNS names: the case and a trailing dot
		// do not move a request off its host's rule (here onto a public one).
		{"GET", "http://ADMIN.example.com/public/x", "admin.example.com/", false, "admin api"},
		{"GET", "http://admin.example.com./public/x", "admin.example.com/", false, "admin api"},
		{"GET", "http://Admin.Example.Com.:8443/public/x", "admin.example.com/", false, "admin api"},
		{"GET", "/public/x", "GET /public/", true, ""},
		{"POST", "/public/x", "", false, "api"},
		{"GET", "/status", "GET /status", true, ""},
		{"GET", "/status/x", "", false, "api"},
		{"GET", "/elsewhere", "", false, "api"},
		// ServeMux would redirect /api/contacts to /api/contacts/: the
		// subtree's rule applies, not the weaker fallback.
		{"GET", "/api/contacts", "GET /api/contacts/", false, "api read:contacts"},
		{"GET", "/files", "/files/{rest...}", false, "api read:files"},
		// ...but a public subtree does not make its redirect source public.
		{"GET", "/public", "", false, "api"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, nil)
			route := rules.Match(req)
			if route.Pattern != tc.wantPattern || route.Public != tc.wantPublic || route.Required.String() != tc.wantScopes {
				t.Errorf("Match = {%q public=%v %q}, want {%q public=%v %q}",
					route.Pattern, route.Public, route.Required, tc.wantPattern, tc.wantPublic, tc.wantScopes)
			}
		})
	}
}

// TestRulesMatchSpellings pins the stricter route of a path's spellings that
// upstreams route alike: with and without a trailing slash (Express, Spring
// 5, Flask's redirects) and in another case (Express, ASP.NET). A spelling
// counts only when a rule matches it as its own path, not as a subtree above
// it, and a spelling no rule matches adds nothing.
func TestRulesMatchSpellings(t *testing.T) {
	rules, err := proxy.ParseRules([]byte(`
routes:
  - match: "GET /static/"
    public: true
  - match: "GET /status"
    public: true
  - match: "/admin/"
    scopes: ["admin"]
  - match: "DELETE /api/users/{id}"
    scopes: ["admin"]
  - match: "GET /api/users/{id}"
    scopes: ["read:users"]
  - match: "GET /api/users/{id}/"
    scopes: ["read:users", "read:details"]
  - match: "GET /Reports/{name}"
    scopes: ["read:reports"]
  - match: "GET /reports/{name}"
    any_scopes: ["audit", "admin"]
  - match: "GET /docs/{$}"
    scopes: ["read:docs"]
`), scopes.All("api"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, target string
		wantPattern    string
		wantPublic     bool
		wantScopes     string
	}{
		{"DELETE", "/api/users/5", "DELETE /api/users/{id}", false, "admin api"},
		{"DELETE", "/api/users/5/", "DELETE /api/users/{id}", false, "admin api"},
		{"GET", "/api/users/5", "GET /api/users/{id}/", false, "api read:details read:users"},
		{"GET", "/api/users/5/", "GET /api/users/{id}/", false, "api read:details read:users"},
		// A subtree above the other spelling matches the path too, and
		// ServeMux chose the more specific rule.
		{"GET", "/api/users/5/x", "GET /api/users/{id}/", false, "api read:details read:users"},
		{"GET", "/admin/x/", "/admin/", false, "admin api"},
		// A public exact path stays public: its other spelling matches no
		// rule. A route that requires all another does stands for both.
		{"GET", "/status", "GET /status", true, ""},
		{"GET", "/status/", "", false, "api"},
		{"GET", "/static/x", "GET /static/", true, ""},
		{"GET", "/static/x/", "GET /static/", true, ""},
		{"GET", "/docs", "GET /docs/{$}", false, "api read:docs"},
		// Case.
		{"GET", "/ADMIN/users", "/admin/", false, "admin api"},
		{"GET", "/Admin", "/admin/", false, "admin api"},
		{"GET", "/STATIC/x", "", false, "api"},
		{"DELETE", "/API/Users/5/", "DELETE /api/users/{id}", false, "admin api"},
		{"GET", "/api/users/AbC", "GET /api/users/{id}/", false, "api read:details read:users"},
		// Patterns that differ only in case are one route to a
		// case-insensitive upstream: both rules apply to either spelling.
		{"GET", "/reports/q1", "GET /Reports/{name} + GET /reports/{name}", false, "api read:reports admin audit"},
		{"GET", "/REPORTS/q1", "GET /Reports/{name} + GET /reports/{name}", false, "api read:reports admin audit"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			route := rules.Match(httptest.NewRequest(tc.method, tc.target, nil))
			if route.Pattern != tc.wantPattern || route.Public != tc.wantPublic || route.Required.String() != tc.wantScopes {
				t.Errorf("Match = {%q public=%v %q}, want {%q public=%v %q}",
					route.Pattern, route.Public, route.Required, tc.wantPattern, tc.wantPublic, tc.wantScopes)
			}
		})
	}
}

// BenchmarkRulesMatch: the route of a canonical path costs one ServeMux
// lookup when no rule could match another spelling of it, and allocates
// nothing beyond what ServeMux does for the path itself.
func BenchmarkRulesMatch(b *testing.B) {
	rules := mustRules(b, testRules)
	for _, target := range []string{"/api/contacts/", "/api/contacts/7/notes", "/elsewhere", "/files/a/b"} {
		b.Run(target, func(b *testing.B) {
			req := httptest.NewRequest("GET", target, nil)
			b.ReportAllocs()
			for b.Loop() {
				rules.Match(req)
			}
		})
	}
}
