package jwkstest_test

// An independent JWS verifier for the tests: it decodes the JWKS with
// encoding/json and math/big and verifies with crypto/* directly, sharing no
// code with the package, so a wrong encoding on either side shows.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// rawJWK is a JWK as published, every member kept, to check none is private.
type rawJWK map[string]any

func (j rawJWK) str(name string) string { s, _ := j[name].(string); return s }

// get fetches url and returns the status, the header and the body.
func get(t *testing.T, url string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, resp.Header, body
}

// fetchJWKS returns the keys the JWKS at url publishes, by kid, in order.
func fetchJWKS(t *testing.T, url string) ([]string, map[string]rawJWK) {
	t.Helper()
	status, _, body := get(t, url)
	if status != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, status)
	}
	var set struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("decoding JWKS: %v\n%s", err, body)
	}
	var kids []string
	keys := map[string]rawJWK{}
	for _, k := range set.Keys {
		kids = append(kids, k.str("kid"))
		keys[k.str("kid")] = k
	}
	return kids, keys
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

var curves = map[string]struct {
	curve elliptic.Curve
	size  int
}{
	"P-256": {elliptic.P256(), 32},
	"P-384": {elliptic.P384(), 48},
	"P-521": {elliptic.P521(), 66},
}

// publicKey decodes the public key of j.
func publicKey(j rawJWK) (crypto.PublicKey, error) {
	switch j.str("kty") {
	case "RSA":
		n, err1 := b64(j.str("n"))
		e, err2 := b64(j.str("e"))
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	case "EC":
		c, ok := curves[j.str("crv")]
		if !ok {
			return nil, fmt.Errorf("crv %q", j.str("crv"))
		}
		x, err1 := b64(j.str("x"))
		y, err2 := b64(j.str("y"))
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		if len(x) != c.size || len(y) != c.size { // RFC 7518 §6.2.1.2: full length
			return nil, fmt.Errorf("x, y are %d, %d bytes, want %d", len(x), len(y), c.size)
		}
		// Also checks that the point is on the curve.
		return ecdsa.ParseUncompressedPublicKey(c.curve, slices.Concat([]byte{4}, x, y))
	case "OKP":
		if j.str("crv") != "Ed25519" {
			return nil, fmt.Errorf("crv %q", j.str("crv"))
		}
		x, err := b64(j.str("x"))
		if err != nil {
			return nil, err
		}
		if len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("x is %d bytes", len(x))
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("kty %q", j.str("kty"))
}

var hashes = map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}

// verify checks the signature of token with pub for alg, and returns its
// header and claims.
func verify(token string, pub crypto.PublicKey, alg string) (header, claims map[string]any, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, nil, fmt.Errorf("%d parts", len(parts))
	}
	sig, err := b64(parts[2])
	if err != nil {
		return nil, nil, fmt.Errorf("signature: %w", err)
	}
	input := []byte(parts[0] + "." + parts[1])
	var digest []byte
	hash := hashes[alg[len(alg)-3:]]
	if hash != 0 {
		h := hash.New()
		h.Write(input)
		digest = h.Sum(nil)
	}
	switch {
	case strings.HasPrefix(alg, "RS"):
		err = rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), hash, digest, sig)
	case strings.HasPrefix(alg, "PS"):
		// An explicit salt length: verification fails on any other.
		err = rsa.VerifyPSS(pub.(*rsa.PublicKey), hash, digest, sig, &rsa.PSSOptions{SaltLength: hash.Size()})
	case strings.HasPrefix(alg, "ES"):
		pk := pub.(*ecdsa.PublicKey)
		size := (pk.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return nil, nil, fmt.Errorf("ECDSA signature is %d bytes, want %d (raw R||S)", len(sig), 2*size)
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(pk, digest, r, s) {
			err = errors.New("ECDSA verification failed")
		}
	case alg == "EdDSA":
		if !ed25519.Verify(pub.(ed25519.PublicKey), input, sig) {
			err = errors.New("Ed25519 verification failed")
		}
	default:
		err = fmt.Errorf("alg %q", alg)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := decodePart(parts[0], &header); err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	if err := decodePart(parts[1], &claims); err != nil {
		return nil, nil, fmt.Errorf("claims: %w", err)
	}
	return header, claims, nil
}

func decodePart(part string, v any) error {
	b, err := b64(part)
	if err != nil {
		return err
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	return d.Decode(v)
}

// decodeHeader returns the header of token, unverified.
func decodeHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	var h map[string]any
	if err := decodePart(strings.Split(token, ".")[0], &h); err != nil {
		t.Fatalf("header of %s: %v", token, err)
	}
	return h
}
