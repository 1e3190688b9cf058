package proxy_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/internal/syncbuf"
	"github.com/tokenward/tokenward/proxy"
)

// wsgiApp answers with the HTTP_* variables of its WSGI environ, as JSON:
// the names an application reads headers by. Python's wsgiref (the WSGI
// reference server) names a header by replacing "-" with "_" and joins the
// values of names that become equal: X_Real_IP and X-Real-IP are both
// HTTP_X_REAL_IP.
const wsgiApp = `import json
from wsgiref.simple_server import make_server, WSGIRequestHandler

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

def app(environ, start_response):
    body = json.dumps({k: v for k, v in environ.items() if k.startswith("HTTP_")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
`

// startWSGI runs wsgiApp under python3 until the test ends and returns its
// URL. Without python3 the test skips, except in CI, where it fails.
func startWSGI(t *testing.T) string {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is not on PATH; CI must install it (apt-get install -y python3)")
		}
		t.Skip("python3 is not on PATH (apt-get install -y python3)")
	}
	script := filepath.Join(t.TempDir(), "app.py")
	if err := os.WriteFile(script, []byte(wsgiApp), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr syncbuf.Buffer
	cmd := exec.Command(python, script)
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("python3 stderr:\n%s", stderr.String())
		}
	})
	// The app prints its port once it listens.
	port := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		port <- strings.TrimSpace(line)
	}()
	p := within(t, port, "the WSGI app's port")
	if p == "" {
		t.Fatalf("the WSGI app did not start:\n%s", stderr.String())
	}
	return "http://127.0.0.1:" + p
}

// TestClientAddressHeadersWSGI: through the proxy, a WSGI application
// behind Python's wsgiref sees only the proxy's client-address headers, and
// only tokenward's identity, whatever spelling the client used.
func TestClientAddressHeadersWSGI(t *testing.T) {
	iss := newIssuer(t)
	upstream := startWSGI(t)
	srv := startProxy(t, upstream, defaultConfig(t, iss), proxy.UpstreamOptions{})

	h := map[string][]string{
		"X_Real_IP":        {"6.6.6.6"},
		"X_Forwarded_For":  {"6.6.6.6"},
		"X_Forwarded_Host": {"evil.example"},
		"True_Client_IP":   {"6.6.6.6"},
		"X_Client_IP":      {"6.6.6.6"},
		"X_Auth_Subject":   {"auth0|admin"},
		"X_Request_Id":     {"kept"},
	}
	resp, body := do(t, srv, request{host: "api.example.com", path: "/x", token: withScope(t, iss, "api"), header: h})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	var environ map[string]string
	if err := json.Unmarshal([]byte(body), &environ); err != nil {
		t.Fatalf("the WSGI app's answer %q: %v", body, err)
	}
	want := map[string]string{
		"HTTP_X_FORWARDED_FOR":   "127.0.0.1",
		"HTTP_X_FORWARDED_HOST":  "api.example.com",
		"HTTP_X_FORWARDED_PROTO": "http",
		"HTTP_X_AUTH_SUBJECT":    "auth0|test-user",
		"HTTP_X_REQUEST_ID":      "kept",
		"HTTP_X_REAL_IP":         "",
		"HTTP_TRUE_CLIENT_IP":    "",
		"HTTP_X_CLIENT_IP":       "",
	}
	for k, w := range want {
		if got := environ[k]; got != w {
			t.Errorf("environ[%s] = %q, want %q", k, got, w)
		}
	}
}
