package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestSharedFixtures: the shared fixtures in testdata/ are the README's
// examples, so that the tests run what the README shows, and the demo's
// rules are those too.
func TestSharedFixtures(t *testing.T) {
	readme := readRepoFile(t, "README.md")
	for _, tc := range []struct {
		section, fence, file string
	}{
		{"### Route rules", "```yaml\n", "rules.yaml"},
		{"### Deny list", "```json\n", "denylist.json"},
	} {
		want := readRepoFile(t, filepath.Join("testdata", tc.file))
		if got := codeBlock(t, readme, tc.section, tc.fence); got != want {
			t.Errorf("the README's %q example differs from testdata/%s:\n%s\nthe file:\n%s", tc.section, tc.file, got, want)
		}
	}

	var demo, shared any
	if err := yaml.Unmarshal([]byte(demoRules), &demo); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(readRepoFile(t, filepath.Join("testdata", "rules.yaml"))), &shared); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(demo, shared) {
		t.Errorf("the demo's rules differ from testdata/rules.yaml:\n%v\n%v", demo, shared)
	}
}

// readRepoFile reads a file of the repository by its path from the root.
func readRepoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// codeBlock returns the first code block opened by fence after heading.
func codeBlock(t *testing.T, doc, heading, fence string) string {
	t.Helper()
	_, after, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README has no %q section", heading)
	}
	_, block, ok := strings.Cut(after, fence)
	if !ok {
		t.Fatalf("README's %q section has no %q block", heading, strings.TrimSpace(fence))
	}
	block, _, ok = strings.Cut(block, "```")
	if !ok {
		t.Fatalf("README's %q block is not closed", heading)
	}
	return block
}
