package middleware_test

import (
	"testing"

	"github.com/tokenward/tokenward/middleware"
)

// TestResourceMetadataChecked: the resource_metadata URL sits in a
// quoted-string of every challenge; New and NewGuard refuse one a client
// could read differently (a quote, a backslash, a space, a relative URL).
func TestResourceMetadataChecked(t *testing.T) {
	v := staticFixture(t, newKey(t, "RS256"), middleware.ValidatorOptions{})
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"", true},
		{"https://api.example.com/.well-known/oauth-protected-resource/mcp", true},
		{"http://127.0.0.1:8080/.well-known/oauth-protected-resource", true},
		{`https://api.example.com/", error="x`, false},
		{`https://api.example.com/\`, false},
		{"https://api.example.com/a b", false},
		{"https://api.example.com/\r\nX: y", false},
		{"/.well-known/oauth-protected-resource", false},
		{"javascript:alert(1)", false},
		{"https://u:p@api.example.com/", false},
		{"https://api.example.com/#x", false},
	} {
		_, gerr := middleware.NewGuard(v, middleware.GuardOptions{ResourceMetadata: tt.url})
		_, merr := middleware.New(v, middleware.Options{ResourceMetadata: tt.url})
		cerr := middleware.CheckResourceMetadata(tt.url)
		for name, err := range map[string]error{"NewGuard": gerr, "New": merr, "CheckResourceMetadata": cerr} {
			if (err == nil) != tt.ok {
				t.Errorf("%s(%q) = %v, want ok %v", name, tt.url, err, tt.ok)
			}
		}
	}
}
