package jwks_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/jwks"
)

// CheckURL's error wraps a *URLError whose Problem names the URL without its
// user info: the binary prints Problem after the variable's name.
func TestCheckURLError(t *testing.T) {
	for _, tt := range []struct {
		url, problem string
	}{
		{"http://idp.example.com/", `"http://idp.example.com/" must use https (http is allowed only for loopback hosts)`},
		{"https://user:hunter2@idp.example.com/", `"https://REDACTED@idp.example.com/" must not have user info`},
		{"https://idp.example.com/?a=1", `"https://idp.example.com/?a=1" must not have a query or a fragment`},
		{"ftp://idp.example.com/", `"ftp://idp.example.com/" must be an https URL`},
		{"idp.example.com", `"idp.example.com" is not an absolute URL with a host`},
	} {
		err := jwks.CheckURL(tt.url)
		var ue *jwks.URLError
		if !errors.As(err, &ue) {
			t.Errorf("CheckURL(%q) = %v, not a *URLError", tt.url, err)
			continue
		}
		if ue.Problem != tt.problem {
			t.Errorf("CheckURL(%q): Problem = %q, want %q", tt.url, ue.Problem, tt.problem)
		}
		if want := "jwks: " + tt.problem; err.Error() != want {
			t.Errorf("CheckURL(%q) = %q, want %q", tt.url, err, want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("CheckURL(%q) echoes the password: %v", tt.url, err)
		}
	}
}

// LoadFile's error says why through types: a *ParseError for a file that is
// not a usable key set, an *fs.PathError for one that cannot be read.
func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"keys": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := jwks.LoadFile(bad)
	var pe *jwks.ParseError
	if !errors.As(err, &pe) || pe.Reason != "key set has no usable signature key" {
		t.Errorf("LoadFile(empty set) = %v, want a *ParseError", err)
	}
	_, err = jwks.LoadFile(filepath.Join(dir, "missing.json"))
	var pathErr *fs.PathError
	if !errors.As(err, &pathErr) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadFile(missing) = %v, want an *fs.PathError", err)
	}
}
