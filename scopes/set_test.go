package scopes_test

import (
	"slices"
	"testing"

	"github.com/tokenward/tokenward/scopes"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"only spaces", "   ", nil},
		{"one", "openid", []string{"openid"}},
		{"typical Auth0", "openid profile read:contacts write:contacts",
			[]string{"openid", "profile", "read:contacts", "write:contacts"}},
		{"sorted", "b c a", []string{"a", "b", "c"}},
		{"leading and trailing spaces", "  a b  ", []string{"a", "b"}},
		{"repeated spaces", "a    b", []string{"a", "b"}},
		{"duplicates", "a b a a", []string{"a", "b"}},
		// RFC 6749 separates with U+0020 only: other whitespace stays in the
		// scope, which then matches nothing a route can require.
		{"tab is not a separator", "a\tb", []string{"a\tb"}},
		{"newline is not a separator", "a\nb c", []string{"a\nb", "c"}},
		{"nbsp is not a separator", "a\u00a0b", []string{"a\u00a0b"}},
		{"case preserved", "Read read", []string{"Read", "read"}},
		{"anything goes in granted scopes", `a"b c\d é`, []string{`a"b`, `c\d`, "é"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := scopes.Parse(tt.in)
			if got := s.List(); !slices.Equal(got, tt.want) {
				t.Errorf("Parse(%q).List() = %q, want %q", tt.in, got, tt.want)
			}
			if s.Len() != len(tt.want) {
				t.Errorf("Parse(%q).Len() = %d, want %d", tt.in, s.Len(), len(tt.want))
			}
			for _, w := range tt.want {
				if !s.Has(w) {
					t.Errorf("Parse(%q).Has(%q) = false", tt.in, w)
				}
			}
			if s.Has("") {
				t.Errorf("Parse(%q).Has(\"\") = true", tt.in)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"none", nil, nil},
		{"empty strings dropped", []string{"", "a", ""}, []string{"a"}},
		{"duplicates", []string{"b", "a", "b"}, []string{"a", "b"}},
		{"not split on spaces", []string{"a b"}, []string{"a b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scopes.New(tt.in...).List(); !slices.Equal(got, tt.want) {
				t.Errorf("New(%q).List() = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSetImmutable(t *testing.T) {
	in := []string{"a", "b"}
	s := scopes.New(in...)
	in[0] = "admin"
	if s.Has("admin") || !s.Has("a") {
		t.Errorf("New kept a reference to its argument: %v", s)
	}
	l := s.List()
	l[0] = "admin"
	if s.Has("admin") {
		t.Errorf("List returned the set's own storage: %v", s)
	}
}

func TestHas(t *testing.T) {
	small := scopes.Parse("read:contacts write:contacts")
	// Past the linear-scan size, lookups bisect; both must match exactly.
	large := scopes.Parse("a b c d e f g h i j k l m n o p read:contacts write:contacts")
	for _, s := range []scopes.Set{small, large} {
		t.Run(s.String(), func(t *testing.T) {
			for _, tt := range []struct {
				scope string
				want  bool
			}{
				{"read:contacts", true},
				{"write:contacts", true},
				{"read:contacts:all", false}, // no prefix matching
				{"read", false},
				{"Read:contacts", false}, // case-sensitive
				{"read:*", false},        // no wildcards
				{"*", false},
				{"", false},
				{"read:contacts ", false},
			} {
				if got := s.Has(tt.scope); got != tt.want {
					t.Errorf("Has(%q) = %v, want %v", tt.scope, got, tt.want)
				}
			}
		})
	}
	if (scopes.Set{}).Has("a") || (scopes.Set{}).Len() != 0 || (scopes.Set{}).List() != nil {
		t.Error("zero Set is not empty")
	}
}

func TestString(t *testing.T) {
	for _, tt := range []struct {
		set  scopes.Set
		want string
	}{
		{scopes.Set{}, ""},
		{scopes.Parse(" write read "), "read write"},
	} {
		if got := tt.set.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestUnion(t *testing.T) {
	tests := []struct {
		name string
		in   []scopes.Set
		want []string
	}{
		{"none", nil, nil},
		{"all empty", []scopes.Set{{}, {}}, nil},
		{"one", []scopes.Set{scopes.Parse("a b")}, []string{"a", "b"}},
		{"others empty", []scopes.Set{{}, scopes.Parse("a b"), {}}, []string{"a", "b"}},
		{"disjoint", []scopes.Set{scopes.Parse("a c"), scopes.New("b")}, []string{"a", "b", "c"}},
		{"overlapping", []scopes.Set{scopes.Parse("a b"), scopes.New("b", "c")}, []string{"a", "b", "c"}},
		{"subset", []scopes.Set{scopes.New("b"), scopes.Parse("openid a b")}, []string{"a", "b", "openid"}},
		{"three", []scopes.Set{scopes.New("a"), scopes.New("b"), scopes.New("c")}, []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scopes.Union(tt.in...).List(); !slices.Equal(got, tt.want) {
				t.Errorf("Union(%v).List() = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEqual(t *testing.T) {
	if !scopes.Parse("b a").Equal(scopes.New("a", "b", "a")) {
		t.Error("equal sets compare unequal")
	}
	if scopes.Parse("a").Equal(scopes.Parse("a b")) || scopes.Parse("a").Equal(scopes.Set{}) {
		t.Error("unequal sets compare equal")
	}
	if !(scopes.Set{}).Equal(scopes.Parse("  ")) {
		t.Error("empty sets compare unequal")
	}
}

// Allocation counts are part of the contract: these run on every request.
func TestAllocs(t *testing.T) {
	scope := scopes.Parse("openid profile read:contacts write:contacts")
	perms := scopes.New("read:contacts", "write:contacts")
	readOnly := scopes.New("read:contacts")
	req := scopes.All("read:contacts").And(scopes.Any("write:contacts", "admin"))
	tests := []struct {
		name string
		max  float64
		f    func()
	}{
		{"Parse", 1, func() { scopes.Parse("openid profile read:contacts write:contacts") }},
		{"Parse empty", 0, func() { scopes.Parse("  ") }},
		{"Union with empty", 0, func() { scopes.Union(scope, scopes.Set{}) }},
		{"Union with subset", 0, func() { scopes.Union(scope, perms) }},
		{"Has", 0, func() { scope.Has("read:contacts") }},
		{"Satisfied", 0, func() { req.Satisfied(scope) }},
		{"Satisfied false", 0, func() { req.Satisfied(readOnly) }},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(100, tt.f); got > tt.max {
			t.Errorf("%s: %v allocations, want at most %v", tt.name, got, tt.max)
		}
	}
}
