package denylist_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/denylist"
)

// A list that cannot be read or parsed fails with a *LoadError naming the
// source, whose Problem has no package prefix (the error says it once), and
// which unwraps to the cause.
func TestLoadError(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`["a"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.json")
	for _, tt := range []struct {
		file, problem string
		notExist      bool
	}{
		{bad, "the list is not a JSON object (in " + bad + ")", false},
		{missing, "stat " + missing + ": no such file or directory", true},
	} {
		l, err := denylist.New(denylist.Options{File: tt.file})
		if err != nil {
			t.Fatal(err)
		}
		err = l.Reload(context.Background())
		var le *denylist.LoadError
		if !errors.As(err, &le) {
			t.Fatalf("Reload(%s) = %v, not a *LoadError", tt.file, err)
		}
		if le.Source != tt.file || le.Problem != tt.problem {
			t.Errorf("Reload(%s) = %+v, want Problem %q", tt.file, le, tt.problem)
		}
		if n := strings.Count(err.Error(), "denylist: "); n != 1 || !strings.HasPrefix(err.Error(), "denylist: ") {
			t.Errorf("Reload(%s) = %q, want the package prefix once, first", tt.file, err)
		}
		if errors.Is(err, fs.ErrNotExist) != tt.notExist {
			t.Errorf("Reload(%s): errors.Is(fs.ErrNotExist) = %v", tt.file, !tt.notExist)
		}
	}
}
