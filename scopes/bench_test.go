package scopes_test

import (
	"testing"

	"github.com/tokenward/tokenward/scopes"
)

var (
	sinkBool bool
	sinkSet  scopes.Set
)

func BenchmarkSatisfied(b *testing.B) {
	granted := scopes.Union(
		scopes.Parse("openid profile email read:contacts write:contacts"),
		scopes.New("read:contacts", "write:contacts", "delete:contacts", "read:users", "admin"),
	)
	req := scopes.All("read:contacts").And(scopes.Any("write:contacts", "admin"))
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = req.Satisfied(granted)
	}
}

// A token with many scopes: lookups bisect rather than scan.
func BenchmarkSatisfiedLargeSet(b *testing.B) {
	list := make([]string, 200)
	for i := range list {
		list[i] = "scope:" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	granted := scopes.New(append(list, "read:contacts", "write:contacts")...)
	req := scopes.All("read:contacts").And(scopes.Any("write:contacts", "admin"))
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = req.Satisfied(granted)
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkSet = scopes.Parse("openid profile read:contacts write:contacts")
	}
}

func BenchmarkUnmarshalJSON(b *testing.B) {
	for _, bm := range []struct{ name, in string }{
		{"permissions", `["read:contacts","write:contacts","delete:contacts","read:users","admin"]`},
		{"scope", `"openid profile read:contacts write:contacts"`},
		// Escapes take the encoding/json path.
		{"permissions escaped", `["read:contacts","write:contacts","delete:contacts","read:users","\u0061dmin"]`},
	} {
		in := []byte(bm.in)
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var s scopes.Set
				if err := s.UnmarshalJSON(in); err != nil {
					b.Fatal(err)
				}
				sinkSet = s
			}
		})
	}
}
