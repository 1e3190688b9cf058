package middleware

import (
	"encoding/json"
	"errors"
)

// Limits on a token's JSON, so hostile input stays cheap to refuse.
const (
	maxClaims = 1000 // top-level members of the header or the claims
	maxDepth  = 32   // nesting of objects and arrays
)

var (
	errNotObject   = errors.New("not a JSON object")
	errTooDeep     = errors.New("JSON nested too deeply")
	errTooMany     = errors.New("too many claims")
	errDuplicate   = errors.New("duplicate claim")
	errUnterminate = errors.New("unterminated JSON string")
)

// scanObject checks the limits of a JSON object without decoding it, and that
// none of the watched top-level names occurs twice. encoding/json keeps the last
// of duplicate names while other parsers keep the first; refusing duplicates of
// the names we act on removes that disagreement as an attack surface. The rest
// of the syntax is left to encoding/json.
func scanObject(b []byte, watched []string) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errNotObject
	}
	var (
		depth     int
		expectKey bool
		members   int
		seen      uint64
	)
	for ; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			start := i + 1
			escaped := false
			j := start
			for ; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					escaped = true
					j++
				}
			}
			if j >= len(b) {
				return errUnterminate
			}
			if depth == 1 && expectKey {
				expectKey = false
				members++
				if members > maxClaims {
					return errTooMany
				}
				if idx := watchedIndex(b[start-1:j+1], escaped, watched); idx >= 0 {
					if seen&(1<<idx) != 0 {
						return errDuplicate
					}
					seen |= 1 << idx
				}
			}
			i = j
		case '{', '[':
			depth++
			if depth > maxDepth {
				return errTooDeep
			}
			expectKey = depth == 1 && c == '{'
		case '}', ']':
			depth--
		case ',':
			if depth == 1 {
				expectKey = true
			}
		}
	}
	return nil
}

// watchedIndex returns the position of a quoted name in watched, or -1.
func watchedIndex(quoted []byte, escaped bool, watched []string) int {
	name := quoted[1 : len(quoted)-1]
	if escaped {
		// Rare: "\u0061ud" is "aud" to a decoder, so compare decoded.
		var s string
		if json.Unmarshal(quoted, &s) != nil {
			return -1
		}
		name = []byte(s)
	}
	for i, w := range watched {
		if string(name) == w {
			return i
		}
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
