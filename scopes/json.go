package scopes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// UnmarshalJSON sets s to the scopes of a JSON claim value:
//
//   - a string is split on spaces, as by [Parse] (`scope`, string-form `scp`);
//   - an array of strings gives one scope per element, each taken whole and
//     empty elements dropped, as by [New] (Auth0's `permissions`, array-form
//     `scp`);
//   - null gives the empty set (not "leave s unchanged": a decoded claim
//     never keeps scopes from an earlier value).
//
// Anything else (a number, boolean, object, an array holding a non-string,
// including null or a nested array, or invalid JSON) is an error, and s is
// left unchanged.
func (s *Set) UnmarshalJSON(b []byte) error {
	set, ok := decodeSimple(b)
	if !ok {
		var err error
		if set, err = decodeGeneral(b); err != nil {
			return err
		}
	}
	*s = set
	return nil
}

// MarshalJSON encodes s as an array of strings in the order of [Set.List];
// the empty set is [], not null.
func (s Set) MarshalJSON() ([]byte, error) {
	if len(s.list) == 0 {
		return []byte("[]"), nil
	}
	return json.Marshal(s.list)
}

// decodeSimple decodes, in one pass and with two allocations, the common
// shapes of a scope claim: null, or a string or flat array of strings whose
// strings hold only printable ASCII without escapes. It reports false for
// anything else, valid or not, and leaves that to decodeGeneral; so it need
// only be right about what it accepts.
func decodeSimple(b []byte) (Set, bool) {
	i := skipSpace(b, 0)
	if i == len(b) {
		return Set{}, false
	}
	switch b[i] {
	case 'n':
		if !bytes.HasPrefix(b[i:], []byte("null")) || skipSpace(b, i+4) != len(b) {
			return Set{}, false
		}
		return Set{}, true
	case '"':
		end, ok := simpleString(b, i)
		if !ok || skipSpace(b, end) != len(b) {
			return Set{}, false
		}
		return Parse(string(b[i+1 : end-1])), true
	case '[':
		n, ok := simpleArray(b, i, nil)
		if !ok {
			return Set{}, false
		}
		if n == 0 {
			return Set{}, true
		}
		// One copy of the whole value backs every scope: the decoder owns b,
		// and one string is cheaper than one per element.
		text := string(b)
		list := make([]string, 0, n)
		simpleArray(b, i, func(start, end int) {
			if start < end {
				list = append(list, text[start:end])
			}
		})
		return fromList(list), true
	}
	return Set{}, false
}

// simpleArray checks that b[i:] is a flat array of simple strings followed
// only by whitespace, calling elem (when non-nil) with the bounds of each
// string's contents. It returns the number of elements.
func simpleArray(b []byte, i int, elem func(start, end int)) (int, bool) {
	i = skipSpace(b, i+1) // past '['
	n := 0
	if i < len(b) && b[i] == ']' {
		return 0, skipSpace(b, i+1) == len(b)
	}
	for {
		if i == len(b) || b[i] != '"' {
			return 0, false
		}
		end, ok := simpleString(b, i)
		if !ok {
			return 0, false
		}
		if elem != nil {
			elem(i+1, end-1)
		}
		n++
		i = skipSpace(b, end)
		if i == len(b) {
			return 0, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return n, skipSpace(b, i+1) == len(b)
		default:
			return 0, false
		}
	}
}

// simpleString returns the index just past the JSON string starting at b[i]
// (a '"'), provided its contents are printable ASCII (0x20-0x7E) other than
// '"' and '\', whose decoded form is then the bytes themselves.
func simpleString(b []byte, i int) (end int, ok bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, true
		case c == '\\' || c < 0x20 || c > 0x7e:
			return 0, false
		}
	}
	return 0, false
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// decodeGeneral decodes what decodeSimple does not: escapes, non-ASCII, and
// every kind of invalid input, relying on encoding/json for the syntax.
func decodeGeneral(b []byte) (Set, error) {
	if !json.Valid(b) {
		// Unmarshal says where the syntax breaks; Valid only that it does.
		var v any
		err := json.Unmarshal(b, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return Set{}, fmt.Errorf("scopes: %w", err)
	}
	b = bytes.TrimLeft(b, " \t\r\n")
	switch b[0] {
	case 'n':
		return Set{}, nil
	case '"':
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return Set{}, fmt.Errorf("scopes: %w", err)
		}
		return Parse(str), nil
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(b, &elems); err != nil {
			return Set{}, fmt.Errorf("scopes: %w", err)
		}
		list := make([]string, 0, len(elems))
		for i, e := range elems {
			e = bytes.TrimLeft(e, " \t\r\n")
			if k := kind(e); k != "a string" {
				return Set{}, fmt.Errorf("scopes: array element %d is %s, want a string", i, k)
			}
			var str string
			if err := json.Unmarshal(e, &str); err != nil {
				return Set{}, fmt.Errorf("scopes: array element %d: %w", i, err)
			}
			if str != "" {
				list = append(list, str)
			}
		}
		return fromList(list), nil
	}
	return Set{}, fmt.Errorf("scopes: claim is %s, want a string, an array of strings, or null", kind(b))
}

// kind names the JSON type of the valid value b, for error messages.
func kind(b []byte) string {
	if len(b) == 0 {
		return "empty"
	}
	switch b[0] {
	case '"':
		return "a string"
	case '[':
		return "an array"
	case '{':
		return "an object"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
