package dpop

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"math/big"
	"slices"
	"testing"
)

// TestSmallOrderList checks the list against the curve: each y maps to a
// Montgomery u = (1+y)/(1-y) that X25519 refuses as a low-order point (y=1
// is the identity, u at infinity), and a real key is not on it.
func TestSmallOrderList(t *testing.T) {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	priv, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, enc := range smallOrderY {
		le := enc
		slices.Reverse(le[:])
		y := new(big.Int).Mod(new(big.Int).SetBytes(le[:]), p)
		if y.Cmp(big.NewInt(1)) == 0 {
			continue // the identity
		}
		num := new(big.Int).Add(big.NewInt(1), y)
		den := new(big.Int).Mod(new(big.Int).Sub(big.NewInt(1), y), p)
		u := new(big.Int).Mod(num.Mul(num, new(big.Int).ModInverse(den, p)), p)
		ub := make([]byte, 32)
		u.FillBytes(ub)
		slices.Reverse(ub)
		pub, err := ecdh.X25519().NewPublicKey(ub)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := priv.ECDH(pub); err == nil {
			t.Errorf("y %x is not of small order", enc)
		}
	}
	pk, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if smallOrder(pk) {
		t.Error("a random key is taken for a small-order point")
	}
}
