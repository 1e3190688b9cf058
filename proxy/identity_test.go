package proxy_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/internal/syncbuf"
	"github.com/tokenward/tokenward/proxy"
)

func TestParseClaimHeaders(t *testing.T) {
	tests := []struct {
		in      string
		want    []proxy.ClaimHeader
		wantErr []string
	}{
		{in: "", want: nil},
		{in: "sub=X-Auth-Subject", want: []proxy.ClaimHeader{{"sub", "X-Auth-Subject"}}},
		{in: " sub = x-auth-subject , ,", want: []proxy.ClaimHeader{{"sub", "X-Auth-Subject"}}},
		{
			// The last "=" splits: claim names may be URLs with "=" in them.
			in: "sub=X-Auth-Subject,https://example.com/roles=X-Auth-Roles,https://example.com/?a=b=X-Odd",
			want: []proxy.ClaimHeader{
				{"sub", "X-Auth-Subject"},
				{"https://example.com/roles", "X-Auth-Roles"},
				{"https://example.com/?a=b", "X-Odd"},
			},
		},
		{in: "org.id=X-Org", want: []proxy.ClaimHeader{{"org.id", "X-Org"}}},
		{in: "sub=X-A,email=X-A", wantErr: []string{`header "X-A" given twice`}},
		{in: "sub=X-A,email=x-a", wantErr: []string{`given twice`}},
		{in: "sub", wantErr: []string{`"sub" is not claim=Header`}},
		{in: "=X-A", wantErr: []string{`"=X-A" is not claim=Header`}},
		{in: "sub=", wantErr: []string{`"sub=" is not claim=Header`}},
		{in: "sub=X A", wantErr: []string{"character other than"}},
		{in: "sub=X:A", wantErr: []string{"character other than"}},
		{in: "sub=Authorization", wantErr: []string{"cannot carry identity"}},
		{in: "sub=host", wantErr: []string{"cannot carry identity"}},
		{in: "sub=Cookie", wantErr: []string{"cannot carry identity"}},
		{in: "sub=X-Forwarded-For", wantErr: []string{"cannot carry identity"}},
		{in: "sub=x-original-uri", wantErr: []string{"cannot carry identity"}},
		{in: "sub=Transfer-Encoding", wantErr: []string{"cannot carry identity"}},
		{
			in:      "sub=Authorization,email,x=Host,a=X-Ok,b=X-Ok",
			wantErr: []string{"Authorization", `"email"`, "Host", "given twice"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := proxy.ParseClaimHeaders(tc.in)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("ParseClaimHeaders = %v, want an error", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseClaimHeaders = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestScopesHeaderUnambiguous: the scopes header carries only scopes that an
// upstream splitting it on spaces or commas reads back as granted. A
// "permissions" member with a space ("profile:edit admin") is no admin
// scope for tokenward, and must not become one for the upstream; a scope
// cut by the header's length bound must not become a shorter one. What is
// left out is logged once, without the token.
func TestScopesHeaderUnambiguous(t *testing.T) {
	iss := newIssuer(t)
	up := newUpstream(t)
	var logs syncbuf.Buffer
	cfg := defaultConfig(t, iss)
	cfg.ScopesHeader = "X-Auth-Scopes"
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	srv := startProxy(t, up.URL, cfg, proxy.UpstreamOptions{})

	// "api" and 500 scopes of 10 bytes with their separator: 5,003 bytes,
	// and the 4,096-byte bound falls inside a scope.
	var many []any
	for i := range 500 {
		many = append(many, fmt.Sprintf("scope:%03d", i))
	}
	hostile := mint(t, iss, map[string]any{"scope": "api", "permissions": []any{
		"profile:edit admin", "a,admin", "quote\"admin", "tab\tadmin", "read:x", "ünicode"}})
	tests := []struct {
		name, token string
		want        string // "" for no header
	}{
		{"plain scopes", withScope(t, iss, "api read:x write:y"), "api read:x write:y"},
		{"a space, comma, quote, tab or non-ASCII in a scope", hostile, "api read:x"},
		{"only unsafe scopes besides the global one", mint(t, iss, map[string]any{"scope": "api", "permissions": []any{"x y"}}), "api"},
		{"more scopes than fit", mint(t, iss, map[string]any{"scope": "api", "permissions": many}), "cut"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, srv, request{path: "/x", token: tc.token})
			if resp.StatusCode != 200 {
				t.Fatalf("status %d (%s)", resp.StatusCode, body)
			}
			got := up.last(t).header[http.CanonicalHeaderKey("X-Auth-Scopes")]
			if len(got) != 1 {
				t.Fatalf("X-Auth-Scopes %q, want one value", got)
			}
			if tc.want != "cut" {
				if got[0] != tc.want {
					t.Errorf("X-Auth-Scopes %q, want %q", got[0], tc.want)
				}
				return
			}
			if len(got[0]) > 4096 {
				t.Errorf("X-Auth-Scopes is %d bytes, more than 4096", len(got[0]))
			}
			parts := strings.Split(got[0], " ")
			for _, p := range parts {
				if p != "api" && !slices.Contains(many, any(p)) {
					t.Errorf("X-Auth-Scopes has %q, which was not granted", p)
				}
			}
			if len(parts) != 410 {
				t.Errorf("X-Auth-Scopes has %d scopes with api; the bound should leave room for 409", len(parts))
			}
		})
	}
	out := logs.String()
	if n := strings.Count(out, "scope left out of the scopes header"); n != 1 {
		t.Errorf("%d log lines about scopes left out, want 1:\n%s", n, out)
	}
	if strings.Contains(out, hostile[:20]) || strings.Contains(out, "eyJ") {
		t.Errorf("the log has a token:\n%s", out)
	}
}
