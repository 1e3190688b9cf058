package jsonscan_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/internal/jsonscan"
)

// FuzzValid holds Valid to json.Valid.
func FuzzValid(f *testing.F) {
	for _, seed := range []string{
		`{}`, `[]`, `""`, `0`, `-0.5e+7`, `01`, `1.`, `.5`, `-`, `1e`, `true`, `tru`, `nul`, `null `, ` {"a":[1,2,{"b":null}]} `,
		`{"a":1,}`, `[1,]`, `{"a"}`, `{"a":}`, `"\u00e9\n\"\\\/"`, `"\u00g0"`, `"\x"`, "\"\x01\"", "\"\xff\"",
		`{"a":1}{}`, strings.Repeat("[", 70) + strings.Repeat("]", 70), strings.Repeat("[", 70) + strings.Repeat("]", 69),
		`[1 2]`, `{"a" 1}`, `{1:2}`, "\t\r\n[]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := jsonscan.Valid(b), json.Valid(b); got != want {
			t.Fatalf("jsonscan.Valid(%q) = %v, json.Valid = %v", b, got, want)
		}
	})
}

// TestMembers: the spans of each top-level member, nested values and
// escapes included, in order.
func TestMembers(t *testing.T) {
	b := []byte(` { "a" : 1 , "b\"c":{"x":[1,"}"]}, "d":"e\"f",  "g":null } `)
	if !jsonscan.ValidObject(b) {
		t.Fatal("not a valid object")
	}
	var got []string
	m := jsonscan.NewMembers(b)
	for {
		ns, ne, vs, ve, ok := m.Next()
		if !ok {
			break
		}
		got = append(got, string(b[ns:ne])+"="+string(b[vs:ve]))
	}
	want := []string{`a=1`, `b\"c={"x":[1,"}"]}`, `d="e\"f"`, `g=null`}
	if !slices.Equal(got, want) {
		t.Errorf("members %q, want %q", got, want)
	}
}
