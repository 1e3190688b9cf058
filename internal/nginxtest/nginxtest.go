// Package nginxtest runs a real NGINX for a test: the forward-auth recipe
// the README shows is tested against it, in this module's proxy tests and in
// the interop module's differential route test.
package nginxtest

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"text/template"

	"github.com/tokenward/tokenward/internal/processtest"
)

// Require returns the nginx binary, skipping the test when there is none
// locally and failing in CI (CI set), where it is installed with apt-get.
func Require(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("nginx")
	if err != nil {
		// Debian and Ubuntu install it in /usr/sbin, not on every user's PATH.
		path, err = exec.LookPath("/usr/sbin/nginx")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("nginx is not on PATH; CI must install it (apt-get install -y nginx)")
		}
		t.Skip("nginx is not on PATH (apt-get install -y nginx)")
	}
	out, err := exec.Command(path, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -V: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("http_auth_request_module")) {
		t.Fatalf("%s was built without http_auth_request_module, which forward-auth needs; nginx -V says:\n%s", path, out)
	}
	return path
}

// Vars fill the configuration template. Start sets Listen and Dir.
type Vars struct {
	Listen, Tokenward, API, Dir string
}

// Server is an NGINX running in the foreground for one test.
type Server struct {
	URL    string // http://host:port
	Client *http.Client
	Dir    string // its prefix directory; error.log is there
}

// Start runs nginx with conf (a text/template over Vars) until the test
// ends, and waits until it accepts connections.
func Start(t *testing.T, bin, conf string, vars Vars) *Server {
	t.Helper()
	dir := t.TempDir()
	vars.Listen = processtest.FreeAddr(t)
	vars.Dir = dir

	tmpl, err := template.New("nginx.conf").Option("missingkey=error").Parse(conf)
	if err != nil {
		t.Fatal(err)
	}
	var rendered bytes.Buffer
	if err := tmpl.Execute(&rendered, vars); err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, rendered.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	errorLog := filepath.Join(dir, "error.log")
	// -e (NGINX 1.19.5+) keeps NGINX from opening the default error log
	// before it reads the configuration; older versions only warn.
	args := []string{"-p", dir, "-e", errorLog, "-c", confPath}
	out, err := exec.Command(bin, append([]string{"-t", "-q"}, args...)...).CombinedOutput()
	if err != nil && bytes.Contains(out, []byte("invalid option")) {
		args = args[2:]
		out, err = exec.Command(bin, append([]string{"-t", "-q"}, args...)...).CombinedOutput()
	}
	if err != nil {
		t.Fatalf("nginx -t rejects the configuration: %v\n%s", err, out)
	}

	errorLogText := func() string { log, _ := os.ReadFile(errorLog); return "error.log:\n" + string(log) }
	processtest.Serve(t, "nginx", exec.Command(bin, args...), vars.Listen, errorLogText)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &Server{URL: "http://" + vars.Listen, Client: &http.Client{Transport: tr}, Dir: dir}
}
