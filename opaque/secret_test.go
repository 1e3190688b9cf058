package opaque_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokenward/tokenward/opaque"
)

// ReadSecretFile's errors are *SecretFileError, with the cause unwrapped and
// a Problem without the package prefix.
func TestReadSecretFileError(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	for _, tt := range []struct {
		path, problem string
		notExist      bool
	}{
		{empty, "secret file " + empty + " is empty", false},
		{missing, "secret file: open " + missing + ": no such file or directory", true},
	} {
		_, err := opaque.ReadSecretFile(tt.path)
		var se *opaque.SecretFileError
		if !errors.As(err, &se) {
			t.Fatalf("ReadSecretFile(%s) = %v, not a *SecretFileError", tt.path, err)
		}
		if se.Path != tt.path || se.Problem != tt.problem || err.Error() != "opaque: "+tt.problem {
			t.Errorf("ReadSecretFile(%s) = %+v, want Problem %q", tt.path, se, tt.problem)
		}
		if errors.Is(err, fs.ErrNotExist) != tt.notExist {
			t.Errorf("ReadSecretFile(%s): errors.Is(fs.ErrNotExist) = %v", tt.path, !tt.notExist)
		}
	}
}
