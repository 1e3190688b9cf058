package middleware

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// scanVerdict is what scanObject should decide about valid JSON, computed
// independently with encoding/json's tokenizer: an object, at most maxClaims
// members, nesting at most maxDepth, and no watched name twice as
// encoding/json matches names to fields (unescaped, case folded).
func scanVerdict(b []byte, watched []string) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if d, ok := tok.(json.Delim); err != nil || !ok || d != '{' {
		return false
	}
	deepest, members := 1, 0
	seen := make([]bool, len(watched))
	dup := false
	for dec.More() {
		key, _ := dec.Token()
		members++
		for i, w := range watched {
			if strings.EqualFold(key.(string), w) {
				dup = dup || seen[i]
				seen[i] = true
			}
		}
		deepest = max(deepest, 1+valueDepth(dec))
	}
	return members <= maxClaims && deepest <= maxDepth && !dup
}

// valueDepth consumes one value and returns its nesting (0 for a scalar).
func valueDepth(dec *json.Decoder) int {
	tok, _ := dec.Token()
	d, ok := tok.(json.Delim)
	if !ok {
		return 0
	}
	deepest := 0
	for dec.More() {
		if d == '{' {
			dec.Token() // the name
		}
		deepest = max(deepest, valueDepth(dec))
	}
	dec.Token() // the closing delimiter
	return 1 + deepest
}

func TestScanObject(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{`{}`, nil},
		{` {"iss":"a","sub":"b"} `, nil},
		{`{"a":{"iss":1,"iss":2}}`, nil}, // nested names are not claims
		{`{"a":["iss","iss"]}`, nil},     // values are not names
		{`{"iss":"iss"}`, nil},
		{`{"x":"\"iss\":"}`, nil},
		{`{"k\\":1,"iss":1}`, nil},
		{`[]`, errNotObject},
		{`"iss"`, errNotObject},
		{``, errNotObject},
		{`{"iss":1,"iss":2}`, errDuplicate},
		{`{"iss":1,"ISS":2}`, errDuplicate},
		{`{"sub":1,"ſub":2}`, errDuplicate},
		{`{"aud":1,"\u0061ud":2}`, errDuplicate},
		{`{"permissions":1,"PERMISSIONS":2}`, errDuplicate},
		{`{"scope":1,"ſcope":2}`, errDuplicate},
		{`{"iss":"a`, errUnterminate},
		{`{"a":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}`, nil},
		{`{"a":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`, errTooDeep},
		{`{"a":"` + strings.Repeat("[", 100) + `"}`, nil}, // brackets in a string
	}
	for _, tt := range tests {
		if got := scanObject([]byte(tt.in), registered); got != tt.want {
			t.Errorf("scanObject(%.60q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	var b strings.Builder
	b.WriteString("{")
	for i := range maxClaims {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"x":1`)
	}
	if err := scanObject([]byte(b.String()+"}"), registered); err != nil {
		t.Errorf("%d members: %v", maxClaims, err)
	}
	if err := scanObject([]byte(b.String()+`,"y":1}`), registered); err != errTooMany {
		t.Errorf("%d members: %v, want errTooMany", maxClaims+1, err)
	}
}

// The registered claims are matched to struct fields by encoding/json in a
// way scanObject must agree with: a name it does not count as a duplicate
// must not be read as the claim.
func TestScanObjectAgreesWithDecoder(t *testing.T) {
	for _, name := range []string{"ISS", "Iss", "ſub", "SUB", "\u212aid"} {
		if watchedIndex([]byte(`"`+name+`"`), false, []string{"iss", "sub", "kid"}) < 0 {
			t.Errorf("%q is not watched, but encoding/json reads it as a registered claim", name)
		}
	}
	var wc wireClaims
	if err := json.Unmarshal([]byte(`{"ISS":"x","ſub":"y"}`), &wc); err != nil || wc.Iss != "x" || wc.Sub != "y" {
		t.Fatalf("encoding/json no longer folds names (%+v, %v): the fold in watchedIndex may be dropped", wc, err)
	}
}

// FuzzScanObject checks scanObject against an independent computation on
// every valid JSON input, and that it never panics on any input.
func FuzzScanObject(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"iss":1,"iss":2}`, `{"iss":1,"ISS":2}`, `{"\u0069ss":1,"iss":2}`, `{"a":[[[[]]]]}`,
		`{"a":"\"","iss":1}`, `{"a":{"iss":1},"iss":2}`, `[1]`, `"x"`, `{"iss":"a`, `{"k\\":1}`,
		`{"a":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := scanObject(b, registered)
		if !json.Valid(b) {
			return // the syntax is encoding/json's to refuse
		}
		if want := scanVerdict(b, registered); (err == nil) != want {
			t.Fatalf("scanObject(%q) = %v, want ok=%v", b, err, want)
		}
	})
}

// FuzzValidJSON holds validJSON to json.Valid.
func FuzzValidJSON(f *testing.F) {
	for _, seed := range []string{
		`{}`, `[]`, `""`, `0`, `-0.5e+7`, `01`, `1.`, `.5`, `-`, `1e`, `true`, `tru`, `nul`, `null `, ` {"a":[1,2,{"b":null}]} `,
		`{"a":1,}`, `[1,]`, `{"a"}`, `{"a":}`, `"\u00e9\n\"\\\/"`, `"\u00g0"`, `"\x"`, "\"\x01\"", "\"\xff\"",
		`{"a":1}{}`, strings.Repeat("[", 70) + strings.Repeat("]", 70), strings.Repeat("[", 70) + strings.Repeat("]", 69),
		`[1 2]`, `{"a" 1}`, `{1:2}`, "\t\r\n[]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid = %v", b, got, want)
		}
	})
}
