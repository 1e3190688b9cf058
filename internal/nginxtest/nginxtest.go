// Package nginxtest runs a real NGINX for a test: the forward-auth recipe
// the README shows is tested against it, in this module's proxy tests and in
// the interop module's differential route test.
package nginxtest

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/tokenward/tokenward/internal/syncbuf"
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
	// NGINX cannot be handed a listener: pick a free loopback port and
	// release it for NGINX to bind.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	vars.Listen = ln.Addr().String()
	ln.Close()
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

	var output syncbuf.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // fast shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(errorLog)
			t.Logf("nginx output:\n%s\nerror.log:\n%s", output.String(), log)
		}
	})

	// NGINX gives no readiness signal: poll its port, bounded.
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := net.DialTimeout("tcp", vars.Listen, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(errorLog)
			t.Fatalf("nginx did not listen on %s within 10s: %v\n%s\n%s", vars.Listen, err, output.String(), log)
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(errorLog)
			t.Fatalf("nginx exited: %v\n%s\n%s", err, output.String(), log)
		case <-tick.C:
		}
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &Server{URL: "http://" + vars.Listen, Client: &http.Client{Transport: tr}, Dir: dir}
}
