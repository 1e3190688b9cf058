// Package tokenhash is the SHA-256 of a token: the key under which the
// verified-token cache (middleware) and the opaque-answer cache (opaque)
// remember a token without storing it.
package tokenhash

import (
	"crypto/sha256"
	"unsafe"
)

// Sum returns the SHA-256 of token. It hashes the string's bytes in place:
// []byte(token) would copy a token of hundreds of bytes on every request,
// and hashing only reads them, so the immutable string is never written.
func Sum(token string) [sha256.Size]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}
