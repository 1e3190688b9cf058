package middleware

import (
	"bytes"
	"errors"
	"unicode/utf8"

	"github.com/tokenward/tokenward/internal/jsonscan"
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
	i := jsonscan.SkipSpace(b, 0)
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
// Names are compared as encoding/json matches them to struct fields: after
// unescaping and ignoring case (Unicode simple folding, so "ISS" and "ſub" are
// "iss" and "sub" to it), so that every name the decoder would read as a
// watched claim counts towards the duplicate check.
func watchedIndex(quoted []byte, escaped bool, watched []string) int {
	name := quoted[1 : len(quoted)-1]
	if !escaped {
		// The usual case, an exact name: no other watched name can fold to
		// it, since they differ from each other under folding.
		for i, w := range watched {
			if string(name) == w {
				return i
			}
		}
		return foldIndex(name, watched)
	}
	// Rare, and what a forged token uses to be slow: "\u0061ud" is "aud"
	// to a decoder, so compare decoded, without allocating, and only as
	// much of the name as the longest watched name. A rune read as an
	// ASCII character is written in at most 6 bytes (\u0061): a longer
	// name is not worth decoding.
	longest := 0
	for _, w := range watched {
		longest = max(longest, len(w))
	}
	if len(name) > 6*longest {
		return -1
	}
	var buf [maxWatchedName]byte
	n := foldedName(buf[:min(longest, len(buf))], name)
	for i, w := range watched {
		if n == len(w) && string(buf[:n]) == w {
			return i
		}
	}
	return -1
}

// maxWatchedName is at least the length of the longest watched name
// ("permissions").
const maxWatchedName = 16

// foldedName decodes s, the body of a JSON string between its quotes, as
// encoding/json unquotes it, and folds it as encoding/json compares names
// with fields (see foldIndex), into buf; it returns the length. Watched
// names are lower-case ASCII, and besides ASCII only two runes fold to an
// ASCII letter: ſ (U+017F) to s and K (U+212A, Kelvin) to k. So the name is
// written with ASCII letters in lower case, and decoding stops at the first
// rune that folds to no ASCII character: the name is no watched name, and
// foldedName returns -1. That includes U+FFFD, which encoding/json reads for
// invalid UTF-8, and any \u escape of a surrogate: paired it stands for a
// rune outside the BMP, unpaired encoding/json reads U+FFFD. foldedName also
// returns -1 for a name longer than buf (decoding stops there) and for a
// body that is not a valid JSON string. It allocates nothing: a forged
// token may hold a thousand escaped names.
func foldedName(buf, s []byte) int {
	w := 0
	for r := 0; r < len(s); w++ {
		if w == len(buf) {
			return -1
		}
		c, n := foldedRune(s[r:])
		if n < 0 {
			return -1
		}
		buf[w] = c
		r += n
	}
	return w
}

// foldedIs reports whether s, the body of a JSON string between its
// quotes, is read as name (lower-case ASCII) by encoding/json: foldedName
// for one name, which stops at the first rune that differs.
func foldedIs(s []byte, name string) bool {
	k := 0
	for r := 0; r < len(s); k++ {
		if k == len(name) {
			return false
		}
		c, n := foldedRune(s[r:])
		if n < 0 || c != name[k] {
			return false
		}
		r += n
	}
	return k == len(name)
}

// foldedRune decodes the first rune of s, the body of a JSON string, as
// encoding/json does and folds it for foldedName: it returns the ASCII
// character and the bytes read, or -1 if the rune folds to no ASCII
// character or s does not start with a valid character of a JSON string.
func foldedRune(s []byte) (byte, int) {
	c := s[0]
	switch {
	case c == '\\':
		if len(s) < 2 {
			return 0, -1
		}
		if s[1] != 'u' {
			e := simpleEscape[s[1]]
			if e == 0 {
				return 0, -1 // \' included: encoding/json's scanner refuses it
			}
			return e, 2
		}
		if len(s) < 6 {
			return 0, -1
		}
		// By hand, not in a function of its own: this is the inner loop
		// of refusing a flood of escaped names.
		h0, h1, h2, h3 := hexValue[s[2]], hexValue[s[3]], hexValue[s[4]], hexValue[s[5]]
		if h0|h1|h2|h3 < 0 {
			return 0, -1
		}
		switch rr := rune(h0)<<12 | rune(h1)<<8 | rune(h2)<<4 | rune(h3); {
		case rr < utf8.RuneSelf:
			return lowerASCII(byte(rr)), 6
		case rr == '\u017f':
			return 's', 6
		case rr == '\u212a':
			return 'k', 6
		}
		return 0, -1 // surrogates too: see foldedName
	case c < ' ' || c == '"':
		return 0, -1
	case c < utf8.RuneSelf:
		return lowerASCII(c), 1
	}
	switch rr, size := utf8.DecodeRune(s); rr { // RuneError if invalid
	case '\u017f':
		return 's', size
	case '\u212a':
		return 'k', size
	}
	return 0, -1
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		c += 'a' - 'A'
	}
	return c
}

// simpleEscape is what each two-byte escape of JSON stands for, 0 for
// bytes that make no escape.
var simpleEscape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// hexValue is the value of each hexadecimal digit, -1 for other bytes.
var hexValue = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i, c := range "0123456789abcdef" {
		t[c] = int8(i)
	}
	for i, c := range "ABCDEF" {
		t[c] = int8(10 + i)
	}
	return t
}()

// foldIndex returns the position in names of the one that encoding/json,
// which matches names to fields ignoring case (Unicode simple folding),
// would read name as, or -1. The fast paths call it for names that are not
// exactly one of theirs, and leave such a token to encoding/json.
func foldIndex(name []byte, names []string) int {
	for i, n := range names {
		// A rune that folds to an ASCII letter takes at most 3 bytes in
		// UTF-8 (K, U+212A KELVIN SIGN, folds to k).
		if len(name) >= len(n) && len(name) <= 3*len(n) && bytes.EqualFold(name, []byte(n)) {
			return i
		}
	}
	return -1
}
