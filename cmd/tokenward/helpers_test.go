package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/testparallel"
	"github.com/tokenward/tokenward/jwks/jwkstest"
)

// bin is the tokenward binary, built once by TestMain while the tests that
// do not need it run: start waits for built.
var (
	bin      string
	built    = make(chan struct{}) // closed once the build has ended
	buildErr error                 // of the build; read after built
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	// Most tests here wait on a child process or the network, not the CPU.
	testparallel.AtLeast(4)
	dir, err := os.MkdirTemp("", "tokenward-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "tokenward")
	// Built without -race even under go test -race: the upload test bounds
	// the binary's memory, which the race detector multiplies. The wiring
	// runs under the race detector in TestRunInProcess.
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	go func() {
		buildErr = build.Run()
		close(built)
	}()
	defer func() { <-built }() // before dir goes
	// In-process runs (runToExit) retry at start 1 ms apart; the binary
	// keeps its own schedule.
	startBackoff = time.Millisecond
	return m.Run()
}

// builtBinary returns the path of the built binary, failing the test if it
// could not be built.
func builtBinary(t *testing.T) string {
	t.Helper()
	<-built
	if buildErr != nil {
		t.Fatalf("building tokenward: %v", buildErr)
	}
	return bin
}

// waitTimeout bounds every wait for the binary: generous, since it only
// matters when something is broken.
const waitTimeout = 20 * time.Second

const audience = "https://api.example.com"

// lines collects what a process writes, line by line, and lets a test wait
// for a line. It is an io.Writer, safe for concurrent use.
type lines struct {
	mu      sync.Mutex // guards the fields below
	partial []byte
	all     []string
	done    bool          // no more lines will come
	changed chan struct{} // closed and replaced whenever all or done changes
}

func newLines() *lines { return &lines{changed: make(chan struct{})} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	grew := false
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.all = append(l.all, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		grew = true
	}
	if grew {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

// finish marks the end of the output.
func (l *lines) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.all = append(l.all, string(l.partial))
		l.partial = nil
	}
	l.done = true
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n") + string(l.partial)
}

// wait returns the first line for which match is true, waiting for it.
func (l *lines) wait(t *testing.T, what string, match func(string) bool) string {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for i := 0; ; {
		l.mu.Lock()
		for ; i < len(l.all); i++ {
			if match(l.all[i]) {
				s := l.all[i]
				l.mu.Unlock()
				return s
			}
		}
		done, changed := l.done, l.changed
		l.mu.Unlock()
		if done {
			t.Fatalf("output ended without %s; it was:\n%s", what, l.String())
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("no %s within %s; output so far:\n%s", what, waitTimeout, l.String())
		}
	}
}

// logLine is one JSON log line of the binary.
type logLine map[string]any

func parseLog(s string) logLine {
	var l logLine
	if json.Unmarshal([]byte(s), &l) != nil {
		return nil
	}
	return l
}

func (l logLine) str(k string) string { s, _ := l[k].(string); return s }

// waitLog waits for a JSON log line with the message msg and, for each pair
// of kv, that attribute.
func (l *lines) waitLog(t *testing.T, msg string, kv ...string) logLine {
	t.Helper()
	what := fmt.Sprintf("log line %q %v", msg, kv)
	line := l.wait(t, what, func(s string) bool {
		ll := parseLog(s)
		if ll == nil || ll.str("msg") != msg {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if ll.str(kv[i]) != kv[i+1] {
				return false
			}
		}
		return true
	})
	return parseLog(line)
}

// process is a running tokenward.
type process struct {
	cmd    *exec.Cmd
	stdout *lines
	stderr *lines
	done   chan struct{} // closed when the process has exited
	err    error         // of Wait; read after done
}

// start runs the binary with exactly env as its environment. The process is
// killed at the end of the test if still running.
func start(t *testing.T, env map[string]string, stdin io.Reader, args ...string) *process {
	t.Helper()
	cmd := exec.Command(builtBinary(t), args...)
	cmd.Env = []string{}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	slices.Sort(cmd.Env)
	p := &process{cmd: cmd, stdout: newLines(), stderr: newLines(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr, cmd.Stdin = p.stdout, p.stderr, stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting tokenward: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		p.stdout.finish()
		p.stderr.finish()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("tokenward %v stderr:\n%s", args, p.stderr.String())
		}
	})
	return p
}

// exit waits for the process to end and returns its exit status.
func (p *process) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		t.Fatalf("tokenward did not exit within %s; stderr:\n%s", waitTimeout, p.stderr.String())
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		t.Fatalf("waiting for tokenward: %v", p.err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// server is a serving tokenward and its addresses.
type server struct {
	*process
	url      string // http://host:port of the proxy or forward-auth listener
	adminURL string
	client   *http.Client
}

// serveBinary starts the binary serving with env (plus loopback :0
// addresses unless given) and waits until it listens.
func serveBinary(t *testing.T, env map[string]string) *server {
	t.Helper()
	env = withDefaults(env, map[string]string{
		"TOKENWARD_LISTEN_ADDR": "127.0.0.1:0",
		"TOKENWARD_ADMIN_ADDR":  "127.0.0.1:0",
	})
	p := start(t, env, nil)
	mainLine := p.stderr.wait(t, "main listening line", func(s string) bool {
		l := parseLog(s)
		return l.str("msg") == "listening" && l.str("server") != "admin"
	})
	admin := p.stderr.waitLog(t, "listening", "server", "admin")
	s := &server{
		process:  p,
		url:      "http://" + parseLog(mainLine).str("addr"),
		adminURL: "http://" + admin.str("addr"),
		client:   newClient(t),
	}
	return s
}

func withDefaults(env, defaults map[string]string) map[string]string {
	out := make(map[string]string, len(env)+len(defaults))
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// newClient returns a client of its own (no proxy from the environment, no
// shared connections between tests).
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitTimeout}
}

// response is what a test looks at.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not JSON: %v: %q", err, r.body)
	}
	return m
}

// do sends a request; edit, if not nil, changes it first.
func do(t *testing.T, c *http.Client, method, url string, edit func(*http.Request)) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return response{resp.StatusCode, resp.Header, body}
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// newIssuer starts a test issuer for the test.
func newIssuer(t *testing.T) *jwkstest.Issuer {
	t.Helper()
	iss, err := jwkstest.Start(jwkstest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Close)
	return iss
}

// mint returns a token of iss for the test audience with extra claims.
func mint(t *testing.T, iss *jwkstest.Issuer, extra map[string]any) string {
	t.Helper()
	tok, err := iss.Mint(iss.Claims(audience, extra))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// seen is what the echo upstream reports about the request it got.
type seen struct {
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Header http.Header `json:"header"`
}

// echoUpstream answers every request with what it received.
func echoUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(seen{r.Method, r.URL.Path, r.Header})
	}))
	t.Cleanup(up.Close)
	return up
}

func (r response) seen(t *testing.T) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatalf("upstream answer is not JSON: %v: %q", err, r.body)
	}
	return s
}

// writeFile writes a file in the test's directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testRulesFile is the shared rules file, testdata/rules.yaml (the README's
// example), as an absolute path for the binary.
func testRulesFile(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "..", "testdata", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// vmKB reads a field of /proc/PID/status, in KiB.
func vmKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				t.Fatalf("parsing %q: %v", line, err)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
