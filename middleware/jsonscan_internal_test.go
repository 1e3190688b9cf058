package middleware

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
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
		// Escaped names, decoded as encoding/json decodes them.
		{`{"iss":1,"\u0049\u0053\u0053":2}`, errDuplicate},
		{`{"iss":1,"\u0069\u017f\u017F":2}`, errDuplicate},
		{`{"sub":1,"\u017fub":2}`, errDuplicate},
		{`{"permissions":1,"\u0050ermission\u0053":2}`, errDuplicate},
		{`{"client_id":1,"client\u005fid":2}`, errDuplicate},
		{`{"iss":1,"\ud800ss":2}`, nil},       // U+FFFD, then "ss"
		{`{"iss":1,"\ud835\udc22ss":2}`, nil}, // 𝐢ss, a pair
		{`{"iss":1,"\u0069ss\u0000":2}`, nil},
		{`{"iss":1,"\u0130ss":2,"\u0131ss":3}`, nil}, // İ and ı fold to no i
		{`{"iss":1,"\/iss":2}`, nil},
		{`{"\/":1,"\/":2}`, nil},
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
		`{"\u0069\u017f\u017F":1,"iss":2}`, `{"\u212aid":1,"kid":2}`, `{"\ud800ss":1,"iss":2}`, `{"\/":1,"\/":2}`,
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

// decoderIndex is the reference for watchedIndex: the position in watched of
// the field that encoding/json fills from a member named by quoted, or -1.
func decoderIndex(t testing.TB, quoted string, watched []string) int {
	t.Helper()
	fields := make([]reflect.StructField, len(watched))
	for i, w := range watched {
		fields[i] = reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: reflect.TypeFor[json.RawMessage](), Tag: reflect.StructTag(`json:"` + w + `"`)}
	}
	v := reflect.New(reflect.StructOf(fields))
	if json.Unmarshal([]byte(`{`+quoted+`:1}`), v.Interface()) != nil {
		return -1
	}
	for i := range watched {
		if v.Elem().Field(i).Len() > 0 {
			return i
		}
	}
	return -1
}

// The fold of foldedName is encoding/json's: of all runes outside ASCII,
// written as such or as an escape, exactly those it reads as one of the
// letters of a watched name fold to it.
func TestFoldedNameRunes(t *testing.T) {
	letters := make([]string, 0, 26)
	for c := 'a'; c <= 'z'; c++ {
		letters = append(letters, string(c))
	}
	for r := rune(utf8.RuneSelf); r <= unicode.MaxRune; r++ {
		if utf16.IsSurrogate(r) {
			continue
		}
		for _, quoted := range []string{`"` + string(r) + `"`, strconv.QuoteToASCII(string(r))} {
			got, want := watchedIndex([]byte(quoted), true, letters), -1
			if unicode.SimpleFold(r) != r {
				// A rune that folds only to itself is read as itself;
				// the others are asked of encoding/json.
				want = decoderIndex(t, quoted, letters)
			}
			if got != want {
				t.Fatalf("%s (U+%04X): watchedIndex %d, encoding/json %d", quoted, r, got, want)
			}
		}
	}
}

// watchedIndex needs the watched names in lower-case ASCII and no longer
// than its buffer.
func TestWatchedNamesFold(t *testing.T) {
	for _, list := range [][]string{registered, headerNames, headerFields, issNames} {
		for _, w := range list {
			if len(w) > maxWatchedName || strings.ToLower(w) != w || strings.ContainsFunc(w, func(r rune) bool { return r >= utf8.RuneSelf }) {
				t.Errorf("watched name %q: not lower-case ASCII of at most %d bytes", w, maxWatchedName)
			}
		}
	}
}

// escapedNamePieces are spellings, escaped and not, that a name matched
// with a watched one is made of.
var escapedNamePieces = []string{
	`i`, `I`, `s`, `S`, `\u0069`, `\u0049`, `\u0073`, `\u017f`, `\u017F`, `ſ`, `k`, `\u212a`, `K`, `\u004B`,
	`a`, `\u0061`, `ud`, `lg`, `\u0067`, `id`, `\u0064`, `cope`, `crit`, `jk`, `u`, `_`, `\u005f`, `client`, `permissions`,
	`\/`, `\\`, `\"`, `\n`, `\t`, `\b`, `\f`, `\r`, `\u0000`, `\u00e9`, `é`, "\xff", "\xc5", `\ud800`, `\udc00`,
	`\ud835\udc22`, `\ud800\u0069`, `\udbff\udfff`, `\uD834\uDD1E`, `\u0130`, `\u0131`, `ı`, `İ`, `\u00df`,
}

// watchedIndex agrees with encoding/json on names made of the pieces.
func TestWatchedIndexAgreesWithDecoder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		var sb strings.Builder
		for range 1 + r.IntN(6) {
			sb.WriteString(escapedNamePieces[r.IntN(len(escapedNamePieces))])
		}
		checkWatchedIndex(t, `"`+sb.String()+`"`)
	}
	for _, q := range []string{`"\u0069\u017f\u017F"`, `"\u0049SS"`, `"\u212aid"`, `"\u004bID"`, `"\u0061\u0075\u0064"`,
		`"\ud800ss"`, `"i\u0073\u0073 "`, `"permission\u0073"`, `"\u0070ermissions"`, `"client\u005fid"`, `"ISS\u0000"`} {
		checkWatchedIndex(t, q)
	}
}

func checkWatchedIndex(t *testing.T, quoted string) {
	t.Helper()
	for _, watched := range [][]string{registered, headerNames} {
		escaped := strings.Contains(quoted, `\`)
		if got, want := watchedIndex([]byte(quoted), escaped, watched), decoderIndex(t, quoted, watched); got != want {
			t.Fatalf("watchedIndex(%s) = %d, encoding/json reads it as %d", quoted, got, want)
		}
	}
}

// FuzzWatchedIndex holds watchedIndex to encoding/json on every name that
// is a valid JSON string.
func FuzzWatchedIndex(f *testing.F) {
	for _, s := range escapedNamePieces {
		f.Add(s)
	}
	f.Add(`\u0069\u017f\u017F`)
	f.Add(`permi\u0073sions`)
	f.Fuzz(func(t *testing.T, s string) {
		quoted := `"` + s + `"`
		if !json.Valid([]byte(quoted)) {
			watchedIndex([]byte(quoted), true, registered) // never panics
			return
		}
		checkWatchedIndex(t, quoted)
	})
}
