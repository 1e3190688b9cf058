package denylist

import (
	"testing"
)

// FuzzParse: whatever the file holds, parsing never panics, and a list it
// accepts stays within the entry limit and has no empty entries.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"jti":["a","b"],"sub":[{"sub":"auth0|1","before":"2026-11-22T10:00:00Z"}]}`,
		`{"jti":[""]}`,
		`{"sub":[{"sub":"s"}]}`,
		`{"jti":["a"]} trailing`,
		`{"jti":["a"],"jti":["b"]}`,
		`{"jti":["a"],"JTI":["b"]}`,
		`{"sub":[{"sub":"a","sub":"b","before":"2026-01-01T00:00:00Z"}]}`,
		`{"sub":[{"sub":"a","Before":"2026-01-01T00:00:00Z"}]}`,
		`[]`,
		`null`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parse(data, 8)
		if err != nil {
			return
		}
		if s.entries() > 8 {
			t.Fatalf("%d entries accepted, limit 8", s.entries())
		}
		if _, ok := s.jti[""]; ok {
			t.Fatal("empty jti accepted")
		}
		for sub, before := range s.sub {
			if sub == "" || before.IsZero() {
				t.Fatalf("sub entry %q before %v accepted", sub, before)
			}
		}
	})
}
