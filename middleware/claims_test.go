package middleware_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/middleware"
)

// ParseClaims returns claims that share no memory with its argument: a caller
// reusing its buffer (a pooled read buffer, say) must not change claims it
// already handed on.
func TestParseClaimsCopiesItsInput(t *testing.T) {
	for name, data := range map[string]string{
		// Every string on the decoder's fast path, which points into the JSON.
		"auth0": `{"iss":"https://tenant.example.com/","sub":"auth0|5f7c8ec7c33c6c004bbafe82",` +
			`"aud":["https://api.example.com","https://tenant.example.com/userinfo"],"iat":1767225600,"exp":1767312000,` +
			`"azp":"k3Jc1Xq9","jti":"j-1","scope":"openid read:contacts","permissions":["read:contacts","write:contacts"]}`,
		"aud string, scp string, client_id": `{"iss":"https://i/","sub":"s","aud":"https://api.example.com","exp":1767312000,"client_id":"c","scp":"a b"}`,
		// The slow path (escapes), for completeness.
		"escapes": `{"iss":"https://i/","sub":"caf\u00e9","aud":["x"],"exp":1767312000,"scope":"r\u00e9ad"}`,
	} {
		t.Run(name, func(t *testing.T) {
			buf := []byte(data)
			c, err := middleware.ParseClaims(buf, middleware.KindIntrospection)
			if err != nil {
				t.Fatal(err)
			}
			want := snapshot(c)
			for i := range buf {
				buf[i] = 'x'
			}
			if got := snapshot(c); !reflect.DeepEqual(got, want) {
				t.Fatalf("the claims changed with the caller's buffer:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// snapshot copies every string of c, and its JSON.
func snapshot(c *middleware.Claims) []string {
	s := []string{strings.Clone(c.Issuer), strings.Clone(c.Subject), strings.Clone(c.ID), strings.Clone(c.ClientID)}
	for _, a := range c.Audience {
		s = append(s, "aud "+a)
	}
	for _, sc := range c.Scopes.List() {
		s = append(s, "scope "+sc)
	}
	var custom map[string]any
	if err := c.Decode(&custom); err != nil {
		s = append(s, "decode: "+err.Error())
	}
	return append(s, string(bytes.Clone(c.JSON())), c.ExpiresAt.String())
}
