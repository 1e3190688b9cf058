package jwks_test

import (
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/syncbuf"
	"github.com/tokenward/tokenward/jwks"
)

// A key whose key_ops is present and lacks "verify" is published for other
// operations (encryption, key wrapping) and never verifies, whatever its
// type and even without "use" (issue 9, finding 10; Wycheproof's
// rejectWrongKeyOps).
func TestKeyOpsWithoutVerifyDropped(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			k, other := newKey(t, alg), newKey(t, "ES384")
			for _, tt := range []struct {
				name string
				ops  any // nil: no key_ops member
				kept bool
			}{
				{"encrypt", []string{"encrypt"}, false},
				{"wrapKey and encrypt", []string{"wrapKey", "encrypt"}, false},
				{"sign only", []string{"sign"}, false},
				{"empty", []string{}, false},
				{"verify", []string{"verify"}, true},
				{"sign and verify", []string{"sign", "verify"}, true},
				{"absent", nil, true},
			} {
				t.Run(tt.name, func(t *testing.T) {
					j := publicJWK(t, k)
					delete(j, "use")
					if tt.ops != nil {
						j["key_ops"] = tt.ops
					}
					s, err := jwks.NewStatic(jwksJSON(t, j, publicJWK(t, other)))
					if err != nil {
						t.Fatal(err)
					}
					_, err = s.Key(testContext(t), k.ID)
					if kept := err == nil; kept != tt.kept {
						t.Fatalf("key kept: %v (err %v), want %v", kept, err, tt.kept)
					}
					if d := s.Dropped(); !tt.kept && (len(d) != 1 || !strings.Contains(d[0], "key_ops")) {
						t.Fatalf("dropped %q, want the key_ops reason", d)
					}
				})
			}
		})
	}
}

// An RSA key with the ROCA weakness (CVE-2017-15361) is dropped, with a
// reason in the log and in the refresh event, never its modulus (issue 9,
// finding 10; Wycheproof's key vectors expect it refused).
func TestROCAKeyDropped(t *testing.T) {
	good := newKey(t, "ES256")
	rsaJWK := func(kid, modulusHex string) map[string]any {
		n, err := hex.DecodeString(modulusHex)
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64.EncodeToString(n), "e": "AQAB"}
	}
	// Public test vectors: see testdata/roca/README.md.
	mod03, mod04 := readHex(t, "testdata/roca/mod03.hex"), readHex(t, "testdata/roca/mod04.hex")
	vulnerable, sound := rsaJWK("roca", mod03), rsaJWK("sound", mod04)

	t.Run("static", func(t *testing.T) {
		s, err := jwks.NewStatic(jwksJSON(t, vulnerable, sound, publicJWK(t, good)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Key(testContext(t), "roca"); err == nil {
			t.Fatal("the ROCA key is in the set")
		}
		if _, err := s.Key(testContext(t), "sound"); err != nil {
			t.Fatalf("the RSA key without the weakness, from the same test suite: %v", err)
		}
		if d := s.Dropped(); len(d) != 1 || !strings.Contains(d[0], "ROCA") || strings.Contains(d[0], vulnerable["n"].(string)[:16]) {
			t.Fatalf("dropped %q", d)
		}
		if _, err := jwks.NewStatic(jwksJSON(t, vulnerable)); err == nil || !strings.Contains(err.Error(), "no usable signature key") {
			t.Fatalf("a set of the ROCA key alone: %v", err)
		}
	})

	t.Run("remote", func(t *testing.T) {
		body := jwksJSON(t, vulnerable, publicJWK(t, good))
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}))
		defer srv.Close()
		var log syncbuf.Buffer
		events := make(chan jwks.RefreshEvent, 8)
		r, err := jwks.NewRemote(srv.URL, jwks.RemoteOptions{
			Logger:             slog.New(slog.NewJSONHandler(&log, nil)),
			RefreshInterval:    time.Hour,
			MinRefreshInterval: time.Hour,
			OnRefresh:          func(e jwks.RefreshEvent) { events <- e },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if _, err := r.Key(testContext(t), good.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Key(testContext(t), "roca"); err == nil {
			t.Fatal("the ROCA key is in the set")
		}
		var e jwks.RefreshEvent
		select {
		case e = <-events:
		case <-testContext(t).Done():
			t.Fatal("no refresh event")
		}
		if len(e.Dropped) != 1 || !strings.Contains(e.Dropped[0], "ROCA") {
			t.Fatalf("event Dropped %q", e.Dropped)
		}
		out := log.String()
		if !strings.Contains(out, `"msg":"jwks: key dropped"`) || !strings.Contains(out, "CVE-2017-15361") {
			t.Fatalf("log %s", out)
		}
		for _, material := range []string{vulnerable["n"].(string)[:16], mod03[:16]} {
			if strings.Contains(out, material) {
				t.Fatalf("the log quotes the modulus: %s", out)
			}
		}
	})
}

// readHex reads a file of hex digits.
func readHex(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// A key set read from a file:// URL logs its dropped keys too.
func TestRegistryFileLogsDroppedKeys(t *testing.T) {
	es, rs := newKey(t, "ES256"), newKey(t, "RS256")
	enc := publicJWK(t, rs)
	delete(enc, "use")
	enc["key_ops"] = []string{"encrypt"}
	path := writeFile(t, "jwks.json", jwksJSON(t, publicJWK(t, es), enc))
	const issuer = "https://login.northwind.com/"
	var log syncbuf.Buffer
	r := newRegistry(t, []string{issuer}, jwks.RegistryOptions{
		JWKSURLs: map[string]string{issuer: "file://" + path},
		Remote:   jwks.RemoteOptions{Logger: slog.New(slog.NewJSONHandler(&log, nil))},
	})
	set, _ := r.Set(issuer)
	mustKey(t, set, es.ID)
	if _, err := set.Key(testContext(t), rs.ID); err == nil {
		t.Fatal("the encryption key is in the set")
	}
	if out := log.String(); !strings.Contains(out, `"msg":"jwks: key dropped"`) || !strings.Contains(out, "key_ops") || strings.Contains(out, enc["n"].(string)[:16]) {
		t.Fatalf("log %s", out)
	}
}
