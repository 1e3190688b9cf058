package jwks_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io/fs"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tokenward/tokenward/jwks"
)

func TestStatic(t *testing.T) {
	rs, es, ed := newKey(t, "RS256"), newKey(t, "ES384"), newKey(t, "EdDSA")
	s, err := jwks.NewStatic(jwksJSON(t, publicJWK(t, rs), publicJWK(t, es), publicJWK(t, ed)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 {
		t.Errorf("Len() = %d, want 3", s.Len())
	}
	if st := s.Status(); !st.Loaded || st.Keys != 3 {
		t.Errorf("Status() = %+v", st)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		kid, alg string
		pub      func(any) bool
	}{
		{rs.ID, "RS256", func(p any) bool { k, ok := p.(*rsa.PublicKey); return ok && k.Equal(rs.Public()) }},
		{es.ID, "ES384", func(p any) bool { k, ok := p.(*ecdsa.PublicKey); return ok && k.Equal(es.Public()) }},
		{ed.ID, "EdDSA", func(p any) bool { k, ok := p.(ed25519.PublicKey); return ok && k.Equal(ed.Public()) }},
	} {
		k, err := s.Key(ctx, tt.kid)
		if err != nil {
			t.Errorf("Key(%q): %v", tt.kid, err)
			continue
		}
		if k.ID != tt.kid || k.Algorithm != tt.alg || !tt.pub(k.Public) {
			t.Errorf("Key(%q) = %q %q %T", tt.kid, k.ID, k.Algorithm, k.Public)
		}
	}
	for _, kid := range []string{"", "nope", "../../etc/passwd", strings.ToUpper(rs.ID)} {
		if _, err := s.Key(ctx, kid); !errors.Is(err, jwks.ErrKeyNotFound) {
			t.Errorf("Key(%q) = %v, want ErrKeyNotFound", kid, err)
		}
	}
}

// parseCase is a key set and what NewStatic makes of it.
type parseCase struct {
	name    string
	set     []byte
	wantErr string   // "" for success
	found   []string // kids that must be found
	missing []string // kids that must not
}

func TestStaticParse(t *testing.T) {
	rs, es := newKey(t, "RS256"), newKey(t, "ES256")
	jwk := func(mod func(map[string]any)) map[string]any {
		j := publicJWK(t, es)
		if mod != nil {
			mod(j)
		}
		return j
	}
	rsJWK := publicJWK(t, rs)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallJWK := maps.Clone(rsJWK)
	smallJWK["kid"] = "small"
	smallJWK["n"] = b64.EncodeToString(small.N.Bytes())
	smallJWK["e"] = b64.EncodeToString(big.NewInt(int64(small.E)).Bytes())

	tests := []parseCase{
		{name: "one key", set: jwksJSON(t, jwk(nil)), found: []string{es.ID, ""}},
		{name: "one key without kid is the key for tokens without kid",
			set: jwksJSON(t, jwk(func(j map[string]any) { delete(j, "kid") })), found: []string{""}},
		{name: "two keys: no default key",
			set: jwksJSON(t, jwk(nil), rsJWK), found: []string{es.ID, rs.ID}, missing: []string{""}},
		{name: "keys without kid in a set of several are dropped",
			set: jwksJSON(t, jwk(nil), jwk(func(j map[string]any) { delete(j, "kid") })), found: []string{es.ID}, missing: []string{""}},
		{name: "no alg is kept as empty", set: jwksJSON(t, jwk(func(j map[string]any) { delete(j, "alg") })), found: []string{es.ID}},
		{name: "use enc dropped",
			set: jwksJSON(t, rsJWK, jwk(func(j map[string]any) { j["use"] = "enc" })), found: []string{rs.ID}, missing: []string{es.ID}},
		{name: "private member dropped",
			set: jwksJSON(t, rsJWK, jwk(func(j map[string]any) { j["d"] = "AAAA" })), found: []string{rs.ID}, missing: []string{es.ID}},
		{name: "oct dropped",
			set:   []byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"},` + string(jwksJSON(t, rsJWK)[9:])),
			found: []string{rs.ID}, missing: []string{"h"}},
		{name: "RSA under 2048 bits dropped", set: jwksJSON(t, rsJWK, smallJWK), found: []string{rs.ID}, missing: []string{"small"}},
		{name: "invalid EC point dropped",
			set: jwksJSON(t, rsJWK, jwk(func(j map[string]any) { j["x"] = j["y"] })), found: []string{rs.ID}, missing: []string{es.ID}},
		{name: "duplicate kid: neither kept",
			set: jwksJSON(t, rsJWK, jwk(nil), jwk(nil)), found: []string{rs.ID}, missing: []string{es.ID}},
		{name: "kid three times: none kept",
			set: jwksJSON(t, rsJWK, jwk(nil), jwk(nil), jwk(nil)), found: []string{rs.ID}, missing: []string{es.ID}},
		{name: "kid four times: none kept",
			set: jwksJSON(t, rsJWK, jwk(nil), jwk(nil), jwk(nil), jwk(nil)), found: []string{rs.ID}, missing: []string{es.ID}},
		{name: "only duplicates", set: jwksJSON(t, jwk(nil), jwk(nil), jwk(nil)), wantErr: "no usable signature key"},
		{name: "only private", set: jwksJSON(t, jwk(func(j map[string]any) { j["d"] = "AAAA" })), wantErr: "no usable signature key"},
		{name: "only small RSA", set: jwksJSON(t, smallJWK), wantErr: "no usable signature key"},
		{name: "empty set", set: []byte(`{"keys":[]}`), wantErr: "no usable signature key"},
		{name: "no keys", set: []byte(`{"issuer":"x"}`), wantErr: `no "keys" array`},
		{name: "keys null", set: []byte(`{"keys":null}`), wantErr: `no "keys" array`},
		{name: "not JSON", set: []byte(`<html>`), wantErr: "not a JSON Web Key Set"},
		{name: "empty", set: nil, wantErr: "not a JSON Web Key Set"},
		{name: "keys not an array", set: []byte(`{"keys":{}}`), wantErr: "not a JSON Web Key Set"},
		{name: "key not an object", set: []byte(`{"keys":[1,"a"]}`), wantErr: "no usable signature key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := jwks.NewStatic(tt.set)
			if tt.wantErr != "" {
				var pe *jwks.ParseError
				if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewStatic() error = %v, want a *ParseError containing %q", err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "jwks: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewStatic(): %v", err)
			}
			for _, kid := range tt.found {
				if _, err := s.Key(context.Background(), kid); err != nil {
					t.Errorf("Key(%q): %v", kid, err)
				}
			}
			for _, kid := range tt.missing {
				if k, err := s.Key(context.Background(), kid); !errors.Is(err, jwks.ErrKeyNotFound) {
					t.Errorf("Key(%q) = %q, %v; want ErrKeyNotFound", kid, k.ID, err)
				}
			}
		})
	}
}

// An x5u member is a URL the key set would have us fetch: it is never
// followed.
func TestStaticNeverFollowsX5U(t *testing.T) {
	var hits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer attacker.Close()
	es := newKey(t, "ES256")
	j := publicJWK(t, es)
	j["x5u"] = attacker.URL + "/cert.pem"
	s, err := jwks.NewStatic(jwksJSON(t, j, publicJWK(t, newKey(t, "ES256"))))
	if err == nil {
		// Kept or dropped, the key set is usable without the URL.
		s.Key(context.Background(), es.ID)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the x5u URL was fetched %d times", n)
	}
}

func TestLoadFile(t *testing.T) {
	es := newKey(t, "ES256")
	path := writeFile(t, "jwks.json", jwksJSON(t, publicJWK(t, es)))
	s, err := jwks.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mustKey(t, s, es.ID)

	if _, err := jwks.LoadFile(path + ".missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	bad := writeFile(t, "bad.json", []byte(`{"keys":[]}`))
	_, err = jwks.LoadFile(bad)
	var pe *jwks.ParseError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad file: %v, want a *ParseError naming the file", err)
	}
}
