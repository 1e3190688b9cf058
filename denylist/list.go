package denylist

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// (RFC 3339), and nothing may follow the object. At most maxEntries entries.
func parse(data []byte, maxEntries int) (*snapshot, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("denylist: the list is empty (want at least {})")
	}
	if trimmed[0] != '{' {
		return nil, errors.New("denylist: the list is not a JSON object")
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
