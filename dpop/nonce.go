package dpop

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// MinNonceSecret is the shortest secret [NewNonces] accepts: 256 bits.
const MinNonceSecret = 32

// DefaultNonceWindow is how long a nonce is current when
// [NonceOptions].Window is zero.
const DefaultNonceWindow = 5 * time.Minute

// NonceOptions tunes [Nonces]. The zero value rotates every
// [DefaultNonceWindow].
type NonceOptions struct {
	// Window is how long one nonce is current. A nonce is accepted while
	// its window or the next one is current: for Window to 2×Window.
	// Zero means [DefaultNonceWindow].
	Window time.Duration
}

// Nonces makes and checks server nonces (RFC 9449 §8) without state: a
// nonce is an HMAC-SHA256, under a secret, of the number of the time window
// it was made in. Every replica given the same secret accepts every other
// replica's nonces, with no store to share. Safe for concurrent use.
type Nonces struct {
	secret []byte
	window time.Duration
	// cur caches the current window's nonce, so that Current and Valid
	// compute one HMAC per window rather than per request.
	cur atomic.Pointer[windowNonce]
}

type windowNonce struct {
	n     int64
	nonce string
}

// NewNonces returns nonces authenticated with secret (at least
// [MinNonceSecret] bytes; read it with [ReadSecretFile]).
func NewNonces(secret []byte, opts NonceOptions) (*Nonces, error) {
	var errs []error
	if len(secret) < MinNonceSecret {
		errs = append(errs, fmt.Errorf("dpop: nonce secret of %d bytes, want at least %d", len(secret), MinNonceSecret))
	}
	if opts.Window < 0 {
		errs = append(errs, errors.New("dpop: negative nonce window"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	w := opts.Window
	if w == 0 {
		w = DefaultNonceWindow
	}
	return &Nonces{secret: bytes.Clone(secret), window: w}, nil
}

func (n *Nonces) windowOf(now time.Time) int64 { return now.UnixNano() / int64(n.window) }

func (n *Nonces) make(w int64) string {
	if c := n.cur.Load(); c != nil && c.n == w {
		return c.nonce
	}
	m := hmac.New(sha256.New, n.secret)
	var b [8 + 20]byte
	copy(b[8:], "tokenward dpop nonce")
	binary.BigEndian.PutUint64(b[:8], uint64(w))
	m.Write(b[:])
	// 128 bits of the MAC: a forgery is a 2⁻¹²⁸ guess.
	s := base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
	if c := n.cur.Load(); c == nil || c.n < w {
		n.cur.Store(&windowNonce{n: w, nonce: s})
	}
	return s
}

// Current returns the nonce to give clients at now.
func (n *Nonces) Current(now time.Time) string { return n.make(n.windowOf(now)) }

// Valid reports whether nonce is the current nonce at now or the previous
// window's.
func (n *Nonces) Valid(nonce string, now time.Time) bool {
	if len(nonce) != 22 {
		return false
	}
	w := n.windowOf(now)
	return hmac.Equal([]byte(nonce), []byte(n.make(w))) || hmac.Equal([]byte(nonce), []byte(n.make(w-1)))
}

// maxSecretFile bounds what ReadSecretFile reads.
const maxSecretFile = 4096

// ReadSecretFile reads a nonce secret from a file (a Kubernetes secret
// mounted as a file, say): its bytes without trailing newlines and spaces,
// at least [MinNonceSecret] of them.
func ReadSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dpop: nonce secret: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("dpop: nonce secret: %w", err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("dpop: nonce secret file %s is over %d bytes", path, maxSecretFile)
	}
	b = bytes.TrimRight(b, "\r\n\t ")
	if len(b) < MinNonceSecret {
		return nil, fmt.Errorf("dpop: nonce secret file %s holds %d bytes, want at least %d", path, len(b), MinNonceSecret)
	}
	return b, nil
}
