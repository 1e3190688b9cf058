package middleware_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/scopes"
)

// dpopBench is a guard over a cached validator (clock at epoch) and a
// DPoP-bound token for alg's proof key.
type dpopBench struct {
	g      *middleware.Guard
	key    *jwkstest.ProofKey
	token  string
	bearer string // an unbound token of the same issuer
	req    middleware.Request
}

const benchHTU = "https://api.example.com/contacts"

func newDPoPBench(b *testing.B, alg string) *dpopBench {
	b.Helper()
	signer := newKey(b, "RS256")
	v := staticFixture(b, signer, middleware.ValidatorOptions{CacheSize: 1000})
	pk := proofKey(b, alg)
	c := auth0Claims(b, epoch)
	c["cnf"] = map[string]any{"jkt": pk.Thumbprint()}
	token := sign(b, signer, nil, c)
	g, err := middleware.NewGuard(v, middleware.GuardOptions{DPoP: middleware.DPoPOptions{Algorithms: []string{alg}}})
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse("/contacts")
	req := middleware.Request{Method: "GET", URL: u, Host: "api.example.com", Scheme: "https",
		Header: http.Header{"Authorization": {"DPoP " + token}}}
	return &dpopBench{g: g, key: pk, token: token, bearer: sign(b, signer, nil, auth0Claims(b, epoch)), req: req}
}

func (d *dpopBench) proofs(b *testing.B, n int) []string {
	b.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = proof(b, d.key, "GET", benchHTU, d.token, jwkstest.WithIssuedAt(epoch))
	}
	return out
}

// BenchmarkDPoPCheck is a DPoP request's whole decision through Guard.Check
// with the access token cached and the in-memory replay store: a fresh
// proof each time (proofs are never cached), made before the timer starts.
// Compare with BenchmarkDPoPProofVerifyBare + BenchmarkDPoPBearerCheckCached.
func BenchmarkDPoPCheck(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			d := newDPoPBench(b, alg)
			ctx := context.Background()
			warm := d.proofs(b, 1)
			d.req.Header["Dpop"] = warm
			if _, err := d.g.Check(ctx, d.req, scopes.Requirement{}); err != nil {
				b.Fatal(err) // and the token is now cached
			}
			proofs := d.proofs(b, b.N)
			hdr := d.req.Header
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				hdr["Dpop"] = proofs[i : i+1]
				if _, err := d.g.Check(ctx, d.req, scopes.Requirement{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// verifyBare is a proof's signature check with the standard library alone:
// the floor a DPoP check is measured against.
func verifyBare(pub crypto.PublicKey, input, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		digest := sha256.Sum256(input)
		return ecdsa.Verify(k, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	case ed25519.PublicKey:
		return ed25519.Verify(k, input, sig)
	}
	return false
}

// BenchmarkDPoPProofVerifyBare is the floor of the proof: hashing its
// signing input and verifying its signature with its key, nothing else.
func BenchmarkDPoPProofVerifyBare(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			d := newDPoPBench(b, alg)
			p := d.proofs(b, 1)[0]
			dot := strings.LastIndexByte(p, '.')
			input := []byte(p[:dot])
			sig, err := b64.DecodeString(p[dot+1:])
			if err != nil {
				b.Fatal(err)
			}
			pub := d.key.Key().Public()
			b.ReportAllocs()
			for b.Loop() {
				if !verifyBare(pub, input, sig) {
					b.Fatal("signature does not verify")
				}
			}
		})
	}
}

// BenchmarkDPoPBearerCheckCached is Guard.Check of the same access token
// from the cache, without DPoP: what a DPoP request costs besides its proof.
func BenchmarkDPoPBearerCheckCached(b *testing.B) {
	signer := newKey(b, "RS256")
	v := staticFixture(b, signer, middleware.ValidatorOptions{CacheSize: 1000})
	token := sign(b, signer, nil, auth0Claims(b, epoch))
	g, err := middleware.NewGuard(v, middleware.GuardOptions{})
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse("/contacts")
	req := middleware.Request{Method: "GET", URL: u, Host: "api.example.com", Scheme: "https",
		Header: http.Header{"Authorization": {"Bearer " + token}}}
	ctx := context.Background()
	if _, err := g.Check(ctx, req, scopes.Requirement{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Check(ctx, req, scopes.Requirement{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDPoPOverhead interleaves, in each iteration, the three costs the
// other DPoP benchmarks measure apart — a DPoP Check with a fresh proof, the
// bare verification of a proof's signature, a cached bearer Check — and
// reports the ratio check/(bare+bearer), so that load on a shared machine
// weighs on both sides alike. The target is at most 1.25.
func BenchmarkDPoPOverhead(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			d := newDPoPBench(b, alg)
			ctx := context.Background()
			d.req.Header["Dpop"] = d.proofs(b, 1)
			if _, err := d.g.Check(ctx, d.req, scopes.Requirement{}); err != nil {
				b.Fatal(err)
			}
			// The bearer side: the same validator's cache, another token.
			bearerTok := d.bearer
			bearerReq := d.req
			bearerReq.Header = http.Header{"Authorization": {"Bearer " + bearerTok}}
			if _, err := d.g.Check(ctx, bearerReq, scopes.Requirement{}); err != nil {
				b.Fatal(err)
			}
			p := d.proofs(b, 1)[0]
			dot := strings.LastIndexByte(p, '.')
			input := []byte(p[:dot])
			sig, _ := b64.DecodeString(p[dot+1:])
			pub := d.key.Key().Public()
			proofs := d.proofs(b, b.N)
			hdr := d.req.Header
			var check, bare, bearer time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				hdr["Dpop"] = proofs[i : i+1]
				if _, err := d.g.Check(ctx, d.req, scopes.Requirement{}); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if !verifyBare(pub, input, sig) {
					b.Fatal("signature does not verify")
				}
				t2 := time.Now()
				if _, err := d.g.Check(ctx, bearerReq, scopes.Requirement{}); err != nil {
					b.Fatal(err)
				}
				t3 := time.Now()
				check += t1.Sub(t0)
				bare += t2.Sub(t1)
				bearer += t3.Sub(t2)
			}
			n := float64(b.N)
			b.ReportMetric(float64(check.Nanoseconds())/n, "check-ns/op")
			b.ReportMetric(float64(bare.Nanoseconds())/n, "bare-ns/op")
			b.ReportMetric(float64(bearer.Nanoseconds())/n, "bearer-ns/op")
			b.ReportMetric(float64(check)/float64(bare+bearer), "ratio")
		})
	}
}
