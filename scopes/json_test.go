package scopes_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/scopes"
)

func TestUnmarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string // substring of the error; "" means no error
	}{
		{name: "string", in: `"openid profile read:contacts"`, want: []string{"openid", "profile", "read:contacts"}},
		{name: "empty string", in: `""`},
		{name: "string with spaces around", in: ` "  a  b " `, want: []string{"a", "b"}},
		{name: "string with escapes", in: `"a\u0020b\tc"`, want: []string{"a", "b\tc"}},
		{name: "string non-ASCII", in: `"lire:é"`, want: []string{"lire:é"}},
		{name: "array", in: `["write:contacts","read:contacts"]`, want: []string{"read:contacts", "write:contacts"}},
		{name: "array with whitespace", in: "\n[ \"a\" ,\t\"b\"\r\n]\n", want: []string{"a", "b"}},
		{name: "array element taken whole", in: `["a b"]`, want: []string{"a b"}},
		{name: "array duplicates", in: `["a","a","b"]`, want: []string{"a", "b"}},
		{name: "array empty element dropped", in: `["","a"]`, want: []string{"a"}},
		{name: "array with escapes", in: `["a\"b","c\\d","\u00e9"]`, want: []string{`a"b`, `c\d`, "é"}},
		{name: "empty array", in: `[]`},
		{name: "empty array with space", in: `[ ]`},
		{name: "null", in: `null`},
		{name: "null with space", in: ` null `},

		{name: "number", in: `42`, wantErr: "claim is a number"},
		{name: "boolean", in: `true`, wantErr: "claim is a boolean"},
		{name: "object", in: `{"scope":"a"}`, wantErr: "claim is an object"},
		{name: "nested array", in: `["a",["b"]]`, wantErr: "array element 1 is an array"},
		{name: "array of number", in: `[1]`, wantErr: "array element 0 is a number"},
		{name: "array with null", in: `["a",null]`, wantErr: "array element 1 is null"},
		{name: "array with object", in: `[{}]`, wantErr: "array element 0 is an object"},
		{name: "empty input", in: ``, wantErr: "scopes: "},
		{name: "only whitespace", in: ` `, wantErr: "scopes: "},
		{name: "unterminated string", in: `"a`, wantErr: "scopes: "},
		{name: "unterminated array", in: `["a"`, wantErr: "scopes: "},
		{name: "trailing comma", in: `["a",]`, wantErr: "scopes: "},
		{name: "trailing data", in: `"a" "b"`, wantErr: "scopes: "},
		{name: "raw control character", in: "\"a\x01\"", wantErr: "scopes: "},
		{name: "nul", in: `nul`, wantErr: "scopes: "},
		{name: "null with trailing data", in: `nullx`, wantErr: "scopes: "},
		{name: "single quotes", in: `'a'`, wantErr: "scopes: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := scopes.New("previous")
			err := s.UnmarshalJSON([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("UnmarshalJSON(%q) = nil error, set %v; want error containing %q", tt.in, s, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "scopes: ") {
					t.Errorf("UnmarshalJSON(%q) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
				}
				if !s.Equal(scopes.New("previous")) {
					t.Errorf("UnmarshalJSON(%q) failed but changed the set to %v", tt.in, s)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalJSON(%q) error: %v", tt.in, err)
			}
			// The result replaces the previous value; it never merges with it.
			if got := s.List(); !slices.Equal(got, tt.want) {
				t.Errorf("UnmarshalJSON(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// The decoded scopes must not alias the input: encoding/json reuses it.
func TestUnmarshalJSONCopies(t *testing.T) {
	for _, in := range []string{`["read:contacts"]`, `"read:contacts"`} {
		b := []byte(in)
		var s scopes.Set
		if err := s.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] = 'x'
		}
		if !s.Has("read:contacts") {
			t.Errorf("UnmarshalJSON(%s) kept a reference to its input: %v", in, s)
		}
	}
}

// Claims decode as a struct field, the way the middleware will use Set.
func TestUnmarshalJSONClaims(t *testing.T) {
	var claims struct {
		Scope       scopes.Set `json:"scope"`
		Permissions scopes.Set `json:"permissions"`
		Scp         scopes.Set `json:"scp"`
	}
	in := `{"scope":"openid read:contacts","permissions":["read:contacts","write:contacts"],"scp":null}`
	if err := json.Unmarshal([]byte(in), &claims); err != nil {
		t.Fatal(err)
	}
	got := scopes.Union(claims.Scope, claims.Permissions, claims.Scp).String()
	if want := "openid read:contacts write:contacts"; got != want {
		t.Errorf("union of claims = %q, want %q", got, want)
	}

	if err := json.Unmarshal([]byte(`{"permissions":[1]}`), &claims); err == nil {
		t.Error("permissions [1] decoded without error")
	}
}

func TestMarshalJSON(t *testing.T) {
	tests := []struct {
		set  scopes.Set
		want string
	}{
		{scopes.Set{}, `[]`},
		{scopes.Parse("b a"), `["a","b"]`},
		{scopes.New(`a"b`, "<x>"), `["\u003cx\u003e","a\"b"]`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(tt.set)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("json.Marshal(%v) = %s, want %s", tt.set, got, tt.want)
		}
	}
}

func FuzzUnmarshalJSON(f *testing.F) {
	for _, seed := range []string{
		`"openid profile read:contacts write:contacts"`,
		`["read:contacts","write:contacts","delete:contacts","read:users","admin"]`,
		`null`, `[]`, `""`, `"  a  b "`, `["a b",""]`,
		`"a\u0020b"`, `["\u00e9\ud800"]`, `"\t"`,
		`1`, `{}`, `[1]`, `[["a"]]`, `["a",null]`, `["a",]`, ` [ "a" ] `, `nul`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s scopes.Set
		err := s.UnmarshalJSON(b)

		// An independent oracle: what encoding/json makes of the input,
		// interpreted as the documentation says.
		var v any
		want, wantOK := scopes.Set{}, json.Unmarshal(b, &v) == nil
		switch v := v.(type) {
		case nil:
		case string:
			want = scopes.Parse(v)
		case []any:
			var list []string
			for _, e := range v {
				str, ok := e.(string)
				if !ok {
					wantOK = false
				}
				list = append(list, str)
			}
			want = scopes.New(list...)
		default:
			wantOK = false
		}
		if (err == nil) != wantOK {
			t.Fatalf("UnmarshalJSON(%q) error = %v, want success %v", b, err, wantOK)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "scopes: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			return
		}
		if !s.Equal(want) {
			t.Fatalf("UnmarshalJSON(%q) = %q, want %q", b, s.List(), want.List())
		}
		for _, scope := range s.List() {
			if scope == "" || !s.Has(scope) {
				t.Fatalf("UnmarshalJSON(%q): bad scope %q in %q", b, scope, s.List())
			}
		}

		out, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("Marshal(%q): %v", s.List(), err)
		}
		var back scopes.Set
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("Unmarshal(Marshal(%q)) = %s: %v", s.List(), out, err)
		}
		if !back.Equal(s) {
			t.Fatalf("round trip of %q via %s gave %q", s.List(), out, back.List())
		}
	})
}
