package extauthz_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tokenward/tokenward/dpop"
	"github.com/tokenward/tokenward/extauthz"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
	"github.com/tokenward/tokenward/scopes"
)

// TestCheckDPoP: over gRPC ext_authz, a DPoP request is judged against the
// URL Envoy names (its scheme attribute, host and path); a refusal carries
// the DPoP challenge and DPoP-Nonce; an allow tells Envoy to remove the
// proof and to add the rotated DPoP-Nonce to the client's answer.
func TestCheckDPoP(t *testing.T) {
	iss := jwkstest.NewIssuer()
	t.Cleanup(iss.Close)
	keys, err := jwks.NewRemote(iss.JWKSURL(), jwks.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	var clockNs atomic.Int64 // read by the server's goroutines
	clockNs.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clockNs.Load()) }
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: iss.URL(), Keys: keys}}, []string{audience},
		middleware.ValidatorOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	r, err := proxy.ParseRules([]byte(rules), scopes.All("api"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := dpop.NewNonces([]byte(strings.Repeat("n", 32)), dpop.NonceOptions{Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	fa, err := proxy.NewForwardAuth(proxy.Config{Validator: v, Rules: r, DPoP: middleware.DPoPOptions{Nonces: n, MaxAge: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := extauthz.New(fa, extauthz.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := authv3.NewAuthorizationClient(conn)

	key, err := jwkstest.NewProofKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.MintDPoP(iss.Claims(audience, map[string]any{"scope": "api read:contacts"}), key)
	if err != nil {
		t.Fatal(err)
	}
	const htu = "https://api.example.com/api/contacts/1"
	check := func(htu string, opts ...jwkstest.ProofOption) *authv3.CheckResponse {
		t.Helper()
		opts = append(opts, jwkstest.WithIssuedAt(now()))
		p, err := key.Proof("GET", htu, tok, opts...)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Check(context.Background(), envoyRequest("GET", "/api/contacts/1?x=1", "authorization", "DPoP "+tok, "dpop", p))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	a := read(t, check(htu))
	if a.status != 401 || a.headers["dpop-nonce"] != n.Current(now()) ||
		!strings.HasPrefix(a.headers["www-authenticate"], `DPoP realm="api", algs="ES256", error="use_dpop_nonce"`) {
		t.Fatalf("no nonce: %+v", a)
	}
	first := n.Current(now())
	resp := check(htu, jwkstest.WithNonce(first))
	if a := read(t, resp); a.status != 200 || !slices.Contains(a.remove, "dpop") {
		t.Fatalf("with the nonce: %+v", a)
	}
	if add := resp.GetOkResponse().GetResponseHeadersToAdd(); len(add) != 0 {
		t.Errorf("response headers %v while the nonce is current", add)
	}
	// The window rotates: the allow carries the new nonce for the client.
	clockNs.Add(int64(time.Minute))
	resp = check(htu, jwkstest.WithNonce(first))
	add := resp.GetOkResponse().GetResponseHeadersToAdd()
	if read(t, resp).status != 200 || len(add) != 1 || add[0].GetHeader().GetKey() != "dpop-nonce" || add[0].GetHeader().GetValue() != n.Current(now()) {
		t.Errorf("rotated nonce: response headers %v", add)
	}
	// A proof for http, or another host, than Envoy names.
	for _, bad := range []string{"http://api.example.com/api/contacts/1", "https://other.example.com/api/contacts/1"} {
		if a := read(t, check(bad, jwkstest.WithNonce(n.Current(now())))); a.status != 401 ||
			!strings.Contains(a.headers["www-authenticate"], `error="invalid_dpop_proof"`) {
			t.Errorf("proof for %s: %+v", bad, a)
		}
	}
}
