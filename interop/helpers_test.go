package interop_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
)

// audience is the API the test tokens are for.
const audience = "https://api.example.com"

func newIssuer(tb testing.TB) *jwkstest.Issuer {
	tb.Helper()
	iss := jwkstest.NewIssuer()
	tb.Cleanup(iss.Close)
	return iss
}

// newValidator trusts iss with its keys as a static set, so that no request
// waits on a key fetch.
func newValidator(tb testing.TB, iss *jwkstest.Issuer) *middleware.Validator {
	tb.Helper()
	body, err := jwkstest.JWKS(iss.Keys()...)
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := jwks.NewStatic(body)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: iss.URL(), Keys: keys}},
		[]string{audience}, middleware.ValidatorOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// withScope returns a valid token granting scope.
func withScope(tb testing.TB, iss *jwkstest.Issuer, scope string) string {
	tb.Helper()
	tok, err := iss.Mint(iss.Claims(audience, map[string]any{"scope": scope}))
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func hostOf(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }
