package jwks

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/MicahParks/jwkset"
)

// Errors a lookup returns. Callers branch on them with [errors.Is].
var (
	// ErrKeyNotFound means the set is loaded but has no key with the requested ID.
	ErrKeyNotFound = errors.New("jwks: key not found")
	// ErrUnavailable means the set has never been loaded: the issuer has been
	// unreachable (or has served no usable keys) since start.
	ErrUnavailable = errors.New("jwks: keys unavailable")
)

// minRSABits is the smallest RSA modulus accepted; RFC 7518 §3.3 requires 2048.
const minRSABits = 2048

// Key is one public verification key.
type Key struct {
	// ID is the key's "kid"; it may be empty for a set with a single key.
	ID string
	// Algorithm is the "alg" the key was published with, or "" when the issuer
	// did not name one. A verifier uses a key only for its own algorithm.
	Algorithm string
	// Public is an *rsa.PublicKey, an *ecdsa.PublicKey or an ed25519.PublicKey.
	Public crypto.PublicKey
}

// keys is an immutable snapshot of a key set.
type keys struct {
	byID map[string]Key
	// only is the single key of a one-key set, used for tokens without "kid".
	only *Key
}

func (k *keys) lookup(kid string) (Key, bool) {
	if kid == "" {
		if k.only != nil {
			return *k.only, true
		}
		return Key{}, false
	}
	key, ok := k.byID[kid]
	return key, ok
}

func (k *keys) len() int { return len(k.byID) }

// ParseError says why a key set was refused.
type ParseError struct {
	Reason string
}

func (e *ParseError) Error() string { return "jwks: " + e.Reason }

// parse decodes a JWK Set and keeps its usable public signature keys. It returns
// the keys and a description of each key it dropped (for logs; never key
// material). A set with no usable key is an error, so that a refresh never
// replaces good keys with nothing.
func parse(data []byte) (*keys, []string, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, nil, &ParseError{Reason: "body is not a JSON Web Key Set"}
	}
	if set.Keys == nil {
		return nil, nil, &ParseError{Reason: `body has no "keys" array`}
	}
	k := &keys{byID: make(map[string]Key, len(set.Keys))}
	var dropped []string
	var noKID []Key
	ambiguous := make(map[string]bool) // kids seen more than once
	for i, raw := range set.Keys {
		key, why := parseKey(raw)
		if why != "" {
			dropped = append(dropped, fmt.Sprintf("key %d: %s", i, why))
			continue
		}
		if key.ID == "" {
			noKID = append(noKID, key)
			continue
		}
		if _, dup := k.byID[key.ID]; dup || ambiguous[key.ID] {
			// Two keys under one kid make the lookup ambiguous; keep none,
			// however many times the kid occurs.
			delete(k.byID, key.ID)
			ambiguous[key.ID] = true
			dropped = append(dropped, fmt.Sprintf("key %d: duplicate kid %q", i, key.ID))
			continue
		}
		k.byID[key.ID] = key
	}
	switch {
	case len(k.byID) == 1 && len(noKID) == 0:
		for _, key := range k.byID {
			k.only = &key
		}
	case len(k.byID) == 0 && len(noKID) == 1:
		k.only = &noKID[0]
		k.byID[""] = noKID[0]
	case len(noKID) > 0:
		dropped = append(dropped, fmt.Sprintf("%d keys without kid in a set of several", len(noKID)))
	}
	if len(k.byID) == 0 {
		return nil, dropped, &ParseError{Reason: "key set has no usable signature key"}
	}
	return k, dropped, nil
}

// parseKey converts one JWK, or says why it is not usable.
func parseKey(raw json.RawMessage) (Key, string) {
	var m jwkset.JWKMarshal
	if err := json.Unmarshal(raw, &m); err != nil {
		return Key{}, "not a JSON object"
	}
	if m.USE != "" && m.USE != jwkset.UseSig {
		return Key{}, fmt.Sprintf("use %q is not sig", m.USE)
	}
	if m.KEYOPS != nil && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
		// RFC 7517 §4.3: a key published for other operations (encrypt,
		// wrapKey, …) must not verify signatures.
		return Key{}, fmt.Sprintf("key_ops %.100q has no verify", m.KEYOPS)
	}
	if m.D != "" || m.K != "" || m.KTY == jwkset.KtyOct {
		// A published private or symmetric key is an issuer misconfiguration;
		// trusting it would let anyone who read the set mint tokens.
		return Key{}, "private or symmetric key material"
	}
	// jwkset validates the parameters and never follows x5u (no GetX5U set).
	jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return Key{}, "invalid or unsupported key"
	}
	key := Key{ID: m.KID, Algorithm: string(m.ALG), Public: jwk.Key()}
	switch pub := key.Public.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits {
			return Key{}, fmt.Sprintf("RSA key of %d bits (minimum %d)", pub.N.BitLen(), minRSABits)
		}
		if hasROCAFingerprint(pub.N) {
			return Key{}, "RSA key with the ROCA weakness (CVE-2017-15361): its modulus can be factored"
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return Key{}, "unsupported key type"
	}
	return key, ""
}
