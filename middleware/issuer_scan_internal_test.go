package middleware

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// issuerByDecoder is what encoding/json reads as iss, the reference for
// issuerMember: the raw value, or nil.
func issuerByDecoder(b []byte) json.RawMessage {
	var v struct {
		Iss json.RawMessage `json:"iss"`
	}
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	return v.Iss
}

// checkScan compares issuerMember with encoding/json on valid claims that
// scanObject accepts (the claims the validator goes on to decode).
func checkScan(t *testing.T, b []byte) {
	t.Helper()
	if !json.Valid(b) || scanObject(b, registered) != nil {
		return
	}
	want := issuerByDecoder(b)
	if want == nil {
		if _, found, malformed := issuerMember(b); found || malformed {
			t.Fatalf("issuerMember(%s) found an iss (malformed %v); encoding/json did not", b, malformed)
		}
		return
	}
	got, found, malformed := issuerMember(b)
	if !found || malformed || !bytes.Equal(got, want) {
		t.Fatalf("issuerMember(%s) = %s, %v, %v; encoding/json read %s", b, got, found, malformed, want)
	}
}

// randomJSON makes a JSON value of the shapes that matter to the scan:
// nesting, strings holding brackets, quotes and backslashes, and names that
// are iss in other spellings.
func randomJSON(r *rand.Rand, sb *strings.Builder, depth int) {
	strs := []string{`"iss"`, `"ISS"`, `"\u0069ss"`, `"i\"s"`, `"[{"`, `"]}"`, `"\\"`, `"\\\""`, `"x"`, `""`, `"ıss"`, `"\\]"`}
	switch n := r.IntN(6); {
	case depth > 40 || n == 0:
		sb.WriteString(strs[r.IntN(len(strs))])
	case n == 1:
		fmt.Fprint(sb, r.IntN(1000))
	case n == 2:
		sb.WriteString([]string{"true", "false", "null"}[r.IntN(3)])
	case n == 3:
		sb.WriteByte('[')
		for i := range r.IntN(4) {
			if i > 0 {
				sb.WriteByte(',')
			}
			randomJSON(r, sb, depth+1)
		}
		sb.WriteByte(']')
	default:
		sb.WriteByte('{')
		for i := range r.IntN(4) {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(strs[r.IntN(len(strs))])
			sb.WriteString(" :")
			randomJSON(r, sb, depth+1)
		}
		sb.WriteByte('}')
	}
}

func TestIssuerMemberAgreesWithEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var sb strings.Builder
		sb.WriteByte('{')
		for i := range r.IntN(5) {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString([]string{`"iss"`, `"ISS"`, `"\u0069ss"`, `"a"`, `"b"`, `"iss "`, `"[["`}[r.IntN(7)])
			sb.WriteByte(':')
			randomJSON(r, &sb, 0)
		}
		sb.WriteByte('}')
		checkScan(t, []byte(sb.String()))
	}
	// Deep nesting crosses the eight-byte steps of skipValue at every
	// offset.
	for pad := range 16 {
		for depth := 1; depth <= 40; depth++ {
			v := strings.Repeat("[", depth) + `"]]"` + strings.Repeat("]", depth)
			checkScan(t, []byte(`{"`+strings.Repeat("p", pad)+`":`+v+`,"iss":"https://x/"}`))
			checkScan(t, []byte(`{"a":`+strings.Repeat(" ", pad)+strings.Repeat("[{\"k\":", depth)+"1"+strings.Repeat("}]", depth)+`,"iss":"y"}`))
		}
	}
}

func FuzzIssuerMember(f *testing.F) {
	for _, s := range []string{
		`{"iss":"a"}`, `{"x":[[[["]"]]]],"iss":"a"}`, `{"ISS":"a"}`, `{"\u0069ss":1}`,
		`{"a":{"iss":"b"},"iss":"c"}`, `{"a":"\"iss\":","iss":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		issuerMember(b) // never panics, on any input
		checkScan(t, b)
	})
}
