package interop_test

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks/jwkstest"
)

// dpopClientDir holds client.js, which makes DPoP keys and proofs with
// panva's npm package dpop (2.x, and 1.x as "dpop1"), installed by npm ci
// from the lock file.
const dpopClientDir = "testdata/dpop-client"

// nodeDPoP is client.js running: one JSON request per line, one answer per
// line.
type nodeDPoP struct {
	t   *testing.T
	mu  sync.Mutex // guards in, out and id: one request at a time
	in  io.Writer
	out *bufio.Scanner
	id  int
}

func startNodeDPoP(t *testing.T) *nodeDPoP {
	t.Helper()
	install := "apt-get install -y nodejs npm; cd interop/" + dpopClientDir + " && npm ci"
	node, err := exec.LookPath("node")
	if err != nil {
		missingRuntime(t, "node", install)
	}
	for _, m := range []string{"dpop", "dpop1"} {
		if _, err := os.Stat(filepath.Join(dpopClientDir, "node_modules", m, "package.json")); err != nil {
			missingRuntime(t, "npm package "+m, install)
		}
	}
	cmd := exec.Command(node, "client.js")
	cmd.Dir = dpopClientDir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // client.js ends with its input
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("client.js stderr:\n%s", stderr)
		}
	})
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &nodeDPoP{t: t, in: stdin, out: sc}
}

// call sends one request to client.js and decodes its answer into out.
func (n *nodeDPoP) call(req map[string]any, out any) {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.id++
	req["id"] = n.id
	line, _ := json.Marshal(req)
	if _, err := n.in.Write(append(line, '\n')); err != nil {
		n.t.Fatalf("client.js: %v", err)
	}
	if !n.out.Scan() {
		n.t.Fatalf("client.js ended: %v", n.out.Err())
	}
	var e struct {
		ID    int    `json:"id"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(n.out.Bytes(), &e); err != nil || e.ID != n.id {
		n.t.Fatalf("client.js answered %q to request %d", n.out.Bytes(), n.id)
	}
	if e.Error != "" {
		n.t.Fatalf("client.js: %s", e.Error)
	}
	if err := json.Unmarshal(n.out.Bytes(), out); err != nil {
		n.t.Fatal(err)
	}
}

// key makes a key pair in node with lib ("dpop" or "dpop1") and alg, and
// returns its name and its RFC 7638 thumbprint as the dpop package
// computes it.
func (n *nodeDPoP) key(lib, alg string) (name, jkt string) {
	var out struct{ Key, JKT string }
	n.call(map[string]any{"op": "key", "lib": lib, "alg": alg}, &out)
	return out.Key, out.JKT
}

// proof has node make a proof with key.
func (n *nodeDPoP) proof(key, method, htu, nonce, token string) string {
	var out struct{ Proof string }
	n.call(map[string]any{"op": "proof", "key": key, "htm": method, "htu": htu, "nonce": nonce, "token": token}, &out)
	return out.Proof
}

// TestDPoPNodeClient: proofs made by panva's npm package dpop, which we did
// not write, pass through the real binary, and its broken variants do not.
// For each key type, node makes the key and computes its thumbprint, the
// test issuer binds a token to that thumbprint (cnf.jkt), and:
//   - a proof without a nonce gets 401 use_dpop_nonce and a DPoP-Nonce, and
//     node's proof with that nonce passes (the dpop package's clients retry
//     so), reaching the upstream with node's thumbprint and no proof header;
//   - node's proof for another URL (htu) and for another method (htm) are
//     refused with invalid_dpop_proof.
//
// Agreement is checked both ways: tokenward's thumbprint of the proof's jwk
// must equal node's (the binding check), and tokenward's ath, htu and
// signature checks must accept node's encodings.
func TestDPoPNodeClient(t *testing.T) {
	node := startNodeDPoP(t)
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
		"TOKENWARD_DPOP_ALGORITHMS":        "ES256,EdDSA,Ed25519",
		"TOKENWARD_DPOP_NONCE":             "true",
		"TOKENWARD_DPOP_NONCE_SECRET_FILE": secretFile,
		"TOKENWARD_CLAIM_HEADERS":          "cnf.jkt=X-Auth-DPoP-JKT",
		"TOKENWARD_TOKEN_TYPE_HEADER":      "X-Auth-Token-Type",
	})
	client := &http.Client{Timeout: 20 * time.Second}
	url := "http://" + addr + "/api/contacts/7"
	send := func(method, token, proof string) (*http.Response, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, url+"?page=2", nil)
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

	for _, tc := range []struct{ lib, alg string }{
		{"dpop", "ES256"},   // dpop 2.x
		{"dpop1", "ES256"},  // dpop 1.x
		{"dpop1", "EdDSA"},  // dpop 1.x names Ed25519 proofs EdDSA (RFC 8037)
		{"dpop", "Ed25519"}, // dpop 2.x names them Ed25519 (RFC 9864)
	} {
		t.Run(tc.lib+"/"+tc.alg, func(t *testing.T) {
			key, jkt := node.key(tc.lib, tc.alg)
			claims := iss.Claims(audience, map[string]any{"scope": "read:contacts", "cnf": map[string]any{"jkt": jkt}})
			token, err := iss.Mint(claims)
			if err != nil {
				t.Fatal(err)
			}

			// The nonce round trip.
			resp, _ := send("GET", token, node.proof(key, "GET", url, "", token))
			nonce := resp.Header.Get("DPoP-Nonce")
			if resp.StatusCode != 401 || !strings.Contains(challenge(resp), `error="use_dpop_nonce"`) || nonce == "" {
				t.Fatalf("no nonce: status %d, challenge %q, DPoP-Nonce %q; want 401 use_dpop_nonce with a nonce", resp.StatusCode, challenge(resp), nonce)
			}
			proof := node.proof(key, "GET", url, nonce, token)
			resp, body := send("GET", token, proof)
			if resp.StatusCode != 200 {
				t.Fatalf("with the nonce: status %d, challenge %q", resp.StatusCode, challenge(resp))
			}
			if body["jkt"] != jkt || body["type"] != "DPoP" || body["proof"] != "" {
				t.Errorf("the upstream got %v; want node's thumbprint %s, type DPoP, no proof", body, jkt)
			}
			// The same proof again: a replay.
			resp, _ = send("GET", token, proof)
			if resp.StatusCode != 401 || !strings.Contains(challenge(resp), `error="invalid_dpop_proof"`) {
				t.Errorf("replayed: status %d, challenge %q; want 401 invalid_dpop_proof", resp.StatusCode, challenge(resp))
			}

			// Node's proofs for another URL and another method.
			for name, p := range map[string]string{
				"htu": node.proof(key, "GET", "http://"+addr+"/api/contacts/8", nonce, token),
				"htm": node.proof(key, "POST", url, nonce, token),
			} {
				resp, _ := send("GET", token, p)
				if resp.StatusCode != 401 || !strings.Contains(challenge(resp), `error="invalid_dpop_proof"`) {
					t.Errorf("wrong %s: status %d, challenge %q; want 401 invalid_dpop_proof", name, resp.StatusCode, challenge(resp))
				}
			}
			// A token bound to another key.
			other, err := jwkstest.NewProofKey("ES256")
			if err != nil {
				t.Fatal(err)
			}
			foreign, err := iss.MintDPoP(iss.Claims(audience, nil), other)
			if err != nil {
				t.Fatal(err)
			}
			resp, _ = send("GET", foreign, node.proof(key, "GET", url, nonce, foreign))
			if resp.StatusCode != 401 || !strings.Contains(challenge(resp), `error="invalid_token"`) {
				t.Errorf("token bound to another key: status %d, challenge %q; want 401 invalid_token", resp.StatusCode, challenge(resp))
			}
		})
	}
}
