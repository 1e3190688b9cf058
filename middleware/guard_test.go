package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/scopes"
)

// TestGuardCheck pins the contract of the shared decision that the front
// ends rely on: where the token comes from, and what comes back with a
// refusal for scopes. (That the front ends answer alike is
// TestOneDecisionEveryFrontEnd in package proxy.)
func TestGuardCheck(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	g, err := middleware.NewGuard(v, middleware.GuardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Realm() != middleware.DefaultRealm {
		t.Errorf("Realm() = %q, want %q", g.Realm(), middleware.DefaultRealm)
	}
	reader := sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"scope": "read:contacts"}))
	expired := sign(t, key, nil, claimsAt(tenant, epoch.Add(-3*time.Hour), nil))
	need := scopes.All("read:contacts")
	for _, tt := range []struct {
		name       string
		header     http.Header
		token      string // Request.Token
		required   scopes.Requirement
		want       *middleware.Error // nil: allowed
		wantClaims bool
	}{
		{"bearer", http.Header{"Authorization": {"Bearer " + reader}}, "", need, nil, true},
		{"Token without Authorization", http.Header{}, reader, need, nil, true},
		// Another scheme is a request without a bearer token: Token is not a
		// second chance for it.
		{"Token behind another scheme", http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, reader, need, middleware.ErrNoToken, false},
		{"Token behind a bad bearer", http.Header{"Authorization": {"Bearer " + expired}}, reader, need, middleware.ErrExpired, false},
		{"Token behind a malformed header", http.Header{"Authorization": {"Bearer"}}, reader, need, middleware.ErrInvalidRequest, false},
		{"nothing", http.Header{}, "", need, middleware.ErrNoToken, false},
		// The claims come back with a refusal for scopes, for logs.
		{"insufficient scope", http.Header{"Authorization": {"Bearer " + reader}}, "", scopes.All("write:contacts"),
			middleware.ErrInsufficientScope, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			claims, e := g.Check(context.Background(), middleware.Request{Header: tt.header, Token: tt.token}, tt.required)
			switch {
			case tt.want == nil && e != nil:
				t.Fatalf("refused: %v", e)
			case tt.want == nil:
			case e == nil:
				t.Fatalf("allowed, want reason %s", tt.want.Reason)
			case !errors.Is(e, tt.want):
				t.Fatalf("error %v, want reason %s", e, tt.want.Reason)
			}
			if (claims != nil) != tt.wantClaims {
				t.Errorf("claims %v, want claims: %v", claims, tt.wantClaims)
			}
			if e != nil && e.Reason == middleware.ReasonInsufficientScope && (e.Scope != "write:contacts" || e.Detail != "missing write:contacts") {
				t.Errorf("scope %q, detail %q; want the route's scope and what is missing", e.Scope, e.Detail)
			}
		})
	}
}

func TestNewGuardReportsEverything(t *testing.T) {
	_, err := middleware.NewGuard(nil, middleware.GuardOptions{Realm: "caf\u00e9"})
	if err == nil {
		t.Fatal("NewGuard accepted a nil validator and a non-ASCII realm")
	}
	for _, want := range []string{"nil validator", "realm"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestNilErrorIs: a nil *Error stored in an error variable (Check's result
// misused) must not panic in errors.Is, and matches no sentinel.
func TestNilErrorIs(t *testing.T) {
	var e *middleware.Error
	var err error = e
	if errors.Is(err, middleware.ErrExpired) {
		t.Error("a nil *Error is ErrExpired")
	}
	if err.Error() == "" {
		t.Error("empty message")
	}
}
