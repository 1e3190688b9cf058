package jwks

import (
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"os"
	"strings"
	"testing"
)

// rocaModulus reads a modulus, in hex, from testdata/roca.
func rocaModulus(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/roca/" + name + ".hex")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// The detector against the ROCA test suite's moduli (testdata/roca, see its
// README for their source): its positives, its negative, and
// a modulus its older per-prime test flagged wrongly (fingerprint/tests,
// test_fake_mods), which the subgroup test must not.
func TestROCAFingerprint(t *testing.T) {
	hexN := func(s string) *big.Int {
		n, ok := new(big.Int).SetString(s, 16)
		if !ok {
			t.Fatalf("bad modulus %.16s…", s)
		}
		return n
	}
	decN := func(s string) *big.Int {
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			t.Fatalf("bad modulus %.16s…", s)
		}
		return n
	}
	for _, tt := range []struct {
		name string
		n    *big.Int
		want bool
	}{
		{"mod03 (2048 bits, vulnerable)", hexN(rocaModulus(t, "mod03")), true},
		{"mod08 (1025 bits, vulnerable)", hexN(rocaModulus(t, "mod08")), true},
		{"mod04 (2048 bits, sound)", hexN(rocaModulus(t, "mod04")), false},
		{"fake modulus 0 of the old detector", decN("72414128973967872688332736535017614208620368242015797102796086827882754006260204061799547004983731426777596445658889886861027045033760014948048067467947960318205453778973975867532910489227970143091184725760290172935872752222320334100097730483600892686353719855397381316384244147860260153198611313067061116317"), false},
	} {
		if got := hasROCAFingerprint(tt.n); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	// Keys from crypto/rsa do not have it.
	for range 5 {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		if hasROCAFingerprint(k.N) {
			t.Fatal("a crypto/rsa key has the fingerprint")
		}
	}
}
