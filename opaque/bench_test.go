package opaque_test

import (
	"context"
	"testing"

	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/opaque"
)

// BenchmarkIntrospectionCached is the cost of an opaque token whose answer is
// cached: the checker alone, and through the validator (which adds the
// issuer, time, audience and deny-list checks). Target: <= 2 µs and <= 5
// allocations.
func BenchmarkIntrospectionCached(b *testing.B) {
	iss := newIssuer(b)
	in := newIntrospector(b, iss, opaque.IntrospectorOptions{})
	token := iss.MintOpaque(iss.Claims(audience, map[string]any{"scope": "read:contacts write:contacts", "email": "ada@example.com"}))
	ctx := context.Background()
	if _, err := in.CheckOpaque(ctx, token); err != nil {
		b.Fatal(err)
	}
	b.Run("CheckOpaque", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := in.CheckOpaque(ctx, token); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Validate", func(b *testing.B) {
		v := newValidator(b, iss.URL(), in, middleware.ValidatorOptions{Revoked: func(*middleware.Claims) bool { return false }})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Validate(ctx, token); err != nil {
				b.Fatal(err)
			}
		}
	})
	if n := iss.IntrospectionRequests(); n != 1 {
		b.Errorf("%d introspection calls, want 1", n)
	}
}
