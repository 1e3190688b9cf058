package proxy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/tokenward/tokenward/internal/nginxtest"
)

// readmeSnippet returns the code block of the README between
// <!-- name-snippet --> and <!-- /name-snippet -->.
func readmeSnippet(t *testing.T, name, lang string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	open, end := "<!-- "+name+"-snippet -->\n```"+lang+"\n", "```\n<!-- /"+name+"-snippet -->"
	_, rest, ok := strings.Cut(string(readme), open)
	if !ok {
		t.Fatalf("README.md has no %q", open)
	}
	shown, _, ok := strings.Cut(rest, end)
	if !ok {
		t.Fatalf("README.md has no %q after %q", end, open)
	}
	return shown
}

// TestCaddyRecipeInREADME: the README shows the Caddyfile that
// TestCaddyForwardAuth runs, byte for byte.
func TestCaddyRecipeInREADME(t *testing.T) {
	recipe, err := os.ReadFile(caddyConfig)
	if err != nil {
		t.Fatal(err)
	}
	if readmeSnippet(t, "caddy", "caddyfile") != string(recipe) {
		t.Errorf("the README's Caddy recipe differs from %s; copy the file into the README", caddyConfig)
	}
}

// TestNGINXRecipeInREADME: the README shows the configuration that
// TestNGINXForwardAuth runs: the template with the README's addresses,
// without its test harness (main and http settings), one level less
// indented.
func TestNGINXRecipeInREADME(t *testing.T) {
	want := nginxRecipe(t, nginxConfig, nginxtest.Vars{Listen: "80", Tokenward: "127.0.0.1:8080", API: "127.0.0.1:3000"})
	if got := readmeSnippet(t, "nginx", "nginx"); got != want {
		t.Errorf("the README's NGINX recipe differs from %s rendered without its harness; want:\n%s", nginxConfig, want)
	}
}

// TestNGINXClientCertRecipeInREADME: the README shows the configuration
// that TestNGINXClientCert runs, as TestNGINXRecipeInREADME checks.
func TestNGINXClientCertRecipeInREADME(t *testing.T) {
	want := nginxRecipe(t, nginxClientCertConfig, nginxtest.Vars{Listen: "443", Tokenward: "127.0.0.1:8080"})
	if got := readmeSnippet(t, "nginx-client-cert", "nginx"); got != want {
		t.Errorf("the README's NGINX client-certificate recipe differs from %s rendered without its harness; want:\n%s", nginxClientCertConfig, want)
	}
}

// nginxRecipe renders the NGINX template at path with vars, without its
// test harness (main and http settings), one level less indented.
func nginxRecipe(t *testing.T, path string, vars nginxtest.Vars) string {
	t.Helper()
	conf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.New("nginx.conf").Option("missingkey=error").Parse(string(conf))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, vars); err != nil {
		t.Fatal(err)
	}
	const harnessEnd = "# --- end of test harness ---\n"
	_, body, ok := strings.Cut(b.String(), harnessEnd)
	if !ok {
		t.Fatalf("%s has no %q", path, harnessEnd)
	}
	// The block after the harness closes the harness's http {.
	body, ok = strings.CutSuffix(strings.TrimRight(body, "\n"), "}")
	if !ok {
		t.Fatalf("%s does not end with the http block's }", path)
	}
	lines := strings.Split(strings.Trim(body, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "    ")
	}
	return strings.Join(lines, "\n") + "\n"
}
