package middleware_test

import (
	"errors"
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
		// The scan for iss reads at most 1,000 members, the limit on claims.
		{"untrusted, iss as member 1,000", "e30." + b64.EncodeToString([]byte(escapedNames(999)+`"iss":"https://evil.example.com/"}`)) + ".c2ln", middleware.ErrIssuer},
		{"untrusted, iss as member 1,001", "e30." + b64.EncodeToString([]byte(escapedNames(1000)+`"iss":"https://evil.example.com/"}`)) + ".c2ln", middleware.ErrMalformed},
	})
}

// escapedNames is the start of a JSON object: n members named by escapes,
// none of them a claim or a header parameter, short enough that a thousand
// fit in a token.
func escapedNames(n int) string {
	names := []string{`\/`, `\u0069`, `i\u017f`, `\ud835`, `\u212a`}
	var sb strings.Builder
	sb.WriteString("{")
	for i := range n {
		sb.WriteString(`"` + names[i%len(names)] + `":0,`)
	}
	return sb.String()
}

// Refusing a token full of escaped member names allocates no more than
// refusing one without: each name is unescaped (to tell whether it is iss,
// or a header parameter) without encoding/json (issue 9, finding 9: 2,000 to
// 6,700 allocations and 10-17 times a valid token's verification before;
// the cost is shown by BenchmarkRefuseUntrustedIssuer16KB and
// BenchmarkRefuseForgedToken16KB).
func TestRefuseEscapedNamesAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	header := `{"alg":"RS256","kid":"` + key.ID + `"}`
	trusted := `"iss":"` + tenant + `","sub":"x","aud":"` + audience + `","exp":4102444800}`
	forged := func(header, claims string) string {
		return b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(claims)) + "." + b64.EncodeToString(make([]byte, 256))
	}
	hostileHeader := `{"alg":"RS256","kid":"` + key.ID + `",` + escapedNames(990)[1:] + `"typ":"JWT"}`
	for _, tc := range []struct {
		name, plain, hostile string
		want                 *middleware.Error
	}{
		{"untrusted iss after escaped names",
			forged(header, escapedNames(1)+`"iss":"https://evil.example.com/"}`),
			forged(header, escapedNames(990)+`"iss":"https://evil.example.com/"}`), middleware.ErrIssuer},
		{"escaped names past the limit",
			forged(header, escapedNames(1001)+`"iss":"https://evil.example.com/"}`),
			forged(header, strings.Repeat(`"\/":0,`, 1500)+`"iss":"https://evil.example.com/"}`), middleware.ErrMalformed},
		{"forged, header of escaped names",
			forged(header, `{`+trusted),
			forged(hostileHeader, `{`+trusted), middleware.ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			allocs := make([]float64, 2)
			for i, tok := range []string{tc.plain, tc.hostile} {
				if len(tok) > middleware.DefaultMaxTokenBytes {
					t.Fatalf("token of %d bytes", len(tok))
				}
				if _, err := v.Validate(ctx, tok); !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				allocs[i] = testing.AllocsPerRun(20, func() { v.Validate(ctx, tok) })
			}
			if allocs[1] > allocs[0]+2 {
				t.Errorf("refusing allocates %v times with escaped names, %v without", allocs[1], allocs[0])
			}
		})
	}
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
		"after escaped names":             escapedNames(900) + rest + `,"iss":"` + tenant + `"}`,
		"escaped name with long s":        `{` + rest + `,"\u0069\u017f\u017F":"` + tenant + `"}`,
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
