package dpop_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/dpop"
	"github.com/tokenward/tokenward/jwks/jwkstest"
)

// rfcProof is the example proof of RFC 9449 §4.1 (made by the RFC's
// authors, not by us), with its key's thumbprint from §6.1.
const (
	rfcProof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19" +
		".eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ" +
		".2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
	rfcJKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
)

func verifier(t testing.TB, algs ...string) *dpop.Verifier {
	t.Helper()
	v, err := dpop.NewVerifier(dpop.VerifierOptions{Algorithms: algs})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseRFCExample(t *testing.T) {
	p, err := verifier(t).Parse(rfcProof)
	if err != nil {
		t.Fatal(err)
	}
	if p.Thumbprint != rfcJKT || p.Method != "POST" || p.URL != "https://server.example.com/token" ||
		p.ID != "-BwC3ESc6acc2lTc" || !p.IssuedAt.Equal(time.Unix(1562262616, 0)) {
		t.Errorf("proof %+v", p)
	}
}

func proofKey(t testing.TB, alg string) *jwkstest.ProofKey {
	t.Helper()
	k, err := jwkstest.NewProofKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustProof(t testing.TB, k *jwkstest.ProofKey, opts ...jwkstest.ProofOption) string {
	t.Helper()
	p, err := k.Proof("GET", "https://api.example.com/x", "tok", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParse(t *testing.T) {
	v := verifier(t, "ES256", "EdDSA", "RS256", "PS256", "ES384")
	for _, alg := range []string{"ES256", "EdDSA", "RS256", "PS256", "ES384"} {
		k := proofKey(t, alg)
		p, err := v.Parse(mustProof(t, k, jwkstest.WithNonce("n")))
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if p.Thumbprint != k.Thumbprint() || p.TokenHash != dpop.TokenHash("tok") || p.Nonce != "n" || p.Algorithm != alg || p.ID == "" {
			t.Errorf("%s: %+v", alg, p)
		}
	}
}

// TestParseEd25519Name: RFC 9864's "Ed25519" is EdDSA with an Ed25519 key,
// accepted when allowed by that name, refused when only "EdDSA" is.
func TestParseEd25519Name(t *testing.T) {
	k := proofKey(t, "EdDSA")
	p := mustProof(t, k, jwkstest.WithAlgorithm("Ed25519"))
	if got, err := verifier(t, "Ed25519").Parse(p); err != nil || got.Algorithm != "Ed25519" || got.Thumbprint != k.Thumbprint() {
		t.Errorf("Parse = %+v, %v", got, err)
	}
	if _, err := verifier(t, "EdDSA").Parse(p); !errors.Is(err, dpop.ErrAlgorithm) {
		t.Errorf("Ed25519 proof with only EdDSA allowed: %v", err)
	}
}

func TestParseRefusals(t *testing.T) {
	v := verifier(t)
	k := proofKey(t, "ES256")
	other := proofKey(t, "ES256")
	ed := proofKey(t, "EdDSA")
	signed := func(header, claims string) string {
		p, err := k.Key().SignSegments(base64.RawURLEncoding.EncodeToString([]byte(header)), base64.RawURLEncoding.EncodeToString([]byte(claims)))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	jwk := `{"kty":"EC","crv":"P-256","x":"` + k.JWK()["x"].(string) + `","y":"` + k.JWK()["y"].(string) + `"}`
	tests := []struct {
		name  string
		proof string
		want  error
	}{
		{"too large", strings.Repeat("a", dpop.DefaultMaxBytes+1), dpop.ErrTooLarge},
		{"two segments", "a.b", dpop.ErrMalformed},
		{"four segments", "a.b.c.d", dpop.ErrMalformed},
		{"padding", mustProof(t, k) + "=", dpop.ErrMalformed},
		{"header not JSON", signed(`nope`, `{}`), dpop.ErrMalformed},
		{"duplicate header member", signed(`{"typ":"dpop+jwt","typ":"dpop+jwt","alg":"ES256","jwk":`+jwk+`}`, `{}`), dpop.ErrMalformed},
		{"too many members", signed(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+jwk+manyMembers(30)+`}`, `{}`), dpop.ErrMalformed},
		{"claims of the wrong type", mustProof(t, k, jwkstest.WithClaims(map[string]any{"htm": 7})), dpop.ErrMalformed},
		{"iat not a number", mustProof(t, k, jwkstest.WithClaims(map[string]any{"iat": "now"})), dpop.ErrMalformed},
		{"trailing data", signed(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+jwk+`} {}`, `{}`), dpop.ErrMalformed},
		{"typ JWT", mustProof(t, k, jwkstest.WithType("JWT")), dpop.ErrType},
		{"typ missing", mustProof(t, k, jwkstest.WithHeader(map[string]any{"typ": nil})), dpop.ErrType},
		{"alg none", mustProof(t, k, jwkstest.WithAlgorithm("none")), dpop.ErrAlgorithm},
		{"alg HS256", mustProof(t, k, jwkstest.WithAlgorithm("HS256")), dpop.ErrAlgorithm},
		{"alg not allowed", mustProof(t, ed), dpop.ErrAlgorithm},
		{"no jwk", mustProof(t, k, jwkstest.WithHeader(map[string]any{"jwk": nil})), dpop.ErrKey},
		{"jwk of another type", mustProof(t, k, jwkstest.WithHeader(map[string]any{"jwk": ed.JWK()})), dpop.ErrKey},
		{"jwk symmetric", mustProof(t, k, jwkstest.WithHeader(map[string]any{"jwk": map[string]any{"kty": "oct", "k": "c2VjcmV0"}})), dpop.ErrKey},
		{"jwk off the curve", mustProof(t, k, jwkstest.WithHeader(map[string]any{"jwk": map[string]any{"kty": "EC", "crv": "P-256",
			"x": k.JWK()["x"], "y": k.JWK()["x"]}})), dpop.ErrKey},
		{"signature by another key", mustProof(t, other, jwkstest.WithHeader(map[string]any{"jwk": k.JWK()})), dpop.ErrSignature},
		{"signature changed", func() string { p := mustProof(t, k); return p[:len(p)-4] + "AAAA" }(), dpop.ErrSignature},
	}
	for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
		j := k.JWK()
		j[m] = "AQAB"
		tests = append(tests, struct {
			name  string
			proof string
			want  error
		}{"private member " + m, mustProof(t, k, jwkstest.WithHeader(map[string]any{"jwk": j})), dpop.ErrKey})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Parse(tt.proof)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %+v, %v; want %v", p, err, tt.want)
			}
			if strings.Contains(err.Error(), tt.proof) && len(tt.proof) > 8 {
				t.Errorf("error quotes the proof: %v", err)
			}
		})
	}
}

func manyMembers(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(`,"m`)
		b.WriteString(strings.Repeat("x", i))
		b.WriteString(`":1`)
	}
	return b.String()
}

func TestNewVerifierRefuses(t *testing.T) {
	for _, algs := range [][]string{{"none"}, {"HS256"}, {}, {"ES256", "RS384"}} {
		if _, err := dpop.NewVerifier(dpop.VerifierOptions{Algorithms: algs}); err == nil {
			t.Errorf("%q accepted", algs)
		}
	}
}

func TestThumbprintRFC7638(t *testing.T) {
	// RFC 7638 §3.1's RSA key and thumbprint.
	const n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	pub, err := parseRSA(n, "AQAB")
	if err != nil {
		t.Fatal(err)
	}
	got, err := dpop.Thumbprint(pub)
	if err != nil || got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Errorf("Thumbprint = %q, %v", got, err)
	}
}

func TestNormalizeURL(t *testing.T) {
	same := [][2]string{
		{"https://api.example.com/a", "HTTPS://API.EXAMPLE.COM:443/a"},
		{"https://api.example.com/a", "https://api.example.com/a?q=1#f"},
		{"https://api.example.com/", "https://api.example.com"},
		{"http://h:8080/%7Ea/b", "http://H:8080/~a/./c/../b"},
		{"http://h/a%2fb", "http://h/a%2Fb"},
		{"http://h/", "http://h:80/"},
	}
	for _, p := range same {
		a, erra := dpop.NormalizeURL(p[0])
		b, errb := dpop.NormalizeURL(p[1])
		if erra != nil || errb != nil || a != b {
			t.Errorf("%q → %q, %v; %q → %q, %v: want equal", p[0], a, erra, p[1], b, errb)
		}
	}
	differ := [][2]string{
		{"https://api.example.com/a", "http://api.example.com/a"},
		{"https://api.example.com/a", "https://api.example.com:8443/a"},
		{"https://api.example.com/a", "https://api.example.com/A"},
		{"https://api.example.com/a/b", "https://api.example.com/a%2Fb"},
		{"https://api.example.com/a", "https://api.example.com/a/"},
	}
	for _, p := range differ {
		a, _ := dpop.NormalizeURL(p[0])
		b, _ := dpop.NormalizeURL(p[1])
		if a == b {
			t.Errorf("%q and %q both → %q", p[0], p[1], a)
		}
	}
	for _, bad := range []string{"ftp://h/", "/relative", "https://user@h/", "https://h/%zz", "https:///x"} {
		if u, err := dpop.NormalizeURL(bad); err == nil {
			t.Errorf("%q accepted as %q", bad, u)
		}
	}
}
