package opaque

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Secret is a client secret. It prints, logs and marshals as "[REDACTED]",
// so that an options struct can be logged or dumped without leaking it; only
// the Authorization header of a request to the issuer carries its value.
type Secret string

const redacted = "[REDACTED]"

// String returns "[REDACTED]", never the secret.
func (Secret) String() string { return redacted }

// GoString returns "[REDACTED]", for %#v.
func (Secret) GoString() string { return redacted }

// LogValue returns "[REDACTED]", for log/slog.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText returns "[REDACTED]", for encoding/json and the like.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// maxSecretFile bounds what ReadSecretFile reads.
const maxSecretFile = 64 << 10

// SecretFileError is the error of [ReadSecretFile]. It never quotes the
// file's contents.
type SecretFileError struct {
	Path string
	// Problem is a client-safe sentence saying what is wrong with the file,
	// such as "secret file /run/secret is empty", without this package's
	// prefix: a caller that names the setting prints it after the name.
	Problem string
	// Err is the underlying error (an *fs.PathError, say), or nil.
	Err error
}

func (e *SecretFileError) Error() string { return "opaque: " + e.Problem }

func (e *SecretFileError) Unwrap() error { return e.Err }

// ReadSecretFile reads a secret from a file, such as a Kubernetes Secret
// mounted as a volume, without its trailing newline. An empty file is an
// error. The error, a [*SecretFileError], never quotes the file's contents.
func ReadSecretFile(path string) (Secret, error) {
	fail := func(err error, format string, args ...any) (Secret, error) {
		return "", &SecretFileError{Path: path, Problem: fmt.Sprintf(format, args...), Err: err}
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(err, "secret file: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return fail(err, "secret file %s: %v", path, err)
	}
	if len(b) > maxSecretFile {
		return fail(nil, "secret file %s is larger than %d bytes", path, maxSecretFile)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return fail(nil, "secret file %s is empty", path)
	}
	return Secret(s), nil
}
