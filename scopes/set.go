package scopes

import (
	"slices"
	"strings"
)

// linearMax is the size up to which [Set.Has] scans instead of bisecting.
// Typical tokens carry a handful of scopes, where a scan of length-checked
// string comparisons beats a binary search; large sets (a token can carry
// thousands) still cost O(log n) per lookup.
const linearMax = 8

// Set is an immutable set of granted scopes. The zero value is the empty set.
//
// A Set never contains the empty string. Its scopes are not validated (see
// the package's Security section); they are only compared, byte for byte.
type Set struct {
	// list is sorted, without duplicates or empty strings, and never
	// modified after construction, so copies of a Set may share it.
	list []string
}

// Parse returns the scopes of an RFC 6749 `scope` value: a list of scopes
// separated by spaces (U+0020). Runs of spaces and leading or trailing spaces
// are tolerated; duplicates are removed. Only the space separates: other
// whitespace, such as a tab, is part of a scope.
//
// The scopes share memory with the argument, so Parse allocates only the
// list.
func Parse(scope string) Set {
	n := 0
	for rest := scope; rest != ""; {
		var piece string
		piece, rest = cut(rest)
		if piece != "" {
			n++
		}
	}
	if n == 0 {
		return Set{}
	}
	list := make([]string, 0, n)
	for rest := scope; rest != ""; {
		var piece string
		piece, rest = cut(rest)
		if piece != "" {
			list = append(list, piece)
		}
	}
	return fromList(list)
}

// cut returns the text before the first space of s and the text after it.
// Unlike strings.Fields, only U+0020 separates (RFC 6749 §3.3).
func cut(s string) (piece, rest string) {
	before, after, _ := strings.Cut(s, " ")
	return before, after
}

// New returns a set of the given scopes. Duplicates and empty strings are
// dropped; each scope is taken whole (it is not split on spaces).
// New copies its argument.
func New(scopes ...string) Set {
	list := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if s != "" {
			list = append(list, s)
		}
	}
	return fromList(list)
}

// fromList sorts and deduplicates list, which must hold no empty strings,
// and takes ownership of it.
func fromList(list []string) Set {
	if len(list) == 0 {
		return Set{}
	}
	slices.Sort(list)
	// Clip so that nothing can ever append into memory a Set owns.
	return Set{list: slices.Clip(slices.Compact(list))}
}

// Has reports whether scope is in s, comparing bytes exactly
// (case-sensitive, no wildcards or prefixes).
func (s Set) Has(scope string) bool {
	if len(s.list) <= linearMax {
		for _, g := range s.list {
			if g == scope {
				return true
			}
		}
		return false
	}
	_, found := slices.BinarySearch(s.list, scope)
	return found
}

// Len returns the number of scopes in s.
func (s Set) Len() int { return len(s.list) }

// List returns the scopes of s in ascending byte order, in a new slice the
// caller may modify. It returns nil for the empty set.
func (s Set) List() []string { return slices.Clone(s.list) }

// String returns the scopes of s separated by spaces, in the order of
// [Set.List]. It is meant for logs: granted scopes are not validated, so the
// result is not safe to put in a header and may be ambiguous when a scope
// itself contains a space (possible with [New] or an array claim).
func (s Set) String() string { return strings.Join(s.list, " ") }

// Equal reports whether s and other hold the same scopes.
func (s Set) Equal(other Set) bool { return slices.Equal(s.list, other.list) }

// Union returns the set of scopes that are in any of sets.
//
// The usual call combines one token's claims, as in
// Union(scope, permissions), where one claim often repeats the other.
// So when one argument already contains all the others (in particular when
// the others are empty), Union returns it unchanged without allocating.
func Union(sets ...Set) Set {
	// Pick the largest set; if it contains every other, it is the union.
	largest := -1
	for i, s := range sets {
		if largest < 0 || len(s.list) > len(sets[largest].list) {
			largest = i
		}
	}
	if largest < 0 {
		return Set{}
	}
	total := 0
	covered := true
	for i, s := range sets {
		total += len(s.list)
		if i == largest || !covered {
			continue
		}
		for _, scope := range s.list {
			if !sets[largest].Has(scope) {
				covered = false
				break
			}
		}
	}
	if covered {
		return sets[largest]
	}
	list := make([]string, 0, total)
	for _, s := range sets {
		list = append(list, s.list...)
	}
	return fromList(list)
}
