package interop_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/syncbuf"
)

// The real upstreams of TestDifferentialRoutes. Each serves the routes of
// diffRules (one route per rule, and a catch-all) and answers 200 with
// {"upstream":…,"route":…,"method":…,"path":…}: the route it served, the
// method its handler ran for and the path it routed on.

// diffUpstream is one running upstream.
type diffUpstream struct {
	name string
	addr string // host:port on loopback
}

// missingRuntime skips the test when a runtime an upstream needs is not
// installed, naming the command that installs it; in CI, where .ci/run
// installs it, the test fails instead.
func missingRuntime(t *testing.T, what, install string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; CI must install it (%s)", what, install)
	}
	t.Skipf("%s is not installed (%s)", what, install)
}

const upstreamsDir = "testdata/upstreams"

// portLine is what each upstream program prints once it listens.
var portLine = regexp.MustCompile(`(?m)^PORT (\d+)\r?$`)

// startUpstreamProgram runs cmd until the test ends and returns the
// loopback address it printed. Its output is kept and printed if the test
// fails.
func startUpstreamProgram(t *testing.T, name string, cmd *exec.Cmd) string {
	t.Helper()
	var output syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", name, output.String())
		}
	})

	// The program prints its port once it listens: poll the output, then
	// the port, bounded.
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	addr := ""
	for {
		if addr == "" {
			if m := portLine.FindStringSubmatch(output.String()); m != nil {
				addr = net.JoinHostPort("127.0.0.1", m[1])
			}
		}
		if addr != "" {
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				conn.Close()
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen within 60s:\n%s", name, output.String())
		}
		select {
		case err := <-exited:
			t.Fatalf("%s exited: %v\n%s", name, err, output.String())
		case <-tick.C:
		}
	}
}

// tomcatJars are the Debian libtomcat10-java jars an embedded Tomcat needs.
var tomcatJars = []string{"catalina", "coyote", "util", "util-scan", "juli", "api",
	"servlet-api", "jaspic-api", "annotations-api", "jni"}

// startTomcat compiles testdata/upstreams/tomcat/Routes.java into a temporary
// directory and runs it: embedded Tomcat 10.1, one servlet per route.
func startTomcat(t *testing.T) diffUpstream {
	const install = "apt-get install -y libtomcat10-java openjdk-17-jdk-headless"
	javac, err := exec.LookPath("javac")
	if err != nil {
		missingRuntime(t, "javac", install)
	}
	java, err := exec.LookPath("java")
	if err != nil {
		missingRuntime(t, "java", install)
	}
	var cp []string
	for _, j := range tomcatJars {
		path := "/usr/share/java/tomcat10-" + j + ".jar"
		if _, err := os.Stat(path); err != nil {
			missingRuntime(t, path, install)
		}
		cp = append(cp, path)
	}
	dir := t.TempDir()
	classes := filepath.Join(dir, "classes")
	src, err := filepath.Abs(filepath.Join(upstreamsDir, "tomcat", "Routes.java"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(javac, "-d", classes, "-cp", strings.Join(cp, ":"), src).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	// A small, quick JVM: the test needs seconds of Tomcat, not throughput.
	cmd := exec.Command(java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xss512k",
		"-cp", classes+":"+strings.Join(cp, ":"), "Routes", filepath.Join(dir, "base"))
	return diffUpstream{name: "tomcat", addr: startUpstreamProgram(t, "tomcat", cmd)}
}

// startFlask runs testdata/upstreams/flask/app.py with Werkzeug's server.
func startFlask(t *testing.T) diffUpstream {
	const install = "apt-get install -y python3-flask"
	// Debian's python3-flask lives in /usr/bin/python3; a python3 earlier on
	// PATH (pyenv, a virtualenv) may not have it.
	var python string
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil && exec.Command(path, "-c", "import flask").Run() == nil {
			python = path
			break
		}
	}
	if python == "" {
		missingRuntime(t, "python3 with Flask", install)
	}
	cmd := exec.Command(python, "-u", filepath.Join(upstreamsDir, "flask", "app.py"))
	return diffUpstream{name: "flask", addr: startUpstreamProgram(t, "flask", cmd)}
}

// startExpress runs testdata/upstreams/express/app.js: Express 4 with the
// method-override middleware, installed by npm ci from the lock file.
func startExpress(t *testing.T) diffUpstream {
	dir := filepath.Join(upstreamsDir, "express")
	install := "apt-get install -y nodejs npm; cd interop/" + dir + " && npm ci"
	node, err := exec.LookPath("node")
	if err != nil {
		missingRuntime(t, "node", install)
	}
	for _, m := range []string{"express", "method-override"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", m, "package.json")); err != nil {
			missingRuntime(t, "npm package "+m, install)
		}
	}
	cmd := exec.Command(node, "app.js")
	cmd.Dir = dir
	return diffUpstream{name: "express", addr: startUpstreamProgram(t, "express", cmd)}
}

// startGoMux serves the routes with net/http.ServeMux patterns.
func startGoMux(t *testing.T) diffUpstream {
	mux := http.NewServeMux()
	names := map[string]string{
		"GET /static/":           "static",
		"GET /status":            "status",
		"/admin/":                "admin",
		"DELETE /api/users/{id}": "users_delete",
		"GET /api/users/{id}":    "users_get",
		"/":                      "unmatched",
	}
	for pattern, route := range names {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(servedRoute{Upstream: "go", Route: route, Method: r.Method, Path: r.URL.Path})
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return diffUpstream{name: "go", addr: hostOf(srv)}
}
