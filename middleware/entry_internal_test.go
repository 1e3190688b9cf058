package middleware

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzEntryRoundTrip: the claims a cache hit rebuilds from an entry are
// those the entry was built from, whatever their shape (escapes, strings
// outside the JSON, many audiences or scopes, shared scope sets or not), and
// they hold no memory of the JSON they were decoded from.
func FuzzEntryRoundTrip(f *testing.F) {
	for _, s := range fastClaimsSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	for _, s := range []string{
		`{"iss":"https://i/","sub":"a\"b\\c\u00e9","jti":"\u2603","scope":"caf\u00e9 read\tall","aud":["x","\u00e9"],"exp":1767312000}`,
		`{"aud":["x","y","z","w"],"exp":1767312000.25,"nbf":1767225600.5,"iat":0,"scp":["b","a","a"]}`,
		`{"exp":1767312000,"sub":"","jti":"","scope":"","aud":[""],"client_id":"c","azp":"z"}`,
		`{"exp":99999999999.999999,"permissions":["a b","c"],"azp":"only-azp"}`,
		`{"exp":1767312000,"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}`,
		`{"exp":1767312000,"cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I","x5t#S256":"a\u0062"}}`,
		`{"exp":1767312000,"cnf":{"jwk":{"kty":"EC"}}}`,
		`{"exp":1767312000,"cnf":{}}`,
		`{"exp":1767312000,"cnf":{"x5t#S256":""}}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, share bool) {
		// As verify decodes a token's claims.
		in := bytes.Clone(data)
		if scanObject(in, registered) != nil {
			return
		}
		wc, err := decodeClaims(in)
		if err != nil || !wc.Exp.set {
			return // refused: never cached
		}
		c := wc.claims(in)
		want := entrySnapshot(c)
		var ref *keyRef
		if share {
			ref = &keyRef{iss: strings.Clone(c.Issuer), kid: "k"} // as keyRefs.get clones it
		}
		e, ok := newEntry(c, ref)
		if !ok {
			return // too large to address: verified every time
		}
		clear(in) // the entry must not point into the decoded JSON
		d := entryView(e.data)
		if got, _, _, _ := d.times(); !got.Equal(want.exp) {
			t.Fatalf("exp %v, want %v", got, want.exp)
		}
		// A hit decodes the JSON from the token's claims segment.
		hit := d.claims(&e, base64.RawURLEncoding.EncodeToString(data))
		if got := entrySnapshot(hit); !got.equal(want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
	})
}

// claimsCopy is every field of a Claims, copied.
type claimsCopy struct {
	iss, sub, jti, client string
	aud, scopes           []string
	exp, nbf, iat         time.Time
	raw                   string
	cnf                   *Confirmation
}

func entrySnapshot(c *Claims) claimsCopy {
	s := claimsCopy{
		iss: strings.Clone(c.Issuer), sub: strings.Clone(c.Subject), jti: strings.Clone(c.ID), client: strings.Clone(c.ClientID),
		exp: c.ExpiresAt, nbf: c.NotBefore, iat: c.IssuedAt, raw: string(c.JSON()),
	}
	for _, a := range c.Audience {
		s.aud = append(s.aud, strings.Clone(a))
	}
	for _, sc := range c.Scopes.List() {
		s.scopes = append(s.scopes, strings.Clone(sc))
	}
	if c.Confirmation != nil {
		s.cnf = &Confirmation{CertThumbprint: strings.Clone(c.Confirmation.CertThumbprint),
			KeyThumbprint: strings.Clone(c.Confirmation.KeyThumbprint), Unsupported: c.Confirmation.Unsupported}
	}
	return s
}

func (a claimsCopy) equal(b claimsCopy) bool {
	return a.iss == b.iss && a.sub == b.sub && a.jti == b.jti && a.client == b.client &&
		slices.Equal(a.aud, b.aud) && slices.Equal(a.scopes, b.scopes) &&
		a.exp.Equal(b.exp) && a.nbf.Equal(b.nbf) && a.iat.Equal(b.iat) &&
		a.nbf.IsZero() == b.nbf.IsZero() && a.iat.IsZero() == b.iat.IsZero() && a.raw == b.raw &&
		(a.cnf == nil) == (b.cnf == nil) && (a.cnf == nil || *a.cnf == *b.cnf)
}
