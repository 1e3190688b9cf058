package interop_test

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks/jwkstest"
)

// TestDPoPIndependentClientBinary: proofs made by the npm package dpop
// (testdata/dpopclient, a client we did not write) pass through the real
// binary, with server nonces on, and its broken variants do not. For each
// algorithm, node makes the key and computes its RFC 7638 thumbprint, the
// test issuer binds a token to that thumbprint, and:
//   - a proof without a nonce gets 401 use_dpop_nonce with a DPoP-Nonce, and
//     node's proof with that nonce passes (the retry DPoP clients make),
//     reaching the upstream with node's thumbprint, the DPoP token type and
//     no proof header;
//   - the same proof again is a replay; node's proofs for another URL (htu)
//     and another method (htm) are refused with invalid_dpop_proof; a token
//     bound to another key with node's proof is refused with invalid_token.
//
// Agreement both ways: tokenward's thumbprint of the proof's jwk must equal
// node's (the binding check), and tokenward's signature, ath and htu checks
// must accept node's encodings. Ed25519 is RFC 9864's name for EdDSA with
// an Ed25519 key, which the dpop package (2.x) writes.
func TestDPoPIndependentClientBinary(t *testing.T) {
	iss := newIssuer(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"jkt": r.Header.Get("X-Auth-DPoP-JKT"),
			"type": r.Header.Get("X-Auth-Token-Type"), "proof": r.Header.Get("DPoP")})
	}))
	t.Cleanup(up.Close)
	secret := make([]byte, 32)
	rand.Read(secret)
	secretFile := filepath.Join(t.TempDir(), "nonce.key")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	startTokenward(t, map[string]string{
		"TOKENWARD_ISSUERS":                iss.URL(),
		"TOKENWARD_AUDIENCES":              audience,
		"TOKENWARD_UPSTREAM":               up.URL,
		"TOKENWARD_LISTEN_ADDR":            addr,
		"TOKENWARD_DPOP_ALGORITHMS":        "ES256,Ed25519",
		"TOKENWARD_DPOP_NONCE":             "true",
		"TOKENWARD_DPOP_NONCE_SECRET_FILE": secretFile,
		"TOKENWARD_CLAIM_HEADERS":          "cnf.jkt=X-Auth-DPoP-JKT",
		"TOKENWARD_TOKEN_TYPE_HEADER":      "X-Auth-Token-Type",
	})
	client := &http.Client{Timeout: 20 * time.Second}
	url := "http://" + addr + "/api/contacts/7"
	send := func(token, proof string) (*http.Response, map[string]any) {
		t.Helper()
		req, err := http.NewRequest("GET", url+"?page=2", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "DPoP "+token)
		req.Header.Set("DPoP", proof)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if resp.StatusCode == 200 {
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
		}
		return resp, body
	}
	challenge := func(resp *http.Response) string { return strings.Join(resp.Header.Values("WWW-Authenticate"), ", ") }

	for _, alg := range []string{"ES256", "Ed25519"} {
		t.Run(alg, func(t *testing.T) {
			node := startDPoPClient(t, alg)
			token, err := iss.Mint(iss.Claims(audience, map[string]any{"scope": "read:contacts", "cnf": map[string]any{"jkt": node.jkt}}))
			if err != nil {
				t.Fatal(err)
			}

			// The nonce round trip.
			resp, _ := send(token, node.proof(t, "GET", url, token, ""))
			nonce := resp.Header.Get("DPoP-Nonce")
			if resp.StatusCode != 401 || !strings.Contains(challenge(resp), `error="use_dpop_nonce"`) || nonce == "" {
				t.Fatalf("no nonce: status %d, challenge %q, DPoP-Nonce %q; want 401 use_dpop_nonce with a nonce", resp.StatusCode, challenge(resp), nonce)
			}
			proof := node.proof(t, "GET", url, token, nonce)
			resp, body := send(token, proof)
			if resp.StatusCode != 200 {
				t.Fatalf("with the nonce: status %d, challenge %q", resp.StatusCode, challenge(resp))
			}
			if body["jkt"] != node.jkt || body["type"] != "DPoP" || body["proof"] != "" {
				t.Errorf("the upstream got %v; want node's thumbprint %s, type DPoP, no proof", body, node.jkt)
			}
			resp, _ = send(token, proof)
			if resp.StatusCode != 401 || !strings.Contains(challenge(resp), `error="invalid_dpop_proof"`) {
				t.Errorf("replayed: status %d, challenge %q; want 401 invalid_dpop_proof", resp.StatusCode, challenge(resp))
			}

			for name, p := range map[string]string{
				"htu": node.proof(t, "GET", "http://"+addr+"/api/contacts/8", token, nonce),
				"htm": node.proof(t, "POST", url, token, nonce),
			} {
				resp, _ := send(token, p)
				if resp.StatusCode != 401 || !strings.Contains(challenge(resp), `error="invalid_dpop_proof"`) {
					t.Errorf("wrong %s: status %d, challenge %q; want 401 invalid_dpop_proof", name, resp.StatusCode, challenge(resp))
				}
			}
			other, err := jwkstest.NewProofKey("ES256")
			if err != nil {
				t.Fatal(err)
			}
			foreign, err := iss.MintDPoP(iss.Claims(audience, nil), other)
			if err != nil {
				t.Fatal(err)
			}
			resp, _ = send(foreign, node.proof(t, "GET", url, foreign, nonce))
			if resp.StatusCode != 401 || !strings.Contains(challenge(resp), `error="invalid_token"`) {
				t.Errorf("token bound to another key: status %d, challenge %q; want 401 invalid_token", resp.StatusCode, challenge(resp))
			}
		})
	}
}
