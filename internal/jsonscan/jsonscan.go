// Package jsonscan finds the boundaries of JSON values without decoding
// them: a check as strict as json.Valid but several times faster, and a walk
// over an object's top-level members, for the parsers of tokens (package
// middleware) and DPoP proofs (package dpop) that read a few members and
// refuse what other readers could see differently (duplicate names).
package jsonscan

import (
	"bytes"
	"encoding/json"
)

// SkipSpace returns the offset of the first non-space byte of b from i.
func SkipSpace(b []byte, i int) int {
	// By table: the scans call it several times per member.
	for i < len(b) && jsonSpace[b[i]] {
		i++
	}
	return i
}

var jsonSpace = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// ValidObject reports whether b is valid JSON holding an object, which the
// fast paths need.
func ValidObject(b []byte) bool {
	return Valid(b) && b[SkipSpace(b, 0)] == '{'
}

// Valid reports json.Valid(b), several times faster: encoding/json's
// scanner calls a function per byte. Input nested deeper than fastDepth is
// left to json.Valid (which allows 10,000 levels).
func Valid(b []byte) bool {
	i, r := validValue(b, SkipSpace(b, 0), 0)
	switch r {
	case jsonDeep:
		return json.Valid(b)
	case jsonValid:
		return SkipSpace(b, i) == len(b)
	}
	return false
}

const fastDepth = 64

type jsonResult uint8

const (
	jsonInvalid jsonResult = iota
	jsonValid
	jsonDeep
)

// validValue checks the JSON value at b[i] and returns the offset past it.
func validValue(b []byte, i, depth int) (int, jsonResult) {
	if i >= len(b) {
		return i, jsonInvalid
	}
	switch c := b[i]; {
	case c == '{' || c == '[':
		if depth == fastDepth {
			return i, jsonDeep
		}
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		i = SkipSpace(b, i+1)
		if i < len(b) && b[i] == closing {
			return i + 1, jsonValid
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return i, jsonInvalid
				}
				var ok bool
				if i, ok = validString(b, i); !ok {
					return i, jsonInvalid
				}
				i = SkipSpace(b, i)
				if i >= len(b) || b[i] != ':' {
					return i, jsonInvalid
				}
				i = SkipSpace(b, i+1)
			}
			var r jsonResult
			if i, r = validValue(b, i, depth+1); r != jsonValid {
				return i, r
			}
			i = SkipSpace(b, i)
			switch {
			case i >= len(b):
				return i, jsonInvalid
			case b[i] == ',':
				i = SkipSpace(b, i+1)
			case b[i] == closing:
				return i + 1, jsonValid
			default:
				return i, jsonInvalid
			}
		}
	case c == '"':
		i, ok := validString(b, i)
		return i, result(ok)
	case c == 't':
		return i + 4, result(bytes.HasPrefix(b[i:], []byte("true")))
	case c == 'f':
		return i + 5, result(bytes.HasPrefix(b[i:], []byte("false")))
	case c == 'n':
		return i + 4, result(bytes.HasPrefix(b[i:], []byte("null")))
	case c == '-' || '0' <= c && c <= '9':
		return validNumber(b, i)
	}
	return i, jsonInvalid
}

func result(ok bool) jsonResult {
	if ok {
		return jsonValid
	}
	return jsonInvalid
}

// validString checks the JSON string at b[i] and returns the offset past it.
// Like encoding/json, it accepts any byte but controls, '"' and '\\'
// unescaped (invalid UTF-8 included).
func validString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, true
		case c < 0x20:
			return j, false
		case c == '\\':
			j++
			if j >= len(b) {
				return j, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return j, false
				}
				for _, h := range b[j+1 : j+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return j, false
					}
				}
				j += 4
			default:
				return j, false
			}
		}
	}
	return len(b), false
}

// validNumber checks the JSON number at b[i] and returns the offset past it.
func validNumber(b []byte, i int) (int, jsonResult) {
	digits := func(i int) (int, bool) {
		start := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i, i > start
	}
	if b[i] == '-' {
		i++
	}
	var ok bool
	switch {
	case i >= len(b):
		return i, jsonInvalid
	case b[i] == '0':
		i++
	default:
		if i, ok = digits(i); !ok {
			return i, jsonInvalid
		}
	}
	if i < len(b) && b[i] == '.' {
		if i, ok = digits(i + 1); !ok {
			return i, jsonInvalid
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i, ok = digits(i); !ok {
			return i, jsonInvalid
		}
	}
	return i, jsonValid
}

// Members iterates over the top-level members of a JSON object, for the fast
// paths that read a token's header and claims, or a DPoP proof, without
// reflection. The input must be valid JSON holding an object (ValidObject), so the scan only finds
// boundaries and checks nothing. Spans are byte offsets into the input; a
// name span excludes its quotes, a value span is the raw value.
type Members struct {
	b []byte
	i int
}

func NewMembers(b []byte) Members {
	return Members{b: b, i: SkipSpace(b, 0) + 1} // past '{'
}

// Next returns the spans of the next member, or ok false after the last.
func (m *Members) Next() (nameStart, nameEnd, valStart, valEnd int, ok bool) {
	b := m.b
	i := SkipSpace(b, m.i)
	if i < len(b) && b[i] == ',' {
		i = SkipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		return 0, 0, 0, 0, false // '}'
	}
	end := StringEnd(b, i)
	nameStart, nameEnd = i+1, end-1
	i = SkipSpace(b, SkipSpace(b, end)+1) // past ':'
	valStart, valEnd = i, ValueEnd(b, i)
	m.i = valEnd
	return nameStart, nameEnd, valStart, valEnd, true
}

// StringEnd returns the offset just past the JSON string that starts at b[i].
func StringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// ValueEnd returns the offset just past the JSON value that starts at b[i].
func ValueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return StringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = StringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i // number, true, false, null
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

// SimpleString reports whether value is a JSON string of printable ASCII
// without escapes, which decodes to exactly the bytes between its quotes.
func SimpleString(value []byte) bool {
	if len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' {
		return false
	}
	for _, c := range value[1 : len(value)-1] {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
