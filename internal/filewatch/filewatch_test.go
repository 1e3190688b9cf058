package filewatch_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/internal/filewatch"
)

// A file replaced by a rename, or through a Kubernetes ConfigMap's symbolic
// link swap, is read anew; one too large is refused.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The ConfigMap layout: file -> ..data/file, ..data -> ..v1.
	if err := os.Mkdir(filepath.Join(dir, "..v1"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("..v1/rules", "one")
	for _, l := range [][2]string{{"..v1", "..data"}, {"..data/rules", "rules"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	f := filewatch.New(filepath.Join(dir, "rules"), 8)
	read := func(want string) {
		t.Helper()
		data, err := f.Read()
		if err != nil || string(data) != want {
			t.Fatalf("Read = %q, %v; want %q", data, err, want)
		}
	}
	read("one")

	if err := os.Mkdir(filepath.Join(dir, "..v2"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("..v2/rules", "two")
	if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	read("two")

	write("new", "three")
	if err := os.Rename(filepath.Join(dir, "new"), filepath.Join(dir, "..v2", "rules")); err != nil {
		t.Fatal(err)
	}
	read("three")

	write("..v2/rules", "too large!")
	if _, err := f.Read(); err == nil || !strings.Contains(err.Error(), "limit of 8") {
		t.Fatalf("Read of a file over the limit: %v", err)
	}
	os.Remove(filepath.Join(dir, "..v2", "rules"))
	if _, err := f.Read(); !os.IsNotExist(err) {
		t.Fatalf("Read of a missing file: %v, want not exist", err)
	}
}
