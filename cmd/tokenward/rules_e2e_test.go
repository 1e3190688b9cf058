package main

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Rules that judge GET /api/things differently for a token granting read:a:
// 200 under rulesA, 403 under rulesB.
const (
	rulesA = "routes:\n  - match: \"GET /api/things\"\n    scopes: [\"read:a\"]\n"
	rulesB = "routes:\n  - match: \"GET /api/things\"\n    scopes: [\"read:b\"]\n"
	// rulesBad does not compile: a misspelt field.
	rulesBad = "routes:\n  - match: \"GET /api/things\"\n    scopse: [\"read:b\"]\n"
)

// replaceFile writes content to path the way configuration tools do: into
// a new file in the same directory, renamed over path.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// configMap lays out a directory as the kubelet mounts a ConfigMap: name is
// a link to ..data/name, ..data a link to a directory of the version.
type configMap struct {
	t       *testing.T
	dir     string
	version int
}

func newConfigMap(t *testing.T, name, content string) (*configMap, string) {
	c := &configMap{t: t, dir: t.TempDir()}
	c.update(name, content)
	if err := os.Symlink(filepath.Join("..data", name), filepath.Join(c.dir, name)); err != nil {
		t.Fatal(err)
	}
	return c, filepath.Join(c.dir, name)
}

// update writes a new version's directory and swaps ..data to it
// atomically, as the kubelet does (a new link renamed over the old one).
func (c *configMap) update(name, content string) {
	c.t.Helper()
	c.version++
	v := fmt.Sprintf("..2026_12_04_v%d", c.version)
	if err := os.Mkdir(filepath.Join(c.dir, v), 0o700); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, v, name), []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Symlink(v, filepath.Join(c.dir, "..data_tmp")); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(c.dir, "..data_tmp"), filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
}

// load sends GET /api/things from several goroutines in a loop while the
// rules change from a set answering old to one answering want. Every answer
// must be old or want, and once an answer want has come back, no request
// sent afterwards may get old: the switch is atomic.
type load struct {
	old, want int
	changed   chan struct{} // closed at the first answer want
	once      sync.Once
	seen      atomic.Bool // an answer want has come back
	after     atomic.Int64
	stop      chan struct{}
	wg        sync.WaitGroup

	mu       sync.Mutex // guards problems and counts
	problems []string
	counts   map[int]int
}

func startLoad(t *testing.T, s *server, token string, old, want int) *load {
	t.Helper()
	l := &load{old: old, want: want, changed: make(chan struct{}), stop: make(chan struct{}), counts: map[int]int{}}
	const workers = 4
	for range workers {
		c := newClient(t)
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				seenBefore := l.seen.Load()
				req, _ := http.NewRequest("GET", s.url+"/api/things", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := c.Do(req)
				if err != nil {
					l.problem("request failed: %v", err)
					return
				}
				resp.Body.Close()
				code := resp.StatusCode
				l.mu.Lock()
				l.counts[code]++
				l.mu.Unlock()
				switch {
				case code == l.want:
					l.seen.Store(true)
					l.once.Do(func() { close(l.changed) })
					if seenBefore {
						l.after.Add(1)
					}
				case code != l.old:
					l.problem("answer %d: neither the old rules' %d nor the new rules' %d", code, l.old, l.want)
				case seenBefore:
					l.problem("answer %d (the old rules) after an answer %d (the new rules) had come back", code, l.want)
				}
			}
		})
	}
	return l
}

func (l *load) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.problems) < 10 {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	}
}

// waitChanged waits for the first answer want, then for a hundred more
// requests to be answered under the new rules, and stops the load.
func (l *load) waitChanged(t *testing.T, what string) {
	t.Helper()
	select {
	case <-l.changed:
	case <-time.After(waitTimeout):
		l.end(t)
		t.Fatalf("%s: the decision did not change from %d to %d within %s", what, l.old, l.want, waitTimeout)
	}
	deadline := time.Now().Add(waitTimeout)
	for l.after.Load() < 100 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling a counter the load advances
	}
	l.end(t)
}

// end stops the load and reports what went wrong.
func (l *load) end(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.problems {
		t.Error(p)
	}
	t.Logf("answers: %v", l.counts)
}

// metric reads one unlabelled sample from the admin server's /metrics; ok
// is false when it is absent.
func metric(t *testing.T, s *server, name string) (float64, bool) {
	t.Helper()
	r := do(t, s.client, "GET", s.adminURL+"/metrics", nil)
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f, true
		}
	}
	return 0, false
}

// waitMetric polls /metrics until name satisfies cond.
func waitMetric(t *testing.T, s *server, name string, cond func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		v, ok := metric(t, s, name)
		if ok && cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present: %v) after %s", name, v, ok, waitTimeout)
		}
		time.Sleep(10 * time.Millisecond) // polling, with a deadline
	}
}

// rulesServer runs the binary in proxy mode with the rules file path.
func rulesServer(t *testing.T, path, interval string) (*server, string) {
	t.Helper()
	iss := newIssuer(t)
	up := echoUpstream(t)
	s := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":               iss.URL(),
		"TOKENWARD_AUDIENCES":             audience,
		"TOKENWARD_UPSTREAM":              up.URL,
		"TOKENWARD_RULES_FILE":            path,
		"TOKENWARD_RULES_RELOAD_INTERVAL": interval,
	})
	return s, mint(t, iss, map[string]any{"scope": "read:a"})
}

// TestRulesReload (issue 14): the rules file replaced by a rename, or by a
// ConfigMap's link swap, changes the decisions while requests are served:
// every answer is the old rules' or the new rules', none fails, and once
// the new rules have answered the old never answer again.
func TestRulesReload(t *testing.T) {
	t.Parallel()
	t.Run("rename", func(t *testing.T) {
		path := writeFile(t, "rules.yaml", rulesA)
		s, token := rulesServer(t, path, "100ms")
		before, _ := metric(t, s, "tokenward_rules_last_reload_timestamp_seconds")

		l := startLoad(t, s, token, http.StatusOK, http.StatusForbidden)
		replaceFile(t, path, rulesB)
		l.waitChanged(t, "rules file renamed over")

		l = startLoad(t, s, token, http.StatusForbidden, http.StatusOK)
		replaceFile(t, path, rulesA)
		l.waitChanged(t, "rules file renamed over again")

		if after, ok := metric(t, s, "tokenward_rules_last_reload_timestamp_seconds"); !ok || before == 0 || after <= before {
			t.Errorf("last reload timestamp %v (present: %v), not after the start's %v", after, ok, before)
		}
		if n, _ := metric(t, s, "tokenward_rules_reload_errors_total"); n != 0 {
			t.Errorf("reload errors %v, want 0", n)
		}
		s.stderr.waitLog(t, "rules: reloaded", "file", path)
	})
	t.Run("configmap", func(t *testing.T) {
		cm, path := newConfigMap(t, "rules.yaml", rulesA)
		s, token := rulesServer(t, path, "100ms")

		l := startLoad(t, s, token, http.StatusOK, http.StatusForbidden)
		cm.update("rules.yaml", rulesB)
		l.waitChanged(t, "ConfigMap ..data swapped")

		l = startLoad(t, s, token, http.StatusForbidden, http.StatusOK)
		cm.update("rules.yaml", rulesA)
		l.waitChanged(t, "ConfigMap ..data swapped again")
	})
}

// TestRulesReloadBadFile: a rules file that does not compile, that is gone,
// or that is empty (a write in progress) keeps the rules in force; each
// failure is counted once and logged; the next good version is loaded.
func TestRulesReloadBadFile(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "rules.yaml", rulesA)
	s, token := rulesServer(t, path, "50ms")
	if v, _ := metric(t, s, "tokenward_rules_reload_failing"); v != 0 {
		t.Fatalf("reload failing %v at start", v)
	}

	// The old rules answer 200 throughout; 403 would be the new ones.
	l := startLoad(t, s, token, http.StatusOK, http.StatusForbidden)
	replaceFile(t, path, rulesBad)
	waitMetric(t, s, "tokenward_rules_reload_errors_total", func(v float64) bool { return v == 1 })
	if v, _ := metric(t, s, "tokenward_rules_reload_failing"); v != 1 {
		t.Errorf("reload failing %v after a bad version, want 1", v)
	}
	line := s.stderr.waitLog(t, "rules: reload failed; the rules in force stay", "file", path)
	if !strings.Contains(line.str("error"), "scopse") {
		t.Errorf("the log does not say what is wrong: %v", line)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, s, "tokenward_rules_reload_errors_total", func(v float64) bool { return v == 2 })
	s.stderr.waitLog(t, "rules: cannot read the rules file; the rules in force stay", "file", path)

	replaceFile(t, path, "# being rewritten\n")
	waitMetric(t, s, "tokenward_rules_reload_errors_total", func(v float64) bool { return v == 3 })
	select {
	case <-l.changed:
		t.Error("a bad, missing or empty rules file changed the decision")
	default:
	}
	l.end(t)
	if l.counts[http.StatusOK] == 0 {
		t.Error("no request was answered during the test")
	}

	l = startLoad(t, s, token, http.StatusOK, http.StatusForbidden)
	replaceFile(t, path, rulesB)
	l.waitChanged(t, "a good version after bad ones")
	if v, _ := metric(t, s, "tokenward_rules_reload_failing"); v != 0 {
		t.Errorf("reload failing %v after a good version, want 0", v)
	}
	if v, _ := metric(t, s, "tokenward_rules_reload_errors_total"); v != 3 {
		t.Errorf("reload errors %v, want 3", v)
	}
}

// TestRulesReloadPartialWrite: a file written in place line by line is
// seen between its lines. Its first line alone, "routes:", parses as no
// rules: loaded, it dropped every rule's scopes (a token without read:b
// passed). Like an empty file, a version without a routes list keeps the
// rules in force; "routes: []" still removes every rule.
func TestRulesReloadPartialWrite(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "rules.yaml", rulesB)
	s, token := rulesServer(t, path, "50ms")
	l := startLoad(t, s, token, http.StatusForbidden, http.StatusOK)
	for i, partial := range []string{"routes:\n", "routes: ~\n", "---\n", "{}\n"} {
		if err := os.WriteFile(path, []byte(partial), 0o600); err != nil {
			t.Fatal(err)
		}
		waitMetric(t, s, "tokenward_rules_reload_errors_total", func(v float64) bool { return v == float64(i+1) })
	}
	select {
	case <-l.changed:
		t.Error("a rules file without its routes list changed the decision")
	default:
	}
	l.end(t)

	l = startLoad(t, s, token, http.StatusForbidden, http.StatusOK)
	if err := os.WriteFile(path, []byte("routes: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l.waitChanged(t, "routes: [] after partial versions")
}

// TestRulesReloadSIGHUP: with an interval no test waits for, a SIGHUP
// reloads the rules file at once.
func TestRulesReloadSIGHUP(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "rules.yaml", rulesA)
	s, token := rulesServer(t, path, "1h")
	before, _ := metric(t, s, "tokenward_rules_last_reload_timestamp_seconds")
	if r := do(t, s.client, "GET", s.url+"/api/things", bearer(token)); r.status != http.StatusOK {
		t.Fatalf("status %d before the change, want 200", r.status)
	}
	replaceFile(t, path, rulesB)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Polled with a deadline: the reload runs as the signal arrives.
	deadline := time.Now().Add(waitTimeout)
	for {
		r := do(t, s.client, "GET", s.url+"/api/things", bearer(token))
		if r.status == http.StatusForbidden {
			break
		}
		if r.status != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("status %d after SIGHUP, want 403 (the new rules) within %s", r.status, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if after, ok := metric(t, s, "tokenward_rules_last_reload_timestamp_seconds"); !ok || before == 0 || after <= before {
		t.Errorf("last reload timestamp %v (present: %v), not after the start's %v", after, ok, before)
	}
	s.stderr.waitLog(t, "rules: reloaded", "file", path)
}

// TestRulesReloaderLogsOnce: a bad version is logged and counted once,
// however often it is checked; a file that stays unreadable likewise; a
// SIGHUP answers again.
func TestRulesReloaderLogsOnce(t *testing.T) {
	path := writeFile(t, "rules.yaml", rulesA)
	cfg, err := loadConfig(mapGetenv(map[string]string{
		"TOKENWARD_ISSUERS": "https://issuer.example.com/", "TOKENWARD_AUDIENCES": audience,
		"TOKENWARD_RULES_FILE": path,
	}), forInspect)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RulesReloadInterval = time.Hour // reloads are called below
	var logs bytes.Buffer
	var mu sync.Mutex
	r := startRulesReloader(cfg, slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil)))
	defer r.close()
	count := func(msg string) int {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(logs.String(), `"msg":"`+msg+`"`)
	}
	const failed = "rules: reload failed; the rules in force stay"
	const unreadable = "rules: cannot read the rules file; the rules in force stay"
	inForce := r.set.Load()

	r.reload(false)
	if count(failed)+count("rules: reloaded") != 0 || r.set.Load() != inForce {
		t.Fatalf("the file as read at start was reloaded: %s", logs.String())
	}
	replaceFile(t, path, rulesBad)
	for range 3 {
		r.reload(false)
	}
	if n, st := count(failed), r.status(); n != 1 || st.ReloadErrors != 1 || !st.Failing || r.set.Load() != inForce {
		t.Errorf("one bad version checked 3 times: %d log lines, status %+v; want 1, 1 error, failing, rules kept", n, st)
	}
	r.reload(true) // SIGHUP: answered, not counted again
	if n, st := count(failed), r.status(); n != 1 || st.ReloadErrors != 1 || count("rules: file unchanged since its failed reload; the rules in force stay") != 1 {
		t.Errorf("SIGHUP on the same bad version: %d failure lines, %d errors; logs:\n%s", n, st.ReloadErrors, logs.String())
	}
	os.Remove(path)
	for range 3 {
		r.reload(false)
	}
	if n, st := count(unreadable), r.status(); n != 1 || st.ReloadErrors != 2 {
		t.Errorf("a missing file checked 3 times: %d log lines, %d errors; want 1, 2", n, st.ReloadErrors)
	}
	replaceFile(t, path, rulesB)
	r.reload(false)
	if st := r.status(); st.Failing || r.set.Load() == inForce || count("rules: reloaded") != 1 {
		t.Errorf("a good version after bad ones: status %+v; logs:\n%s", st, logs.String())
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
