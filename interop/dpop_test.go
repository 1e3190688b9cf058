package interop_test

import (
	"bufio"
	"bytes"
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

	"github.com/tokenward/tokenward/dpop"
	"github.com/tokenward/tokenward/middleware"
)

// dpopClient is testdata/dpopclient/client.js: proofs made by the npm
// package dpop (RFC 9449), a client we did not write.
type dpopClient struct {
	jkt    string
	in     io.Writer
	out    *bufio.Scanner
	stderr *bytes.Buffer
}

func startDPoPClient(t *testing.T, alg string) *dpopClient {
	t.Helper()
	dir := filepath.Join("testdata", "dpopclient")
	install := "apt-get install -y nodejs npm; cd interop/" + dir + " && npm ci"
	node, err := exec.LookPath("node")
	if err != nil {
		missingRuntime(t, "node", install)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "dpop", "package.json")); err != nil {
		missingRuntime(t, "npm package dpop", install)
	}
	cmd := exec.Command(node, "client.js", alg)
	cmd.Dir = dir
	c := &dpopClient{stderr: &bytes.Buffer{}}
	cmd.Stderr = c.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close() // the client ends with its input
		if err := cmd.Wait(); err != nil {
			t.Errorf("dpop client: %v\n%s", err, c.stderr)
		}
	})
	c.in, c.out = in, bufio.NewScanner(out)
	line := c.line(t)
	jkt, ok := strings.CutPrefix(line, "JKT ")
	if !ok {
		t.Fatalf("dpop client said %q\n%s", line, c.stderr)
	}
	c.jkt = jkt
	return c
}

func (c *dpopClient) line(t *testing.T) string {
	t.Helper()
	if !c.out.Scan() {
		t.Fatalf("dpop client: no output (%v)\n%s", c.out.Err(), c.stderr)
	}
	return c.out.Text()
}

// proof asks the client for a proof of a request.
func (c *dpopClient) proof(t *testing.T, htm, htu, token, nonce string) string {
	t.Helper()
	q, _ := json.Marshal(map[string]string{"htm": htm, "htu": htu, "token": token, "nonce": nonce})
	if _, err := c.in.Write(append(q, '\n')); err != nil {
		t.Fatal(err)
	}
	return c.line(t)
}

// TestDPoPIndependentClient: proofs made by the npm package dpop, for
// tokens of the test issuer bound to its key (by its own RFC 7638
// thumbprint), pass the middleware — ES256, Ed25519 (RFC 9864's name,
// which that client sends) and PS256 — and its server nonce dance works;
// the same client's proofs for another URL or method, replayed, or for
// another token are refused, each for its reason.
func TestDPoPIndependentClient(t *testing.T) {
	iss := newIssuer(t)
	v := newValidator(t, iss)
	nonces, err := dpop.NewNonces([]byte(strings.Repeat("n", 32)), dpop.NonceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"ES256", "Ed25519", "PS256"} {
		t.Run(alg, func(t *testing.T) {
			client := startDPoPClient(t, alg)
			var (
				mu   sync.Mutex // guards last, written by the server
				last middleware.Outcome
			)
			mw, err := middleware.New(v, middleware.Options{
				DPoP: middleware.DPoPOptions{Algorithms: []string{alg}, Nonces: nonces},
				Observe: func(_ *http.Request, o middleware.Outcome) {
					mu.Lock()
					last = o
					mu.Unlock()
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			api := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, _ := middleware.ClaimsFrom(r.Context())
				w.Write([]byte(c.TokenType))
			})))
			t.Cleanup(api.Close)
			claims := iss.Claims(audience, map[string]any{"cnf": map[string]any{"jkt": client.jkt}})
			token, err := iss.Mint(claims)
			if err != nil {
				t.Fatal(err)
			}
			other, err := iss.Mint(iss.Claims(audience, map[string]any{"cnf": map[string]any{"jkt": client.jkt}, "jti": "other"}))
			if err != nil {
				t.Fatal(err)
			}
			url := api.URL + "/contacts"
			send := func(method, token, proof string) *http.Response {
				t.Helper()
				req, err := http.NewRequest(method, url+"?page=1", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "DPoP "+token)
				req.Header.Set("DPoP", proof)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp
			}
			refused := func(resp *http.Response, want middleware.Reason) {
				t.Helper()
				mu.Lock()
				err := last.Err
				mu.Unlock()
				if resp.StatusCode != 401 || err == nil || err.Reason != want {
					t.Errorf("status %d, reason %v; want 401 %s", resp.StatusCode, err, want)
				}
			}

			// Without a nonce: 401 use_dpop_nonce with one, which the
			// client then puts in its proof.
			resp := send("GET", token, client.proof(t, "GET", url, token, ""))
			refused(resp, middleware.ReasonDPoPNonce)
			nonce := resp.Header.Get("DPoP-Nonce")
			if nonce == "" {
				t.Fatal("no DPoP-Nonce")
			}
			proof := client.proof(t, "GET", url, token, nonce)
			if resp := send("GET", token, proof); resp.StatusCode != 200 {
				t.Fatalf("the client's proof with the nonce: %d", resp.StatusCode)
			}
			refused(send("GET", token, proof), middleware.ReasonDPoPReplay)
			refused(send("GET", token, client.proof(t, "POST", url, token, nonce)), middleware.ReasonDPoPMethod)
			refused(send("GET", token, client.proof(t, "GET", api.URL+"/other", token, nonce)), middleware.ReasonDPoPURL)
			refused(send("GET", other, client.proof(t, "GET", url, token, nonce)), middleware.ReasonDPoPATH)
			refused(send("GET", token, client.proof(t, "GET", url, token, "stale")), middleware.ReasonDPoPNonce)
		})
	}
}
