package denylist

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tokenward/tokenward/middleware"
)

// snapshot is one loaded list. It is never modified once published, so
// Revoked reads it without a lock.
type snapshot struct {
	jti map[string]struct{}
	sub map[string]time.Time // subject -> tokens issued before this are revoked
}

var empty = &snapshot{jti: map[string]struct{}{}, sub: map[string]time.Time{}}

// revoked is the check of [List.Revoked].
func (s *snapshot) revoked(c *middleware.Claims) bool {
	if c == nil {
		return false
	}
	if c.ID != "" {
		if _, ok := s.jti[c.ID]; ok {
			return true
		}
	}
	if c.Subject != "" && len(s.sub) > 0 {
		if before, ok := s.sub[c.Subject]; ok && (c.IssuedAt.IsZero() || c.IssuedAt.Before(before)) {
			return true
		}
	}
	return false
}

func (s *snapshot) entries() int { return len(s.jti) + len(s.sub) }

// file is the JSON form of a deny list.
type file struct {
	JTI []string  `json:"jti"`
	Sub []subject `json:"sub"`
}

type subject struct {
	Sub    string    `json:"sub"`
	Before time.Time `json:"before"` // RFC 3339
}

// parse reads a deny list (see the package documentation for the format).
// It is strict, so that a typo does not silently revoke nothing: the top
// level must be an object with no other members than "jti" and "sub", every
// jti and sub must be a non-empty string, every sub entry needs "before"
// (RFC 3339), and nothing may follow the object. Member names are
// case-sensitive and appear once per object. At most maxEntries entries.
func parse(data []byte, maxEntries int) (*snapshot, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("denylist: the list is empty (want at least {})")
	}
	if trimmed[0] != '{' {
		return nil, errors.New("denylist: the list is not a JSON object")
	}
	if err := checkNames(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f file
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("denylist: the list is not valid: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("denylist: data after the list's JSON object")
	}
	if n := len(f.JTI) + len(f.Sub); n > maxEntries {
		return nil, fmt.Errorf("denylist: %d entries, more than the limit of %d", n, maxEntries)
	}
	s := &snapshot{jti: make(map[string]struct{}, len(f.JTI)), sub: make(map[string]time.Time, len(f.Sub))}
	for i, jti := range f.JTI {
		if jti == "" {
			return nil, fmt.Errorf("denylist: jti[%d] is empty", i)
		}
		s.jti[jti] = struct{}{}
	}
	for i, e := range f.Sub {
		switch {
		case e.Sub == "":
			return nil, fmt.Errorf("denylist: sub[%d] has no sub", i)
		case e.Before.IsZero():
			return nil, fmt.Errorf("denylist: sub[%d] has no before time", i)
		}
		if prev, ok := s.sub[e.Sub]; !ok || e.Before.After(prev) {
			s.sub[e.Sub] = e.Before // the latest before-time of a subject wins
		}
	}
	return s, nil
}

// checkNames refuses what encoding/json would silently accept in the list's
// objects: a member given twice (it keeps only the last, so {"jti":["a"],
// "jti":["b"]} would not revoke a) and a name that differs from a known one
// only by case ("JTI", "Sub": it matches names case-insensitively, last one
// winning). Anything else malformed is left to the decoding that follows,
// which reports it.
func checkNames(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	members, err := objectMembers(dec, "the list", "jti", "sub")
	if err != nil || members == nil {
		return err
	}
	sub, ok := members["sub"]
	if !ok {
		return nil
	}
	dec = json.NewDecoder(bytes.NewReader(sub))
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil // null, or not an array: the decoding reports it
	}
	for i := 0; dec.More(); i++ {
		var entry json.RawMessage
		if err := dec.Decode(&entry); err != nil {
			return nil
		}
		ed := json.NewDecoder(bytes.NewReader(entry))
		if _, err := objectMembers(ed, fmt.Sprintf("sub[%d]", i), "sub", "before"); err != nil {
			return err
		}
	}
	return nil
}

// objectMembers reads an object from dec and returns its members by name.
// A name given twice, or differing from one of names only by case, is an
// error naming where. A value that is not an object, or malformed JSON,
// returns nil and no error: the decoding reports those.
func objectMembers(dec *json.Decoder, where string, names ...string) (map[string]json.RawMessage, error) {
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil
	}
	members := make(map[string]json.RawMessage, len(names))
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil
		}
		name, _ := t.(string)
		for _, known := range names {
			if name != known && strings.EqualFold(name, known) {
				return nil, fmt.Errorf("denylist: %s: member %.40q is not %q: member names are case-sensitive", where, name, known)
			}
		}
		if _, dup := members[name]; dup {
			return nil, fmt.Errorf("denylist: %s: member %.40q appears twice (only one would count): merge them", where, name)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil
		}
		members[name] = v
	}
	return members, nil
}
