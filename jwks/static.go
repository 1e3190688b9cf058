package jwks

import (
	"context"
	"fmt"
	"os"
	"slices"
)

// Static is a fixed key set, read once from JWKS bytes or a file. It suits
// air-gapped deployments, where the issuer's keys are shipped with the
// configuration, and tests.
type Static struct {
	keys    *keys
	dropped []string
}

// NewStatic parses a JSON Web Key Set. It fails if the set has no usable
// public signature key.
func NewStatic(jwksJSON []byte) (*Static, error) {
	k, dropped, err := parse(jwksJSON)
	if err != nil {
		return nil, err
	}
	return &Static{keys: k, dropped: dropped}, nil
}

// Dropped says why each key of the set that is not used was dropped (for
// example `key 2: use "enc" is not sig`), for the caller's log. It never
// holds key material.
func (s *Static) Dropped() []string { return slices.Clone(s.dropped) }

// LoadFile reads a JSON Web Key Set from a file.
func LoadFile(path string) (*Static, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwks: read key set: %w", err)
	}
	s, err := NewStatic(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return s, nil
}

// Key returns the key with the given ID, or [ErrKeyNotFound].
func (s *Static) Key(_ context.Context, kid string) (Key, error) {
	if k, ok := s.keys.lookup(kid); ok {
		return k, nil
	}
	return Key{}, ErrKeyNotFound
}

// Len reports how many keys the set holds.
func (s *Static) Len() int { return s.keys.len() }
