package middleware

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The fast paths must agree with encoding/json on everything they accept.

var fastClaimsSeeds = []string{
	`{"iss":"https://tenant.example.com/","sub":"auth0|5f7c8ec7c33c6c004bbafe82","aud":["https://api.example.com","https://tenant.example.com/userinfo"],"iat":1767225600,"exp":1767312000,"azp":"k3Jc1Xq9","scope":"openid read:contacts","permissions":["read:contacts","write:contacts"]}`,
	`{"iss":"a","aud":"b","exp":1.5,"scp":["x","y"],"client_id":"c","jti":"j","nbf":null}`,
	` { "aud" : [ "a" , "b" ] , "scope" : " a  b " , "exp" : 1e3 } `,
	`{"aud":[],"scp":"a","permissions":[]}`,
	`{"aud":null,"iss":null}`,
	`{"exp":1,"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}`,
	`{"exp":1,"cnf":{"jkt":"x","x5t#S256":"y","jwk":{}}}`,
	`{"exp":1,"cnf":{"x5t#S256":"a","x5t#s256":"b"}}`,
	`{"exp":1,"cnf":{"\u00785t#S256":"a"}}`,
	`{"exp":1,"cnf":{"X5T#S256":"a"}}`,
	`{"exp":1,"cnf":null}`,
	`{"exp":1,"cnf":"x"}`,
	`{"exp":1,"cnf":{"x5t#S256":7}}`,
	`{"exp":1,"CNF":{}}`,
	`{"aud":["a",1]}`,
	`{"aud":"\u0061"}`,
	`{"iss":"é"}`,
	`{"iss":1}`,
	`{"ISS":"x"}`,
	`{"\u0069ss":"x"}`,
	`{"ſub":"x"}`,
	`{"exp":"1"}`,
	`{"scope":["a"],"scp":"b c","x":{"iss":"y"},"y":[{"aud":1}]}`,
	`{"https://example.com/roles":["admin"],"sub":"a\"b"}`,
	`{"aud":"a","aud":"b"}`,
	`{}`,
}

func FuzzDecodeClaimsFast(f *testing.F) {
	for _, s := range fastClaimsSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if scanObject(b, registered) != nil {
			return // refused before decoding
		}
		var fast wireClaims
		if !fast.decodeFast(b) {
			return
		}
		var slow wireClaims
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json refused it: %v", b, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\nfast %+v\nslow %+v", b, fast, slow)
		}
	})
}

var fastHeaderSeeds = []string{
	`{"alg":"RS256","typ":"JWT","kid":"abc"}`,
	`{"alg":"RS256","typ":"at+jwt"}`,
	`{ "kid" : "k" , "alg" : "ES256" , "typ" : "application/at+jwt" }`,
	`{"alg":"RS256","typ":"jwt"}`,
	`{"alg":"HS256"}`,
	`{"alg":"RS256","crit":["exp"]}`,
	`{"alg":"RS256","crit":null}`,
	`{"ALG":"RS256"}`,
	`{"\u0061lg":"RS256"}`,
	`{"alg":"RS256","typ":null}`,
	`{"alg":"RS256","kid":7}`,
	`{"alg":"RS256","jwk":{"kty":"RSA","alg":"none"},"x5c":["a"],"jku":"https://x/"}`,
	`{"alg":"RS256","kid":"a\u0062"}`,
	`{"alg":"RS256","\/":0,"\ud835\udc1alg":1,"x5\u0075":"https://x/","kid":"k"}`,
	`{"alg":"RS256","\u0063rit":["x"]}`,
	`{"alg":"RS256","\u212aid":"k"}`,
	`{"alg":"RS256","ty\u0070":"dpop+jwt"}`,
	`{"alg":"RS256","\u0061\u004c\u0047":"none"}`,
}

func FuzzDecodeHeaderFast(f *testing.F) {
	for _, s := range fastHeaderSeeds {
		f.Add([]byte(s))
	}
	v := &Validator{algs: []string{"RS256", "ES256", "PS256"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		if scanObject(b, headerNames) != nil {
			return
		}
		var fast header
		if !v.headerFast(b, &fast) {
			return
		}
		slow, err := decodeHeaderJSON(b)
		if err != nil {
			t.Fatalf("fast path accepted %q, encoding/json refused it: %v", b, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\nfast %+v typ %v\nslow %+v typ %v", b, fast, deref(fast.Typ), slow, deref(slow.Typ))
		}
	})
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// The fast paths take the usual tokens: an Auth0 access token's header and
// claims decode without falling back.
func TestFastPathsTaken(t *testing.T) {
	v := &Validator{algs: []string{"RS256"}}
	var h header
	if !v.headerFast([]byte(fastHeaderSeeds[0]), &h) || h.Alg != "RS256" || h.Kid != "abc" || h.Typ == nil || *h.Typ != "JWT" {
		t.Errorf("header: %+v", h)
	}
	var wc wireClaims
	if !wc.decodeFast([]byte(fastClaimsSeeds[0])) || wc.Iss != "https://tenant.example.com/" || len(wc.Aud) != 2 ||
		!wc.Exp.set || wc.Scope.Len() != 2 || wc.Permissions.Len() != 2 {
		t.Errorf("claims: %+v", wc)
	}
	for _, s := range []string{`{"ISS":"x"}`, `{"\u0069ss":"x"}`, `{"ſub":"x"}`, `{"iss":"é"}`, `{"sub":"a\"b"}`} {
		if wc := (wireClaims{}); wc.decodeFast([]byte(s)) {
			t.Errorf("fast path took %s", s)
		}
	}
	// A header with escaped names that are no field of it (a forged
	// header may hold a thousand) stays on the fast path; one spelling a
	// field with escapes does not.
	if h := (header{}); !v.headerFast([]byte(`{"alg":"RS256","\/":0,"\u0074\u0059p\u0020":1,"kid":"k"}`), &h) || h.Kid != "k" {
		t.Errorf("fast path refused a header with escaped names: %+v", h)
	}
	for _, s := range []string{`{"alg":"RS256","\u0063rit":["x"]}`, `{"alg":"RS256","\u212aid":"k"}`, `{"alg":"RS256","ty\u0070":"JWT"}`} {
		if h := (header{}); v.headerFast([]byte(s), &h) {
			t.Errorf("fast path took %s", s)
		}
	}
}

func TestFastPathsNeedAnObject(t *testing.T) {
	v := &Validator{algs: []string{"RS256"}}
	for _, s := range []string{`[1]`, `"iss"`, `null`, `1`, ``, `{`, `{"iss":"a"`, `{"iss":"a"}}`} {
		var wc wireClaims
		var h header
		if wc.decodeFast([]byte(s)) || v.headerFast([]byte(s), &h) {
			t.Errorf("fast path took %q", s)
		}
	}
}

// FuzzSplit holds split to its definition: exactly two dots, every other
// byte of the base64url alphabet.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"a.b.c", "..", "a.b", "a.b.c.d", "a+b.c.d", "ab.c\n.d", "", "eyJ.eyJ.sig-_09AZaz", "a.b.c="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		want1, want2, dots, wantOK := 0, 0, 0, true
		for i := 0; i < len(token); i++ {
			switch c := token[i]; {
			case c == '.':
				dots++
				if dots == 1 {
					want1 = i
				} else if dots == 2 {
					want2 = i
				}
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			default:
				wantOK = false
			}
		}
		wantOK = wantOK && dots == 2
		d1, d2, ok := split(token)
		if ok != wantOK || ok && (d1 != want1 || d2 != want2) {
			t.Fatalf("split(%q) = %d, %d, %v; want %d, %d, %v", token, d1, d2, ok, want1, want2, wantOK)
		}
	})
}
