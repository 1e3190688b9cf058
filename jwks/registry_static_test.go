package jwks_test

import (
	"path/filepath"
	"testing"

	"github.com/tokenward/tokenward/jwks"
)

// A key set already read from a file:// URL, given in Static, is used as
// given: the file is not read again (here it no longer exists).
func TestRegistryStaticGiven(t *testing.T) {
	k := newKey(t, "RS256")
	set, err := jwks.NewStatic(jwksJSON(t, publicJWK(t, k)))
	if err != nil {
		t.Fatal(err)
	}
	fileURL := "file://" + filepath.Join(t.TempDir(), "gone.json")
	const a, b = "https://login.northwind.com/", "https://northwind.auth0.com/"
	r := newRegistry(t, []string{a, b}, jwks.RegistryOptions{
		JWKSURLs: map[string]string{a: fileURL, b: fileURL},
		Static:   map[string]*jwks.Static{fileURL: set},
	})
	for _, iss := range []string{a, b} {
		got, _ := r.Set(iss)
		if got != jwks.Set(set) {
			t.Errorf("Set(%s) = %v, want the Static given", iss, got)
		}
	}
}
