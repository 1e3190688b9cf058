package jwkstest_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/tokenward/tokenward/dpop"
	"github.com/tokenward/tokenward/jwks/jwkstest"
)

// Example shows the usual test: an API protected by token validation,
// exercised with tokens from a jwkstest.Issuer that the validation trusts.
func Example() {
	iss := jwkstest.NewIssuer()
	defer iss.Close()

	// The API under test trusts iss.URL() as its issuer and audience
	// https://api.example.com. requireToken stands in for the validating
	// middleware under test.
	const audience = "https://api.example.com"
	contacts := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "contacts")
	})
	api := httptest.NewServer(requireToken(iss.URL(), audience, contacts))
	defer api.Close()

	valid, err := iss.Mint(iss.Claims(audience, map[string]any{"scope": "read:contacts"}))
	if err != nil {
		log.Fatal(err)
	}
	expired, err := iss.Mint(iss.Claims(audience, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}))
	if err != nil {
		log.Fatal(err)
	}

	for _, tc := range []struct{ name, token string }{
		{"valid token", valid},
		{"expired token", expired},
		{"no token", ""},
	} {
		req, err := http.NewRequest(http.MethodGet, api.URL+"/contacts", nil)
		if err != nil {
			log.Fatal(err)
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Printf("%s: %s\n", tc.name, resp.Status)
	}
	// Output:
	// valid token: 200 OK
	// expired token: 401 Unauthorized
	// no token: 401 Unauthorized
}

// ExampleIssuer_Mint crafts tokens that a validator must accept or reject:
// claims from Claims with fields changed or deleted, headers changed with
// MintWithHeader, and a signature by a key the issuer does not publish.
func ExampleIssuer_Mint() {
	iss := jwkstest.NewIssuer()
	defer iss.Close()
	const audience = "https://api.example.com"

	stranger, err := jwkstest.NewKey("RS256")
	if err != nil {
		log.Fatal(err)
	}
	tokens := []struct {
		name string
		mint func() (string, error)
	}{
		{"valid", func() (string, error) { return iss.Mint(iss.Claims(audience, nil)) }},
		{"two audiences", func() (string, error) {
			return iss.Mint(iss.Claims(audience, map[string]any{"aud": []string{audience, iss.URL() + "userinfo"}}))
		}},
		{"typ at+jwt", func() (string, error) {
			return iss.MintWithHeader(map[string]any{"typ": "at+jwt"}, iss.Claims(audience, nil))
		}},
		{"other audience", func() (string, error) { return iss.Mint(iss.Claims("https://other.example.com", nil)) }},
		{"no exp", func() (string, error) { return iss.Mint(iss.Claims(audience, map[string]any{"exp": nil})) }},
		{"other issuer", func() (string, error) {
			return iss.Mint(iss.Claims(audience, map[string]any{"iss": "https://evil.example.com/"}))
		}},
		{"unknown key", func() (string, error) { return stranger.Sign(nil, iss.Claims(audience, nil)) }},
		{"stolen kid", func() (string, error) {
			return stranger.Sign(map[string]any{"kid": iss.SigningKey().ID}, iss.Claims(audience, nil))
		}},
	}
	for _, tc := range tokens {
		token, err := tc.mint()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%-15s %v\n", tc.name+":", checkToken(iss.URL(), audience, token))
	}
	// Output:
	// valid:          <nil>
	// two audiences:  <nil>
	// typ at+jwt:     <nil>
	// other audience: audience not accepted
	// no exp:         no expiry
	// other issuer:   issuer not trusted
	// unknown key:    unknown key
	// stolen kid:     bad signature
}

// ExampleIssuer_Rotate shows an issuer replacing its key: tokens signed by
// the old key stop verifying once a validator fetches the new JWKS. (AddKey,
// SetSigningKey and RemoveKey rotate gracefully instead.)
func ExampleIssuer_Rotate() {
	iss := jwkstest.NewIssuer()
	defer iss.Close()
	const audience = "https://api.example.com"

	old, err := iss.Mint(iss.Claims(audience, nil))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("old token, before rotation:", checkToken(iss.URL(), audience, old))

	key, err := iss.Rotate("ES256")
	if err != nil {
		log.Fatal(err)
	}
	fresh, err := iss.Mint(iss.Claims(audience, nil))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("new signing key:", key.Algorithm)
	fmt.Println("old token, after rotation:", checkToken(iss.URL(), audience, old))
	fmt.Println("new token, after rotation:", checkToken(iss.URL(), audience, fresh))
	// checkToken caches nothing: every check fetched the JWKS.
	fmt.Println("JWKS requests:", iss.JWKSRequests())
	// Output:
	// old token, before rotation: <nil>
	// new signing key: ES256
	// old token, after rotation: unknown key
	// new token, after rotation: <nil>
	// JWKS requests: 3
}

// requireToken stands in for the token validation of the code under test:
// it answers 401 unless checkToken accepts the request's bearer token.
func requireToken(issuer, audience string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || checkToken(issuer, audience, token) != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkToken is a minimal validator for the examples, far short of a real
// one: it discovers the issuer's JWKS, verifies the signature with the key
// the header names, and checks iss, aud and exp. It fetches on every call.
func checkToken(issuer, audience, token string) error {
	var meta struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := getJSON(issuer+".well-known/openid-configuration", &meta); err != nil {
		return err
	}
	if meta.Issuer != issuer {
		return errors.New("discovery issuer mismatch")
	}
	var set struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := getJSON(meta.JWKSURI, &set); err != nil {
		return err
	}

	var header struct {
		Alg, Kid string
	}
	if err := decodePart(strings.Split(token, ".")[0], &header); err != nil {
		return errors.New("malformed token")
	}
	var jwk rawJWK
	for _, k := range set.Keys {
		if k.str("kid") == header.Kid {
			jwk = k
		}
	}
	if jwk == nil {
		return errors.New("unknown key")
	}
	if header.Alg != jwk.str("alg") {
		return errors.New("algorithm mismatch")
	}
	pub, err := publicKey(jwk)
	if err != nil {
		return err
	}
	_, claims, err := verify(token, pub, header.Alg)
	if err != nil {
		return errors.New("bad signature")
	}

	if claims["iss"] != issuer {
		return errors.New("issuer not trusted")
	}
	var auds []any
	switch aud := claims["aud"].(type) {
	case string:
		auds = []any{aud}
	case []any:
		auds = aud
	}
	accepted := false
	for _, a := range auds {
		accepted = accepted || a == audience
	}
	if !accepted {
		return errors.New("audience not accepted")
	}
	exp, ok := claims["exp"].(json.Number)
	if !ok {
		return errors.New("no expiry")
	}
	if sec, err := exp.Int64(); err != nil || time.Now().Unix() >= sec {
		return errors.New("token expired")
	}
	return nil
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// ExampleIssuer_MintDPoP makes a DPoP-bound token and its proofs (RFC 9449),
// as a DPoP client would: one proof per request, for its method and URL.
// Options make the proofs a server must refuse.
func ExampleIssuer_MintDPoP() {
	iss := jwkstest.NewIssuer()
	defer iss.Close()

	key, err := jwkstest.NewProofKey("ES256")
	if err != nil {
		log.Fatal(err)
	}
	token, err := iss.MintDPoP(iss.Claims("https://api.example.com", nil), key)
	if err != nil {
		log.Fatal(err)
	}
	proof, err := key.Proof(http.MethodGet, "https://api.example.com/contacts", token)
	if err != nil {
		log.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, "https://api.example.com/contacts", nil)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", proof)

	// What a server reads of the proof (package dpop parses it).
	v, err := dpop.NewVerifier(dpop.VerifierOptions{})
	if err != nil {
		log.Fatal(err)
	}
	p, err := v.Parse(req.Header.Get("DPoP"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Method, p.URL)
	fmt.Println("bound to the proof key:", p.Thumbprint == key.Thumbprint())
	fmt.Println("ath matches:", p.TokenHash == dpop.TokenHash(token))

	// Proofs a server must refuse: stale, and of the wrong typ.
	stale, _ := key.Proof(http.MethodGet, "https://api.example.com/contacts", token,
		jwkstest.WithIssuedAt(time.Now().Add(-time.Hour)))
	p, _ = v.Parse(stale)
	fmt.Println("stale proof issued", time.Since(p.IssuedAt).Round(time.Hour), "ago")
	wrongType, _ := key.Proof(http.MethodGet, "https://api.example.com/contacts", token, jwkstest.WithType("JWT"))
	_, err = v.Parse(wrongType)
	fmt.Println(errors.Is(err, dpop.ErrType))
	// Output:
	// GET https://api.example.com/contacts
	// bound to the proof key: true
	// ath matches: true
	// stale proof issued 1h0m0s ago
	// true
}
