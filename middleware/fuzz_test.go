package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/middleware"
)

// The fuzz targets verify with a fixed key, testdata/fuzz_jwks.json, so that
// the valid tokens of the seed corpus (testdata/fuzz/FuzzValidate) stay
// valid: its private half was thrown away once they were signed. The clock is
// fixed inside their validity.
var fuzzNow = time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)

func fuzzValidator(t testing.TB) *middleware.Validator {
	t.Helper()
	keys, err := jwks.LoadFile(filepath.Join("testdata", "fuzz_jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	return newValidator(t, []middleware.Issuer{{URL: tenant, Keys: keys}}, middleware.ValidatorOptions{
		Algorithms: []string{"RS256", "ES256", "EdDSA"},
		Now:        func() time.Time { return fuzzNow },
	})
}

// The corpus's valid tokens must be valid, or the fuzzer never reaches the
// end of Validate from them.
func TestFuzzCorpusValid(t *testing.T) {
	v := fuzzValidator(t)
	for _, name := range []string{"valid_auth0", "valid_at_jwt_scp_array"} {
		data, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzValidate", name))
		if err != nil {
			t.Fatal(err)
		}
		_, quoted, _ := strings.Cut(string(data), "string(\"")
		token, _, _ := strings.Cut(quoted, "\")")
		if _, err := v.Validate(context.Background(), token); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzValidate: any string gives either claims and no error, or an *Error
// and no claims; never a panic, never a 500, never the token in the client's
// description.
func FuzzValidate(f *testing.F) {
	for _, seed := range []string{
		"", ".", "..", "...", "....", "a.b.c", "e30.e30.", "e30.e30.e30",
		"eyJhbGciOiJSUzI1NiJ9.e30.", "eyJhbGciOiJSUzI1NiJ9.bnVsbA.AA",
		"eyJhbGciOiJSUzI1NiIsImNyaXQiOltdfQ.e30.AA", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
		"eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL3RlbmFudC5leGFtcGxlLmNvbS8ifQ.",
		"Bearer x", "é.é.é", strings.Repeat("a", middleware.DefaultMaxTokenBytes+1),
	} {
		f.Add(seed)
	}
	v := fuzzValidator(f)
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Validate(context.Background(), token)
		if err == nil {
			if claims == nil {
				t.Fatal("nil claims and nil error")
			}
			if claims.Issuer != tenant || claims.ExpiresAt.IsZero() {
				t.Fatalf("accepted claims %+v", claims)
			}
			return
		}
		if claims != nil {
			t.Fatalf("claims %+v with error %v", claims, err)
		}
		var e *middleware.Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v (%T) is not an *Error", err, err)
		}
		if s := e.Status(); s != http.StatusUnauthorized && s != http.StatusServiceUnavailable {
			t.Fatalf("status %d for %v", s, err)
		}
		if len(token) >= 8 && strings.Contains(e.ClientDescription(), token) {
			t.Fatalf("description %q quotes the token", e.ClientDescription())
		}
	})
}

// FuzzExtractBearer: ExtractBearer never panics; it returns a b64token that
// round-trips, or ErrNoToken / invalid_request.
func FuzzExtractBearer(f *testing.F) {
	f.Add("Bearer abc.def.ghi", "", byte(1))
	f.Add("bearer abc", "", byte(1))
	f.Add("BEARER abc==", "", byte(1))
	f.Add("Basic dXNlcjpwYXNz", "", byte(1))
	f.Add("Bearer a b", "", byte(1))
	f.Add("Bearer a,b", "", byte(1))
	f.Add("Bearer", "", byte(1))
	f.Add("", "", byte(1))
	f.Add("Bearer a", "Bearer b", byte(2))
	f.Add("\tBearer a", "", byte(1))
	f.Fuzz(func(t *testing.T, first, second string, headers byte) {
		h := http.Header{}
		switch headers % 3 {
		case 1:
			h["Authorization"] = []string{first}
		case 2:
			h["Authorization"] = []string{first, second}
		}
		token, err := middleware.ExtractBearer(h)
		if err != nil {
			var e *middleware.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if e.Reason != middleware.ReasonNoToken && e.Reason != middleware.ReasonInvalidRequest {
				t.Fatalf("reason %q", e.Reason)
			}
			if token != "" {
				t.Fatalf("token %q with error %v", token, err)
			}
			switch headers % 3 {
			case 0:
				if e.Reason != middleware.ReasonNoToken {
					t.Fatalf("no header: %v", err)
				}
			case 2:
				if e.Reason != middleware.ReasonInvalidRequest {
					t.Fatalf("two headers: %v", err)
				}
			}
			return
		}
		if headers%3 != 1 {
			t.Fatalf("token %q from %d headers", token, headers%3)
		}
		if token == "" || strings.ContainsAny(token, " \t\r\n,\"") {
			t.Fatalf("token %q", token)
		}
		if !strings.Contains(first, token) {
			t.Fatalf("token %q is not in the header %q", token, first)
		}
		again, err := middleware.ExtractBearer(http.Header{"Authorization": {"Bearer " + token}})
		if err != nil || again != token {
			t.Fatalf("round trip of %q: %q, %v", token, again, err)
		}
	})
}

func TestExtractBearer(t *testing.T) {
	tests := []struct {
		values []string
		token  string
		reason middleware.Reason
	}{
		{nil, "", middleware.ReasonNoToken},
		{[]string{"Bearer abc.def.ghi"}, "abc.def.ghi", ""},
		{[]string{"bearer abc"}, "abc", ""},
		{[]string{"BEARER abc"}, "abc", ""},
		{[]string{"BeArEr abc"}, "abc", ""},
		{[]string{"Bearer   abc  "}, "abc", ""},
		{[]string{"  Bearer abc"}, "abc", ""},
		{[]string{"Bearer abc=="}, "abc==", ""},
		{[]string{"Bearer a-b_c~d+e/f"}, "a-b_c~d+e/f", ""},
		{[]string{"Basic dXNlcjpwYXNz"}, "", middleware.ReasonNoToken},
		{[]string{"DPoP abc"}, "", middleware.ReasonNoToken},
		{[]string{"Bearerabc"}, "", middleware.ReasonNoToken},
		{[]string{""}, "", middleware.ReasonInvalidRequest},
		{[]string{"   "}, "", middleware.ReasonInvalidRequest},
		{[]string{"Bearer"}, "", middleware.ReasonInvalidRequest},
		{[]string{"Bearer "}, "", middleware.ReasonInvalidRequest},
		{[]string{"Bearer a b"}, "", middleware.ReasonInvalidRequest},
		{[]string{"Bearer a,b"}, "", middleware.ReasonInvalidRequest},
		{[]string{"Bearer a=b"}, "", middleware.ReasonInvalidRequest},
		{[]string{"Bearer =abc"}, "", middleware.ReasonInvalidRequest},
		{[]string{`Bearer "abc"`}, "", middleware.ReasonInvalidRequest},
		{[]string{"Bearer abc\tdef"}, "", middleware.ReasonInvalidRequest},
		{[]string{"Bearer é"}, "", middleware.ReasonInvalidRequest},
		{[]string{"Bearer a", "Bearer a"}, "", middleware.ReasonInvalidRequest},
		{[]string{"Bearer a", ""}, "", middleware.ReasonInvalidRequest},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.values != nil {
			h["Authorization"] = tt.values
		}
		token, err := middleware.ExtractBearer(h)
		if tt.reason == "" {
			if err != nil || token != tt.token {
				t.Errorf("%q: %q, %v; want %q", tt.values, token, err, tt.token)
			}
			continue
		}
		var e *middleware.Error
		if !errors.As(err, &e) || e.Reason != tt.reason || token != "" {
			t.Errorf("%q: %q, %v; want reason %s", tt.values, token, err, tt.reason)
		}
	}
}
