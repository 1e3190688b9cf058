package middleware_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
)

// allAlgorithms is every algorithm the validator supports: attacks must fail
// even when all of them are allowed.
var allAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// attackCase is a crafted token and the reason it must be refused for.
type attackCase struct {
	name  string
	token string
	want  *middleware.Error
}

func runAttacks(t *testing.T, v *middleware.Validator, tests []attackCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims, err := v.Validate(testContext(t), tt.token)
			wantReason(t, claims, err, tt.want, tt.token)
		})
	}
}

// encodeJSON base64url-encodes the JSON of v.
func encodeJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(b)
}

func TestAlgNone(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{Algorithms: allAlgorithms})
	claims := encodeJSON(t, claimsAt(tenant, epoch, nil))
	_, _, realSig := segments(t, sign(t, key, nil, claimsAt(tenant, epoch, nil)))
	var tests []attackCase
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		for _, kid := range []any{nil, key.ID} {
			h := map[string]any{"alg": alg, "typ": "JWT"}
			if kid != nil {
				h["kid"] = kid
			}
			header := encodeJSON(t, h)
			for sigName, sig := range map[string]string{"empty": "", "junk": "c2lnbmF0dXJl", "real RS256": realSig} {
				tests = append(tests, attackCase{
					name:  fmt.Sprintf("%s kid=%v sig=%s", alg, kid != nil, sigName),
					token: header + "." + claims + "." + sig,
					want:  middleware.ErrAlgorithm,
				})
			}
		}
	}
	runAttacks(t, v, tests)
}

// HS256 "signed" with the issuer's RSA public key as the HMAC secret, in
// every encoding a confused verifier might use as the secret.
func TestHMACWithPublicKey(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{Algorithms: allAlgorithms})
	pkix, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(key.Public().(*rsa.PublicKey))
	secrets := map[string][]byte{
		"PKIX DER":  pkix,
		"PKIX PEM":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}),
		"PKCS1 DER": pkcs1,
		"PKCS1 PEM": pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: pkcs1}),
		"JWKS":      jwksJSON(t, publicJWK(t, key)),
	}
	var tests []attackCase
	for name, secret := range secrets {
		for _, alg := range []string{"HS256", "HS384", "HS512", "hs256"} {
			header := encodeJSON(t, map[string]any{"alg": alg, "typ": "JWT", "kid": key.ID})
			input := header + "." + encodeJSON(t, claimsAt(tenant, epoch, nil))
			mac := hmac.New(sha256.New, secret)
			mac.Write([]byte(input))
			tests = append(tests, attackCase{
				name:  alg + " with " + name,
				token: input + "." + b64.EncodeToString(mac.Sum(nil)),
				want:  middleware.ErrAlgorithm,
			})
		}
	}
	runAttacks(t, v, tests)
}

// A signature of one algorithm presented under another's name, and a key
// used for an algorithm it was not published for.
func TestAlgorithmConfusion(t *testing.T) {
	rs, es, ps := newKey(t, "RS256"), newKey(t, "ES256"), newKey(t, "PS256")
	noAlg := func(k *jwkstest.Key) map[string]any { j := publicJWK(t, k); delete(j, "alg"); return j }
	published, err := jwks.NewStatic(jwksJSON(t, publicJWK(t, rs), publicJWK(t, es), publicJWK(t, ps)))
	if err != nil {
		t.Fatal(err)
	}
	// The same keys published without alg: the key type must still match.
	unlabelled, err := jwks.NewStatic(jwksJSON(t, noAlg(rs), noAlg(es)))
	if err != nil {
		t.Fatal(err)
	}
	opts := middleware.ValidatorOptions{Algorithms: allAlgorithms, Now: func() time.Time { return epoch }}
	v := newValidator(t, []middleware.Issuer{{URL: tenant, Keys: published}}, opts)
	vNoAlg := newValidator(t, []middleware.Issuer{{URL: tenant, Keys: unlabelled}}, opts)
	c := claimsAt(tenant, epoch, nil)

	// The PS256 key's RSA private key signing PKCS#1 v1.5, as RS256: a
	// valid RS256 signature by a key published for PS256 only.
	psAsRS := &jwkstest.Key{ID: ps.ID, Algorithm: "RS256", Private: ps.Private}
	// Sanity: the same key verifies its own algorithm.
	for _, k := range []*jwkstest.Key{rs, es, ps} {
		if _, err := v.Validate(testContext(t), sign(t, k, nil, c)); err != nil {
			t.Fatalf("%s control token: %v", k.Algorithm, err)
		}
	}

	runAttacks(t, v, []attackCase{
		{"RS256 header, ES256 signature", sign(t, es, map[string]any{"alg": "RS256"}, c), middleware.ErrAlgorithm},
		{"ES256 header on the RSA key", sign(t, rs, map[string]any{"alg": "ES256"}, c), middleware.ErrAlgorithm},
		{"PS256 key used for RS256", sign(t, psAsRS, nil, c), middleware.ErrAlgorithm},
		{"RS256 key used for PS256", sign(t, &jwkstest.Key{ID: rs.ID, Algorithm: "PS256", Private: rs.Private}, nil, c), middleware.ErrAlgorithm},
		{"RS256 key, RS512 header", sign(t, rs, map[string]any{"alg": "RS512"}, c), middleware.ErrAlgorithm},
		{"EdDSA header on the EC key", sign(t, es, map[string]any{"alg": "EdDSA"}, c), middleware.ErrAlgorithm},
	})
	t.Run("keys without alg", func(t *testing.T) {
		runAttacks(t, vNoAlg, []attackCase{
			{"RS256 header, ES256 signature", sign(t, es, map[string]any{"alg": "RS256"}, c), middleware.ErrAlgorithm},
			{"ES256 header on the RSA key", sign(t, rs, map[string]any{"alg": "ES256"}, c), middleware.ErrAlgorithm},
			{"ES384 header on the P-256 key", sign(t, es, map[string]any{"alg": "ES384"}, c), middleware.ErrAlgorithm},
		})
	})
}

// jku, x5u, jwk and x5c name or carry the attacker's key: none is used, and
// the attacker's server is never contacted.
func TestKeyHeadersIgnored(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{})
	attackerKey := newKey(t, "RS256")
	var hits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwksJSON(t, publicJWK(t, attackerKey)))
	}))
	defer attacker.Close()
	v := newValidator(t, []middleware.Issuer{{URL: iss.URL(), Keys: remoteFor(t, iss, jwks.RemoteOptions{RefreshInterval: time.Hour, MinRefreshInterval: time.Hour})}},
		middleware.ValidatorOptions{Algorithms: allAlgorithms})

	cert := selfSigned(t, attackerKey)
	jwk := publicJWK(t, attackerKey)
	c := iss.Claims(audience, nil)
	theirKid := map[string]any{"kid": attackerKey.ID}
	ourKid := map[string]any{"kid": iss.SigningKey().ID}
	noKid := map[string]any{"kid": nil}
	with := func(base map[string]any, name string, value any) map[string]any {
		h := map[string]any{name: value}
		for k, v := range base {
			h[k] = v
		}
		return h
	}
	var tests []attackCase
	for _, hdr := range []struct {
		name  string
		value any
	}{
		{"jku", attacker.URL + "/jwks.json"},
		{"x5u", attacker.URL + "/cert.pem"},
		{"jwk", jwk},
		{"x5c", []string{base64.StdEncoding.EncodeToString(cert)}},
	} {
		tests = append(tests,
			attackCase{hdr.name + ", attacker's kid", sign(t, attackerKey, with(theirKid, hdr.name, hdr.value), c), middleware.ErrUnknownKey},
			attackCase{hdr.name + ", issuer's kid", sign(t, attackerKey, with(ourKid, hdr.name, hdr.value), c), middleware.ErrSignature},
			// Without kid the issuer's only key is used: still not the attacker's.
			attackCase{hdr.name + ", no kid", sign(t, attackerKey, with(noKid, hdr.name, hdr.value), c), middleware.ErrSignature},
		)
	}
	runAttacks(t, v, tests)
	if n := hits.Load(); n != 0 {
		t.Errorf("the attacker's server got %d requests", n)
	}
	if n := iss.JWKSRequests(); n != 1 {
		t.Errorf("the issuer's JWKS was fetched %d times, want 1 (MinRefreshInterval is an hour)", n)
	}
}

// selfSigned returns a DER certificate for k's public key.
func selfSigned(t testing.TB, k *jwkstest.Key) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "attacker"},
		NotBefore:    epoch.Add(-time.Hour),
		NotAfter:     epoch.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k.Private)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// A kid is looked up in a map, never used as a path or URL; hostile kids are
// unknown keys, and do not make the issuer's key set be fetched beyond the
// rate limit.
func TestHostileKID(t *testing.T) {
	iss := startIssuer(t, jwkstest.Options{})
	v := newValidator(t, []middleware.Issuer{{URL: iss.URL(), Keys: remoteFor(t, iss, jwks.RemoteOptions{RefreshInterval: time.Hour, MinRefreshInterval: time.Hour})}},
		middleware.ValidatorOptions{})
	c := iss.Claims(audience, nil)
	var tests []attackCase
	for _, kid := range []string{
		"../../etc/passwd", "/dev/null", "/dev/zero", "file:///etc/passwd", "https://attacker.example.com/jwks.json",
		"..%2f..%2fetc%2fpasswd", "' OR '1'='1", "kid\x00", strings.Repeat("k", 4096), iss.SigningKey().ID + " ",
		strings.ToUpper(iss.SigningKey().ID),
	} {
		tests = append(tests, attackCase{fmt.Sprintf("kid %.40q", kid), sign(t, iss.SigningKey(), map[string]any{"kid": kid}, c), middleware.ErrUnknownKey})
	}
	tests = append(tests,
		attackCase{"kid a number", sign(t, iss.SigningKey(), map[string]any{"kid": 7}, c), middleware.ErrMalformed},
		attackCase{"kid an object", sign(t, iss.SigningKey(), map[string]any{"kid": map[string]any{"path": "/etc/passwd"}}, c), middleware.ErrMalformed},
	)
	runAttacks(t, v, tests)
	if n := iss.JWKSRequests(); n != 1 {
		t.Errorf("the issuer's JWKS was fetched %d times, want 1 (MinRefreshInterval is an hour)", n)
	}
}

// Changes to a valid token's bytes.
func TestTamperedTokens(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	valid := sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"scope": "read:contacts"}))
	h, c, s := segments(t, valid)
	escalated := encodeJSON(t, claimsAt(tenant, epoch, map[string]any{"scope": "read:contacts admin"}))
	otherSub := encodeJSON(t, claimsAt(tenant, epoch, map[string]any{"sub": "auth0|admin", "scope": "read:contacts"}))
	flip := func(seg string, i int) string {
		b := []byte(seg)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	runAttacks(t, v, []attackCase{
		{"scope escalated", h + "." + escalated + "." + s, middleware.ErrSignature},
		{"subject changed", h + "." + otherSub + "." + s, middleware.ErrSignature},
		{"header changed (typ)", encodeJSON(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": key.ID}) + "." + c + "." + s, middleware.ErrSignature},
		{"signature truncated", h + "." + c + "." + s[:len(s)-10], middleware.ErrSignature},
		{"signature truncated to a byte", h + "." + c + "." + s[:2], middleware.ErrSignature},
		{"signature empty", h + "." + c + ".", middleware.ErrSignature},
		{"signature with a byte flipped", h + "." + c + "." + flip(s, len(s)/2), middleware.ErrSignature},
		{"signature doubled", h + "." + c + "." + s + s, middleware.ErrSignature},
		{"signature of zeros", h + "." + c + "." + b64.EncodeToString(make([]byte, 256)), middleware.ErrSignature},
		{"signature too long for the stack buffer", h + "." + c + "." + b64.EncodeToString(make([]byte, 4096)), middleware.ErrSignature},
		{"claims swapped with the header", c + "." + h + "." + s, middleware.ErrIssuer},
		{"four segments", valid + "." + s, middleware.ErrMalformed},
		{"five segments with a JWS header", h + "." + c + "." + s + "." + s + "." + s, middleware.ErrMalformed},
		{"two segments", h + "." + c, middleware.ErrMalformed},
		{"one dot", h + ".", middleware.ErrMalformed},
		{"only dots", "..", middleware.ErrMalformed},
		{"empty header", "." + c + "." + s, middleware.ErrMalformed},
		{"empty claims", h + ".." + s, middleware.ErrMalformed},
	})
	// A JWE is opaque to tokenward, which does not decrypt: refused as
	// opaque, saying so, when no opaque-token checker is configured.
	t.Run("five segments says JWE", func(t *testing.T) {
		jwe := b64.EncodeToString([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM"}`)) + ".a.b.c.d"
		_, err := v.Validate(testContext(t), jwe)
		if e := wantReason(t, nil, err, middleware.ErrOpaque, ""); e.ClientDescription() != "encrypted tokens (JWE) are not accepted here: tokenward does not decrypt them" {
			t.Errorf("description %q", e.ClientDescription())
		}
	})
}

// Compact serialization is strict base64url: no padding, no standard
// alphabet, no whitespace, no stray bits.
func TestStrictBase64URL(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{})
	valid := sign(t, key, nil, claimsAt(tenant, epoch, nil))
	h, c, s := segments(t, valid)
	pad := func(seg string) string {
		for len(seg)%4 != 0 {
			seg += "="
		}
		return seg
	}
	std := func(seg string) string {
		return strings.NewReplacer("-", "+", "_", "/").Replace(seg)
	}
	// A header whose encoding has nonzero stray bits in its last character
	// decodes to the same bytes under a lax decoder.
	hdr := `{"alg":"RS256","kid":"` + key.ID + `"}`
	encoded := b64.EncodeToString([]byte(hdr))
	if len(hdr)%3 == 0 {
		hdr += " "
		encoded = b64.EncodeToString([]byte(hdr))
	}
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", encoded[len(encoded)-1])
	stray := encoded[:len(encoded)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last+1])
	strayToken := signedWithHeader(t, key, stray, c)

	runAttacks(t, v, []attackCase{
		{"padded header", pad(h) + "." + c + "." + s, middleware.ErrMalformed},
		{"padded claims", h + "." + pad(c) + "=" + "." + s, middleware.ErrMalformed},
		{"padded signature", h + "." + c + "." + s + "==", middleware.ErrMalformed},
		{"standard alphabet in the signature", h + "." + c + "." + std(s) + "+/", middleware.ErrMalformed},
		{"plus in the claims", h + "." + c[:10] + "+" + c[11:] + "." + s, middleware.ErrMalformed},
		{"slash in the header", h[:5] + "/" + h[6:] + "." + c + "." + s, middleware.ErrMalformed},
		{"newline in the claims", h + "." + c[:20] + "\n" + c[20:] + "." + s, middleware.ErrMalformed},
		{"CRLF in the signature", h + "." + c + "." + s[:20] + "\r\n" + s[20:], middleware.ErrMalformed},
		{"space in the header", h[:8] + " " + h[8:] + "." + c + "." + s, middleware.ErrMalformed},
		{"tab in the claims", h + "." + c[:8] + "\t" + c[8:] + "." + s, middleware.ErrMalformed},
		{"leading space", " " + valid, middleware.ErrMalformed},
		{"trailing newline", valid + "\n", middleware.ErrMalformed},
		{"NUL", valid[:30] + "\x00" + valid[30:], middleware.ErrMalformed},
		{"non-ASCII", valid[:30] + "é" + valid[30:], middleware.ErrMalformed},
		{"stray bits in the header", strayToken, middleware.ErrMalformed},
	})
}

// JSON that parsers disagree on, or that costs too much to parse.
func TestHostileJSON(t *testing.T) {
	key := newKey(t, "RS256")
	v := staticFixture(t, key, middleware.ValidatorOptions{MaxTokenBytes: 1 << 20})
	claims := func(extra map[string]any) string {
		b, err := json.Marshal(claimsAt(tenant, epoch, extra))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	base := claims(nil)
	header := `{"alg":"RS256","typ":"JWT","kid":"` + key.ID + `"}`
	// withMember inserts a raw "name":value member before the others.
	withMember := func(obj, member string) string { return "{" + member + "," + obj[1:] }
	// appended puts a member last: after the trusted iss, which
	// encoding/json would let a second iss override.
	appended := func(obj, member string) string { return obj[:len(obj)-1] + "," + member + "}" }
	nested := func(depth int) json.RawMessage {
		return json.RawMessage(strings.Repeat("[", depth) + strings.Repeat("]", depth))
	}
	many := func(n int) map[string]any {
		m := make(map[string]any, n)
		for i := range n {
			m[fmt.Sprintf("c%04d", i)] = i
		}
		return m
	}
	const registered = 5 // iss, sub, aud, iat, exp

	// Controls: at the limits, accepted.
	for name, tok := range map[string]string{
		"nesting 32":  sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"deep": nested(31)})),
		"1000 claims": sign(t, key, nil, claimsAt(tenant, epoch, many(1000-registered))),
		"duplicate unwatched claim": signRaw(t, key, header,
			withMember(base, `"https://example.com/roles":["a"],"https://example.com/roles":["b"]`)),
		"escaped unwatched name": signRaw(t, key, header, withMember(base, `"\u0078":1`)),
	} {
		if _, err := v.Validate(testContext(t), tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	deep := sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"deep": nested(32)}))
	tooMany := sign(t, key, nil, claimsAt(tenant, epoch, many(1001-registered)))
	dupIss := signRaw(t, key, header, appended(base, `"iss":"https://evil.example.com/"`))
	runAttacks(t, v, []attackCase{
		{"duplicate alg", signRaw(t, key, `{"alg":"none","typ":"JWT","kid":"`+key.ID+`","alg":"RS256"}`, base), middleware.ErrMalformed},
		{"duplicate alg, same value", signRaw(t, key, `{"alg":"RS256","alg":"RS256","kid":"`+key.ID+`"}`, base), middleware.ErrMalformed},
		{"duplicate kid", signRaw(t, key, `{"alg":"RS256","kid":"x","kid":"`+key.ID+`"}`, base), middleware.ErrMalformed},
		{"alg and ALG", signRaw(t, key, `{"alg":"none","ALG":"RS256","kid":"`+key.ID+`"}`, base), middleware.ErrMalformed},
		{"escaped duplicate alg", signRaw(t, key, `{"\u0061lg":"none","alg":"RS256","kid":"`+key.ID+`"}`, base), middleware.ErrMalformed},
		{"duplicate iss", dupIss, middleware.ErrMalformed},
		{"iss and ISS", signRaw(t, key, header, appended(base, `"ISS":"https://evil.example.com/"`)), middleware.ErrMalformed},
		// The first iss is untrusted: refused for that, before the rest.
		{"duplicate iss, untrusted first", signRaw(t, key, header, withMember(base, `"iss":"https://evil.example.com/"`)), middleware.ErrIssuer},
		{"ISS untrusted, then iss", signRaw(t, key, header, withMember(base, `"ISS":"https://evil.example.com/"`)), middleware.ErrIssuer},
		{"sub and ſub (long s folds to s)", signRaw(t, key, header, withMember(base, `"ſub":"auth0|admin"`)), middleware.ErrMalformed},
		{"escaped duplicate sub", signRaw(t, key, header, withMember(base, `"\u0073ub":"auth0|admin"`)), middleware.ErrMalformed},
		{"duplicate aud", signRaw(t, key, header, withMember(base, `"aud":"https://other.example.com"`)), middleware.ErrMalformed},
		{"duplicate exp", signRaw(t, key, header, withMember(base, `"exp":99999999999`)), middleware.ErrMalformed},
		{"duplicate scope", signRaw(t, key, header, withMember(claims(map[string]any{"scope": "read"}), `"scope":"admin"`)), middleware.ErrMalformed},
		{"permissions and Permissions", signRaw(t, key, header, withMember(claims(map[string]any{"permissions": []string{"read"}}), `"Permissions":["admin"]`)), middleware.ErrMalformed},
		{"nesting 33", deep, middleware.ErrMalformed},
		{"nesting 33 in objects", sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{
			"deep": json.RawMessage(strings.Repeat(`{"a":`, 32) + "1" + strings.Repeat("}", 32))})), middleware.ErrMalformed},
		{"nesting 5000", sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"deep": nested(5000)})), middleware.ErrMalformed},
		{"nesting 33 in the header", signRaw(t, key, `{"alg":"RS256","kid":"`+key.ID+`","x":`+string(nested(32))+`}`, base), middleware.ErrMalformed},
		{"1001 claims", tooMany, middleware.ErrMalformed},
		{"1001 header members", signRaw(t, key, `{"alg":"RS256","kid":"`+key.ID+`"`+strings.Repeat(`,"x":1`, 999)+`}`, base), middleware.ErrMalformed},
		{"exp before 1970 (year 1 is the zero time.Time)", sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"exp": -62135596800})), middleware.ErrMalformed},
		{"exp a string", sign(t, key, nil, claimsAt(tenant, epoch, map[string]any{"exp": fmt.Sprint(epoch.Add(time.Hour).Unix())})), middleware.ErrMalformed},
		{"claims an array", signRaw(t, key, header, `[`+base+`]`), middleware.ErrMalformed},
		{"claims a string", signRaw(t, key, header, `"`+tenant+`"`), middleware.ErrMalformed},
		{"claims null", signRaw(t, key, header, `null`), middleware.ErrMalformed},
		{"trailing data after the claims", signRaw(t, key, header, base+`{"iss":"https://evil.example.com/"}`), middleware.ErrMalformed},
		{"unterminated string", signRaw(t, key, header, `{"iss":"`+tenant), middleware.ErrMalformed},
	})
	// The log message says which limit was hit.
	for _, tc := range []struct{ name, token, msg string }{
		{"nesting 33", deep, "nested too deeply"},
		{"1001 claims", tooMany, "too many claims"},
		{"duplicate iss", dupIss, "duplicate claim"},
	} {
		if _, err := v.Validate(testContext(t), tc.token); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.msg)
		}
	}
}
