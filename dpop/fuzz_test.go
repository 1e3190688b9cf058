package dpop_test

import (
	"strings"
	"testing"

	"github.com/tokenward/tokenward/dpop"
	"github.com/tokenward/tokenward/jwks/jwkstest"
)

// FuzzParse: no input panics the proof parser; whatever it accepts has a
// key, a thumbprint and an allowed algorithm.
func FuzzParse(f *testing.F) {
	f.Add(rfcProof)
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		k, err := jwkstest.NewProofKey(alg)
		if err != nil {
			f.Fatal(err)
		}
		p, err := k.Proof("GET", "https://api.example.com/x", "tok", jwkstest.WithNonce("n"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
	}
	f.Add("a.b.c")
	f.Add(strings.Repeat("e", 100))
	v, err := dpop.NewVerifier(dpop.VerifierOptions{Algorithms: dpop.Algorithms})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := v.Parse(proof)
		if err != nil {
			return
		}
		if p.Key == nil || len(p.Thumbprint) != 43 || p.Algorithm == "" {
			t.Fatalf("accepted %+v", p)
		}
		if len(proof) > dpop.DefaultMaxBytes {
			t.Fatal("accepted an oversized proof")
		}
	})
}
