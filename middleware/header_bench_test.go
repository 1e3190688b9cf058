package middleware_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tokenward/tokenward/middleware"
)

// BenchmarkValidateUnknownKID is the refusal of a token naming a kid its
// issuer does not publish, as in a flood of made-up kids: such a header is
// never remembered (only verified tokens' are), so it is decoded every time.
func BenchmarkValidateUnknownKID(b *testing.B) {
	key := newKey(b, "RS256")
	v := staticFixture(b, key, middleware.ValidatorOptions{})
	token := sign(b, key, map[string]any{"kid": "not-published"}, auth0Claims(b, epoch))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Validate(ctx, token); !errors.Is(err, middleware.ErrUnknownKey) {
			b.Fatal(err)
		}
	}
}
