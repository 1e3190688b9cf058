package scopes

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Requirement is what a route needs from a token's scopes: all of some scopes
// and at least one scope of each of some any-of groups. The zero value
// requires nothing.
//
// Build one with [All] and [Any], combine them with [Requirement.And], and
// check it once with [Requirement.Validate] when loading configuration.
type Requirement struct {
	// all is sorted and without duplicates.
	all []string
	// anyOf holds groups that are each sorted, without duplicates, of two
	// or more scopes (a group of one is kept in all instead), and distinct
	// from one another. Neither level is modified after construction.
	anyOf [][]string
}

// All returns a requirement for every one of scopes. All() requires nothing.
func All(scopes ...string) Requirement {
	list := sortedSet(scopes)
	if len(list) == 0 {
		return Requirement{}
	}
	return Requirement{all: list}
}

// Any returns a requirement for at least one of scopes. Any() requires
// nothing, and Any(s) is the same as All(s).
func Any(scopes ...string) Requirement {
	group := sortedSet(scopes)
	switch len(group) {
	case 0:
		return Requirement{}
	case 1:
		return Requirement{all: group}
	}
	return Requirement{anyOf: [][]string{group}}
}

// sortedSet returns a sorted copy of scopes without duplicates. Empty strings
// are kept so that Validate reports them (and, since no Set holds one, a
// requirement for one is never satisfied).
func sortedSet(scopes []string) []string {
	if len(scopes) == 0 {
		return nil
	}
	list := slices.Clone(scopes)
	slices.Sort(list)
	return slices.Clip(slices.Compact(list))
}

// And returns a requirement satisfied when both r and other are, as when a
// global all-of requirement is added to a route's own.
func (r Requirement) And(other Requirement) Requirement {
	switch {
	case other.IsZero():
		return r
	case r.IsZero():
		return other
	}
	out := Requirement{all: r.all, anyOf: r.anyOf}
	if len(other.all) > 0 {
		out.all = sortedSet(slices.Concat(r.all, other.all))
	}
	if len(other.anyOf) > 0 {
		// A fresh outer slice: r's may be shared with other requirements.
		groups := slices.Clone(r.anyOf)
		for _, g := range other.anyOf {
			if !slices.ContainsFunc(groups, func(h []string) bool { return slices.Equal(g, h) }) {
				groups = append(groups, g)
			}
		}
		out.anyOf = slices.Clip(groups)
	}
	return out
}

// IsZero reports whether r requires nothing.
func (r Requirement) IsZero() bool { return len(r.all) == 0 && len(r.anyOf) == 0 }

// Satisfied reports whether granted holds every all-of scope of r and at
// least one scope of each of its any-of groups. Scopes match only when
// byte-identical. It does not allocate.
func (r Requirement) Satisfied(granted Set) bool {
	for _, s := range r.all {
		if !granted.Has(s) {
			return false
		}
	}
	for _, g := range r.anyOf {
		if !hasAny(granted, g) {
			return false
		}
	}
	return true
}

func hasAny(granted Set, group []string) bool {
	for _, s := range group {
		if granted.Has(s) {
			return true
		}
	}
	return false
}

// Missing returns what granted lacks to satisfy r: the all-of scopes it does
// not hold, then the whole of each any-of group it holds none of, each scope
// listed once. It returns nil when r is satisfied.
func (r Requirement) Missing(granted Set) []string {
	var out []string
	for _, s := range r.all {
		if !granted.Has(s) {
			out = append(out, s)
		}
	}
	for _, g := range r.anyOf {
		if hasAny(granted, g) {
			continue
		}
		for _, s := range g {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// String returns the scopes a client would need, separated by spaces, as
// RFC 6750 puts them in the `scope` attribute of an insufficient_scope
// challenge: the all-of scopes, then each any-of group listed whole (the
// format cannot say "one of"), each scope once. It is "" for the zero
// requirement.
//
// The result is safe inside a quoted-string only if [Requirement.Validate]
// returned nil.
func (r Requirement) String() string {
	return strings.Join(r.scopes(), " ")
}

// scopes returns every scope r mentions, each once, in the order of String.
func (r Requirement) scopes() []string {
	if len(r.anyOf) == 0 {
		return r.all
	}
	out := slices.Clone(r.all)
	for _, g := range r.anyOf {
		for _, s := range g {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// Validate reports every scope of r that is not a valid RFC 6749
// scope-token (see [ValidToken]), saying which and why. The zero
// requirement is valid.
func (r Requirement) Validate() error {
	var errs []error
	for _, s := range r.scopes() {
		if err := checkToken(s); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ValidToken reports whether scope is a valid RFC 6749 scope-token,
// 1*( %x21 / %x23-5B / %x5D-7E ): one or more printable ASCII characters
// other than space, '"' and '\'. Such a scope is safe inside an HTTP
// quoted-string and cannot be split by a space-delimited list.
func ValidToken(scope string) bool {
	if scope == "" {
		return false
	}
	for i := 0; i < len(scope); i++ {
		if !tokenByte(scope[i]) {
			return false
		}
	}
	return true
}

func tokenByte(c byte) bool {
	return c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e)
}

// InvalidScopeError is the error of a scope that is not a valid RFC 6749
// scope-token, from [Requirement.Validate] (one per scope, joined).
type InvalidScopeError struct {
	Scope string
	// Problem is a client-safe sentence quoting Scope and saying which byte
	// is not allowed, without this package's prefix.
	Problem string
}

func (e *InvalidScopeError) Error() string { return "scopes: " + e.Problem }

// checkToken is ValidToken with the reason.
func checkToken(scope string) error {
	if scope == "" {
		return &InvalidScopeError{Scope: scope, Problem: "empty scope"}
	}
	for i := 0; i < len(scope); i++ {
		c := scope[i]
		if tokenByte(c) {
			continue
		}
		var why string
		switch {
		case c == ' ':
			why = "a space"
		case c == '"':
			why = `a double quote (")`
		case c == '\\':
			why = `a backslash (\)`
		case c < 0x20 || c == 0x7f:
			why = fmt.Sprintf("control character 0x%02x", c)
		default:
			why = fmt.Sprintf("non-ASCII byte 0x%02x", c)
		}
		return &InvalidScopeError{Scope: scope, Problem: fmt.Sprintf("invalid scope %q: %s at byte %d is not allowed", scope, why, i)}
	}
	return nil
}
