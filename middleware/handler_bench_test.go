package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/scopes"
)

// nopWriter is a ResponseWriter that keeps nothing, so that the middleware
// benchmarks count the middleware's allocations, not a recorder's.
type nopWriter struct {
	h      http.Header
	status *int
}

func (w nopWriter) Header() http.Header         { return w.h }
func (w nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w nopWriter) WriteHeader(s int)           { *w.status = s }

// benchMiddleware serves r through middleware.New with a required scope and
// a verified-token cache, in process, and checks the answer each time.
func benchMiddleware(b *testing.B, authorization string, want int) {
	key := newKey(b, "RS256")
	v := staticFixture(b, key, middleware.ValidatorOptions{CacheSize: 16})
	mw, err := middleware.New(v, middleware.Options{Required: scopes.All("read:contacts")})
	if err != nil {
		b.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	r := httptest.NewRequest(http.MethodGet, "/api/contacts/1", nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization+sign(b, key, nil, auth0Claims(b, epoch)))
	}
	status := new(int)
	w := nopWriter{h: http.Header{}, status: status}
	b.ReportAllocs()
	for b.Loop() {
		*status = 0
		h.ServeHTTP(w, r)
		if *status != want {
			b.Fatalf("status %d, want %d", *status, want)
		}
	}
}

// BenchmarkMiddlewareCached is the decision path of the middleware around a
// cached token: extraction, the cache, the scope check, the context.
func BenchmarkMiddlewareCached(b *testing.B) { benchMiddleware(b, "Bearer ", http.StatusOK) }

// BenchmarkMiddlewareNoToken is the cheapest refusal: no Authorization.
func BenchmarkMiddlewareNoToken(b *testing.B) { benchMiddleware(b, "", http.StatusUnauthorized) }
