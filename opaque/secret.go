package opaque

import (
	"errors"
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

// ReadSecretFile reads a secret from a file, such as a Kubernetes Secret
// mounted as a volume, without its trailing newline. An empty file is an
// error. The error never quotes the file's contents.
func ReadSecretFile(path string) (Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("opaque: secret file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("opaque: secret file %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("opaque: secret file %s is larger than %d bytes", path, maxSecretFile)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", errors.New("opaque: secret file " + path + " is empty")
	}
	return Secret(s), nil
}
