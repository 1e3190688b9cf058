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
		if _, found, err := issuerMember(b); found || err != nil {
			t.Fatalf("issuerMember(%s) found an iss (error %v); encoding/json did not", b, err)
		}
		return
	}
	got, found, err := issuerMember(b)
	if !found || err != nil || !bytes.Equal(got, want) {
		t.Fatalf("issuerMember(%s) = %s, %v, %v; encoding/json read %s", b, got, found, err, want)
	}
}

// randomJSON makes a JSON value of the shapes that matter to the scan:
// nesting, strings holding brackets, quotes and backslashes, and names that
// are iss in other spellings.
func randomJSON(r *rand.Rand, sb *strings.Builder, depth int) {
	strs := []string{`"iss"`, `"ISS"`, `"\u0069ss"`, `"i\"s"`, `"[{"`, `"]}"`, `"\\"`, `"\\\""`, `"x"`, `""`, `"ıss"`, `"\\]"`,
		`"\u0069\u017f\u017F"`, `"\ud800ss"`, `"\ud835\udc22ss"`, `"i\u0073\u0053 "`, `"\/"`}
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
			names := []string{`"iss"`, `"ISS"`, `"\u0069ss"`, `"a"`, `"b"`, `"iss "`, `"[["`,
				`"\u0069\u017f\u017F"`, `"i\u017Fs"`, `"\u0130ss"`, `"\ud800iss"`, `"\/"`, `"\u0049\u0053\u0053\u0020"`}
			sb.WriteString(names[r.IntN(len(names))])
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
		`{"\/":0,"\u0069\u017f\u017F":"a"}`, `{"\ud800ss":0,"\ud835\udc22ss":1,"i\u0073s":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		issuerMember(b) // never panics, on any input
		checkScan(t, b)
	})
}

// The scan for iss stops after maxClaims members, as scanObject would: the
// claims are refused as malformed (too many claims) and the cost of a scan
// of names before iss is bounded.
func TestIssuerMemberLimit(t *testing.T) {
	claims := func(n int, name string) []byte {
		return []byte("{" + strings.Repeat(`"`+name+`":0,`, n-1) + `"iss":"x"}`)
	}
	for _, name := range []string{`c`, `\/`, `\u0069\u0053\u0053\u0020`} {
		if v, found, err := issuerMember(claims(maxClaims, name)); !found || err != nil || string(v) != `"x"` {
			t.Errorf("%s: iss as member %d: %s, %v, %v", name, maxClaims, v, found, err)
		}
		if _, found, err := issuerMember(claims(maxClaims+1, name)); found || err != errTooMany {
			t.Errorf("%s: iss as member %d: %v, %v; want errTooMany", name, maxClaims+1, found, err)
		}
		if scanObject(claims(maxClaims+1, "c"), nil) != errTooMany {
			t.Errorf("scanObject does not refuse %d members", maxClaims+1)
		}
	}
}
