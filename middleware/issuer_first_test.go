package middleware_test

import (
	"strings"
	"testing"

	"github.com/tokenward/tokenward/middleware"
)

// The issuer is checked first, from a scan of the claims that stops at iss:
// a token naming an untrusted issuer is refused for that before its header
// or the rest of its claims are decoded (issue 9, finding 9; the cost is
// shown by BenchmarkRefuseUntrustedIssuer16KB).
func TestIssuerCheckedFirst(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	evil := claimsAt("https://evil.example.com/", epoch, nil)
	hostile := `{"alg":"RS256","kid":"` + key.ID + `",` + strings.Repeat(`"x":"\u00e9",`, 500) + `"y":1}`
	runAttacks(t, v, []attackCase{
		{"untrusted, alg none", sign(t, key, map[string]any{"alg": "none"}, evil), middleware.ErrIssuer},
		{"untrusted, header not JSON", b64.EncodeToString([]byte("not json")) + "." + encodeJSON(t, evil) + ".c2ln", middleware.ErrIssuer},
		{"untrusted, hostile header", b64.EncodeToString([]byte(hostile)) + "." + encodeJSON(t, evil) + ".c2ln", middleware.ErrIssuer},
		{"untrusted, claims not valid JSON after iss", "e30." + b64.EncodeToString([]byte(`{"iss":"https://evil.example.com/",}}}`)) + ".c2ln", middleware.ErrIssuer},
		{"untrusted, crit", sign(t, key, map[string]any{"crit": []string{"x"}}, evil), middleware.ErrIssuer},
		{"no iss", sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"iss": nil})), middleware.ErrIssuer},
		{"iss null", signRaw(t, key, `{"alg":"RS256","kid":"`+key.ID+`"}`, `{"iss":null,"aud":"`+audience+`","exp":1900000000}`), middleware.ErrIssuer},
		{"iss a number", signRaw(t, key, `{"alg":"RS256","kid":"`+key.ID+`"}`, `{"iss":1,"aud":"`+audience+`","exp":1900000000}`), middleware.ErrMalformed},
		{"iss long and escaped", signRaw(t, key, `{"alg":"RS256","kid":"`+key.ID+`"}`, `{"iss":"`+strings.Repeat(`\u0041`, 1000)+`","aud":"`+audience+`","exp":1900000000}`), middleware.ErrIssuer},
		{"iss escaped, untrusted", signRaw(t, key, `{"alg":"RS256","kid":"`+key.ID+`"}`, `{"iss":"https:\/\/evil.example.com\/","aud":"`+audience+`","exp":1900000000}`), middleware.ErrIssuer},
		{"iss without a value", "e30." + b64.EncodeToString([]byte(`{"iss":}`)) + ".c2ln", middleware.ErrMalformed},
		{"claims not an object", "e30." + b64.EncodeToString([]byte(`["iss"]`)) + ".c2ln", middleware.ErrMalformed},
		{"claims with an unterminated string", "e30." + b64.EncodeToString([]byte(`{"sub":"x`)) + ".c2ln", middleware.ErrMalformed},
	})
}

// The scan finds the iss that encoding/json reads, in every spelling it
// reads: a trusted issuer written so is accepted, and an untrusted one
// hidden where the decoder does not look for iss changes nothing.
func TestIssuerScanAgreesWithDecoder(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	header := `{"alg":"RS256","kid":"` + key.ID + `"}`
	rest := `"sub":"auth0|x","aud":"` + audience + `","exp":1900000000`
	for name, claims := range map[string]string{
		"plain":                           `{` + rest + `,"iss":"` + tenant + `"}`,
		"escaped slashes":                 `{` + rest + `,"iss":"https:\/\/tenant.example.com\/"}`,
		"escaped name":                    `{` + rest + `,"\u0069ss":"` + tenant + `"}`,
		"upper-case name":                 `{` + rest + `,"ISS":"` + tenant + `"}`,
		"whitespace":                      "{ \n\t" + rest + ` , "iss" :` + "\n" + `"` + tenant + `" }`,
		"untrusted iss nested":            `{"x":{"iss":"https://evil.example.com/"},"y":[{"iss":"e"}],` + rest + `,"iss":"` + tenant + `"}`,
		"untrusted iss in a string":       `{"x":"\",\"iss\":\"https://evil.example.com/","z":"\\",` + rest + `,"iss":"` + tenant + `"}`,
		"untrusted iss as a value":        `{"x":"iss","y":["iss","https://evil.example.com/"],` + rest + `,"iss":"` + tenant + `"}`,
		"name ending in an escaped quote": `{"i\"":"https://evil.example.com/",` + rest + `,"iss":"` + tenant + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			tok := signRaw(t, key, header, claims)
			c, err := v.Validate(testContext(t), tok)
			if err != nil {
				t.Fatal(err)
			}
			if c.Issuer != tenant {
				t.Fatalf("issuer %q", c.Issuer)
			}
		})
	}
}

// The claims JSON is decoded only once the signature verifies: a forged
// token naming the trusted issuer (its URL and kid are public) is refused for
// its signature, whatever its claims, and costs a signature check rather than
// the decoding of its claims (BenchmarkRefuseForgedToken16KB).
func TestClaimsDecodedAfterSignature(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	header := b64.EncodeToString([]byte(`{"alg":"RS256","kid":"` + key.ID + `"}`))
	forged := func(claims string) string {
		return header + "." + b64.EncodeToString([]byte(claims)) + "." + b64.EncodeToString(make([]byte, 256))
	}
	runAttacks(t, v, []attackCase{
		{"exp of the wrong type", forged(`{"iss":"` + tenant + `","exp":"tomorrow"}`), middleware.ErrSignature},
		{"duplicate sub", forged(`{"iss":"` + tenant + `","sub":"a","sub":"b"}`), middleware.ErrSignature},
		{"nested too deeply", forged(`{"iss":"` + tenant + `","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`), middleware.ErrSignature},
		{"not JSON after iss", forged(`{"iss":"` + tenant + `",}`), middleware.ErrSignature},
	})
	// Signed by the issuer, the same claims are refused for what they are.
	runAttacks(t, v, []attackCase{
		{"signed, exp of the wrong type", signRaw(t, key, `{"alg":"RS256","kid":"`+key.ID+`"}`, `{"iss":"`+tenant+`","exp":"tomorrow"}`), middleware.ErrMalformed},
		{"signed, duplicate sub", signRaw(t, key, `{"alg":"RS256","kid":"`+key.ID+`"}`, `{"iss":"`+tenant+`","sub":"a","sub":"b"}`), middleware.ErrMalformed},
	})
}
