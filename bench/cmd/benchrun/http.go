package main

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenward/tokenward/bench/internal/fixture"
	"github.com/tokenward/tokenward/bench/internal/procs"
)

//go:embed tokens.lua
var luaScript []byte

// apiPath is the path every load request asks for.
const apiPath = "/api/contacts"

// target is one configuration of the HTTP benchmark.
type target struct {
	key, name string
	url       string      // base URL, no trailing slash
	admin     string      // tokenward's admin base URL
	proc      *procs.Proc // the process measured: CPU time and memory
	verifies  bool        // checks tokens: must refuse forgeries
	skip      string      // why it was not measured
	notes     []string
	cacheOn   bool // tokenward exposed cache metrics
	runs      []wrkRun
	rss, peak int64 // KiB, after the rounds
}

// wrkRun is one measured wrk run, as printed by tokens.lua's done().
type wrkRun struct {
	Requests      int64   `json:"requests"`
	DurationUS    int64   `json:"duration_us"`
	ConnectErrors int64   `json:"connect_errors"`
	ReadErrors    int64   `json:"read_errors"`
	WriteErrors   int64   `json:"write_errors"`
	StatusErrors  int64   `json:"status_errors"` // answers other than 2xx/3xx
	Timeouts      int64   `json:"timeouts"`
	MeanUS        float64 `json:"mean_us"`
	P50US         int64   `json:"p50_us"`
	P90US         int64   `json:"p90_us"`
	P99US         int64   `json:"p99_us"`
	P999US        int64   `json:"p999_us"`
	MaxUS         int64   `json:"max_us"`

	rps          float64
	cpuUSPerReq  float64 // CPU time of the measured process per request
	foreignCores float64 // average cores busy with processes other than ours
}

func (r wrkRun) errors() int64 {
	return r.ConnectErrors + r.ReadErrors + r.WriteErrors + r.StatusErrors + r.Timeouts
}

type httpReport struct {
	targets        []*target
	haproxyVersion string
	wrkVersion     string
	tokenBytes     int
	tokenwardNote  string // why the binary was not measured
	haproxyNote    string
	mem            *memReport
}

type memReport struct {
	tokens         int
	refused        int64
	rssBefore, rss int64 // KiB
	peak           int64 // KiB
	cacheMetrics   []string
	elapsed        time.Duration
	skip           string
}

func (h *httpReport) target(key string) *target {
	for _, t := range h.targets {
		if t.key == key {
			return t
		}
	}
	return nil
}

// runHTTP builds and starts the servers, checks that each one answers the
// valid tokens and refuses forged ones, runs the interleaved wrk rounds and,
// if asked, the memory phase; then stops everything.
func runHTTP(ctx context.Context, cfg *config, work string, fix *fixture.Fixture) (*httpReport, error) {
	s, err := startServers(ctx, cfg, work, fix)
	defer s.stop()
	if err != nil {
		return nil, err
	}
	rep, c, backend := s.rep, s.rep.target("c"), s.backend
	if c == nil {
		c = &target{key: "c", skip: "not selected (BENCH_SERVERS)"}
	}
	d := s.rep.target("d")
	if d == nil {
		d = &target{key: "d", skip: "not selected (BENCH_SERVERS)"}
	}
	bin := s.bin
	// Rounds: a, b, c, d, e, a, b, ...
	luaPath, tokPath := bin("tokens.lua"), bin("tokens.txt")
	for r := 1; r <= cfg.rounds; r++ {
		for _, t := range rep.targets {
			if t.skip != "" {
				continue
			}
			if _, err := runWrk(ctx, cfg, t, backend, luaPath, tokPath, cfg.warmup, false); err != nil {
				return nil, err
			}
			run, err := runWrk(ctx, cfg, t, backend, luaPath, tokPath, cfg.duration, true)
			if err != nil {
				return nil, err
			}
			t.runs = append(t.runs, run)
			logf("http: round %d/%d (%s) %-28s %8.0f req/s  p50 %5d µs  p99 %6d µs  CPU %5.1f µs/req  errors %d  other load %.2f cores",
				r, cfg.rounds, t.key, t.name, run.rps, run.P50US, run.P99US, run.cpuUSPerReq, run.errors(), run.foreignCores)
		}
	}
	for _, t := range rep.targets {
		if t.proc != nil && t.proc.Alive() {
			st := procs.Status(t.proc.PID())
			t.rss, t.peak = st["VmRSS"], st["VmHWM"]
		}
	}
	for _, t := range []*target{c, d} {
		if t.skip != "" {
			continue
		}
		if m := cacheMetrics(ctx, t.admin); len(m) > 0 {
			t.cacheOn = true
			t.notes = append(t.notes, "cache metrics after the rounds: `"+strings.Join(m, "`, `")+"`")
		} else if t == c {
			t.notes = append(t.notes, "**no tokenward_*cache* metric on /metrics: that the cache is on cannot be confirmed from outside**")
		}
	}

	if cfg.memTokens > 0 {
		rep.mem = memoryPhase(ctx, cfg, fix, c, s.perToken)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return rep, nil
}

// servers are the HTTP targets started by startServers.
type servers struct {
	rep      *httpReport
	backend  *procs.Proc // the upstream behind every proxy
	procs    []*procs.Proc
	tokens   []string
	perToken time.Duration // minting time of one token
	bin      func(name string) string
}

func (s *servers) stop() {
	if s == nil {
		return
	}
	for _, p := range s.procs {
		p.Stop(5 * time.Second)
	}
}

// startServers builds and starts the selected servers and the upstream
// behind them, mints cfg.tokens tokens, and checks that each verifying
// server answers the valid tokens and refuses forged ones (one that does not
// is marked skipped). stop must be called, also after an error.
func startServers(ctx context.Context, cfg *config, work string, fix *fixture.Fixture) (*servers, error) {
	rep := &httpReport{}
	s := &servers{rep: rep}
	var err error
	if rep.wrkVersion, err = wrkVersion(); err != nil {
		return s, err
	}
	var hapBin string
	if cfg.servers["e"] {
		var hapErr error
		hapBin, rep.haproxyVersion, hapErr = haproxyCheck()
		if hapErr != nil {
			rep.haproxyNote = hapErr.Error()
			logf("http: (e) left out: %v", hapErr)
		}
	}

	// Build.
	logf("http: building the servers %s", cfg.serverList())
	bin := func(name string) string { return filepath.Join(work, name) }
	s.bin = bin
	builds := []string{"upstream"}
	if cfg.servers["b"] {
		builds = append(builds, "bareproxy")
	}
	for _, name := range builds {
		if _, err := runCmd(ctx, cfg.benchDir, nil, "go", "build", "-o", bin(name), "./cmd/"+name); err != nil {
			return s, err
		}
	}
	if cfg.servers["c"] || cfg.servers["d"] {
		if out, err := runCmd(ctx, cfg.repoDir, nil, "go", "build", "-o", bin("tokenward"), "./cmd/tokenward"); err != nil {
			rep.tokenwardNote = "the binary did not build: " + firstLines(out, 3)
			logf("http: (c) and (d) left out, cmd/tokenward does not build:\n%s", firstLines(out, 10))
		}
	}

	// Files: the tokens, the key for HAProxy, the JWKS for tokenward.
	logf("http: minting %d tokens", cfg.tokens)
	mintStart := time.Now()
	tokens, err := fix.Mint(0, cfg.tokens)
	if err != nil {
		return s, err
	}
	perToken := time.Since(mintStart) / time.Duration(cfg.tokens)
	rep.tokenBytes = len(tokens[0])
	pemBytes, err := fix.PEM()
	if err != nil {
		return s, err
	}
	files := map[string][]byte{
		"tokens.txt": []byte(strings.Join(tokens, "\n") + "\n"),
		"tokens.lua": luaScript,
		"jwks.json":  fix.JWKS(),
		"pubkey.pem": pemBytes,
	}
	for name, b := range files {
		if err := os.WriteFile(bin(name), b, 0o644); err != nil {
			return s, err
		}
	}

	ports, err := procs.FreePorts(8)
	if err != nil {
		return s, err
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	const (
		pBackend = iota
		pUpstreamA
		pBare
		pCache
		pCacheAdmin
		pNoCache
		pNoCacheAdmin
		pHAProxy
	)

	// Start. Everything measured runs on the servers' cores with the same
	// GOMAXPROCS or nbthread; the backend upstream runs with wrk.
	start := func(name, cpus string, env []string, argv ...string) (*procs.Proc, error) {
		p, err := procs.Start(name, cpus, env, bin(name+".log"), argv...)
		if err == nil {
			s.procs = append(s.procs, p)
		}
		return p, err
	}
	gomaxprocs := "GOMAXPROCS=" + strconv.Itoa(cfg.procs)
	backend, err := start("backend", cfg.loadCPUs, nil, bin("upstream"), "-listen", addr(pBackend))
	if err != nil {
		return s, err
	}
	upstreamURL := "http://" + addr(pBackend)

	a := &target{key: "a", name: "upstream alone", url: "http://" + addr(pUpstreamA)}
	if cfg.servers["a"] {
		if a.proc, err = start("upstream", cfg.sutCPUs, []string{gomaxprocs}, bin("upstream"), "-listen", addr(pUpstreamA)); err != nil {
			return s, err
		}
	}
	b := &target{key: "b", name: "bare httputil.ReverseProxy", url: "http://" + addr(pBare)}
	if cfg.servers["b"] {
		if b.proc, err = start("bareproxy", cfg.sutCPUs, []string{gomaxprocs}, bin("bareproxy"), "-listen", addr(pBare), "-upstream", upstreamURL); err != nil {
			return s, err
		}
	}
	c := &target{key: "c", name: fmt.Sprintf("tokenward, cache %d", cfg.cacheSize), url: "http://" + addr(pCache), admin: "http://" + addr(pCacheAdmin), verifies: true}
	d := &target{key: "d", name: "tokenward, no cache", url: "http://" + addr(pNoCache), admin: "http://" + addr(pNoCacheAdmin), verifies: true}
	twEnv := func(listen, admin, cache int) []string {
		return []string{
			gomaxprocs,
			"TOKENWARD_ISSUERS=" + fix.Issuer(),
			"TOKENWARD_AUDIENCES=" + fixture.API,
			"TOKENWARD_JWKS_URIS=" + fix.Issuer() + "=file://" + bin("jwks.json"),
			"TOKENWARD_UPSTREAM=" + upstreamURL,
			"TOKENWARD_LISTEN_ADDR=" + addr(listen),
			"TOKENWARD_ADMIN_ADDR=" + addr(admin),
			"TOKENWARD_CACHE_SIZE=" + strconv.Itoa(cache),
		}
	}
	if rep.tokenwardNote != "" {
		c.skip, d.skip = rep.tokenwardNote, rep.tokenwardNote
	} else {
		if cfg.servers["c"] {
			if c.proc, err = start("tokenward-cache", cfg.sutCPUs, twEnv(pCache, pCacheAdmin, cfg.cacheSize), bin("tokenward")); err != nil {
				return s, err
			}
		}
		if cfg.servers["d"] {
			if d.proc, err = start("tokenward-nocache", cfg.sutCPUs, twEnv(pNoCache, pNoCacheAdmin, 0), bin("tokenward")); err != nil {
				return s, err
			}
		}
	}
	e := &target{key: "e", name: "HAProxy jwt_verify", url: "http://" + addr(pHAProxy), verifies: true}
	switch {
	case !cfg.servers["e"]:
	case rep.haproxyNote != "":
		e.skip = rep.haproxyNote
	default:
		hcfg := haproxyConfig(cfg.procs, addr(pHAProxy), addr(pBackend), bin("pubkey.pem"), fix.Issuer(), fixture.API)
		if err := os.WriteFile(bin("haproxy.cfg"), []byte(hcfg), 0o644); err != nil {
			return s, err
		}
		if out, err := runCmd(ctx, work, nil, hapBin, "-c", "-f", bin("haproxy.cfg")); err != nil {
			return s, fmt.Errorf("haproxy refuses the generated configuration: %w\n%s", err, out)
		}
		if e.proc, err = start("haproxy", cfg.sutCPUs, nil, hapBin, "-db", "-f", bin("haproxy.cfg")); err != nil {
			return s, err
		}
	}
	for _, t := range []*target{a, b, c, d, e} {
		if cfg.servers[t.key] {
			rep.targets = append(rep.targets, t)
		} else {
			t.skip = "not selected (BENCH_SERVERS)"
		}
	}

	// Ready, and honest.
	checks, err := newPreflight(fix, tokens[0])
	if err != nil {
		return s, err
	}
	for _, t := range rep.targets {
		if t.skip != "" {
			continue
		}
		if err := waitReady(ctx, t, tokens[0]); err != nil {
			if ctx.Err() != nil {
				return s, ctx.Err()
			}
			t.skip = err.Error()
			logf("http: (%s) left out: %v", t.key, err)
			continue
		}
		if t.verifies {
			checks.run(ctx, t)
		}
	}
	if !backend.Alive() {
		return s, backend.Died()
	}

	s.backend, s.tokens, s.perToken = backend, tokens, perToken
	return s, nil
}

func wrkVersion() (string, error) {
	path, err := exec.LookPath("wrk")
	if err != nil {
		return "", errors.New("wrk is not installed: apt-get install -y wrk (or set BENCH_HTTP=0 to run the Go benchmarks only)")
	}
	out, _ := exec.Command(path, "--version").CombinedOutput() // exits 1 after printing its version
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(strings.Split(line, "Copyright")[0]), nil
}

var haproxyVersionRE = regexp.MustCompile(`(?i)HA-?Proxy version (\d+)\.(\d+)(\S*)`)

// haproxyCheck finds haproxy and checks it has jwt_verify (2.5 and later).
func haproxyCheck() (path, version string, err error) {
	path, err = exec.LookPath("haproxy")
	if err != nil {
		return "", "", errors.New("haproxy is not installed (apt-get install -y haproxy)")
	}
	out, _ := exec.Command(path, "-v").CombinedOutput()
	m := haproxyVersionRE.FindStringSubmatch(string(out))
	if m == nil {
		return path, "", fmt.Errorf("cannot read the version of %s", path)
	}
	version = m[1] + "." + m[2] + m[3]
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	if major < 2 || major == 2 && minor < 5 {
		return path, version, fmt.Errorf("haproxy %s has no jwt_verify: 2.5 or later is needed", version)
	}
	return path, version, nil
}

// waitReady polls the target with a valid token until it answers 200 "ok".
func waitReady(ctx context.Context, t *target, token string) error {
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if t.proc != nil && !t.proc.Alive() {
			return t.proc.Died()
		}
		status, body, err := get(ctx, t.url+apiPath, token)
		switch {
		case err != nil:
			last = err.Error()
		case status == http.StatusOK && body == "ok":
			return nil
		default:
			last = fmt.Sprintf("answered %d %q", status, body)
		}
		select { // polling: the server has no readiness signal for a token
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready with a valid token after 20 s: %s", last)
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}

// get asks url with the bearer token ("" for none).
func get(ctx context.Context, url, token string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body), nil
}

// preflight holds the tokens that show a verifying target is honest: it
// accepts the valid variants and refuses every forgery.
type preflight struct {
	valid  []namedToken
	forged []namedToken
}

type namedToken struct{ name, token string }

func newPreflight(fix *fixture.Fixture, valid string) (*preflight, error) {
	now := time.Now()
	var errs []error
	mint := func(header, extra map[string]any) string {
		t, err := fix.TokenWithHeader(header, fix.Claims(0, extra))
		errs = append(errs, err)
		return t
	}
	p := &preflight{
		valid: []namedToken{
			{"aud as a string", mint(nil, map[string]any{"aud": fixture.API})},
			{"API second in aud", mint(nil, map[string]any{"aud": []string{"https://other.example", fixture.API}})},
		},
		forged: []namedToken{
			{"no token", ""},
			{"bad signature", valid[:len(valid)-6] + "AAAAAA"},
			{"alg none", noneToken(valid)},
			{"alg HS256 header", mint(map[string]any{"alg": "HS256"}, nil)},
			{"wrong audience", mint(nil, map[string]any{"aud": []string{"https://other.example", fix.Issuer() + "userinfo"}})},
			{"wrong issuer", mint(nil, map[string]any{"iss": "https://evil.example/"})},
			{"expired an hour ago", mint(nil, map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})},
			{"no exp", mint(nil, map[string]any{"exp": nil})},
		},
	}
	return p, errors.Join(errs...)
}

// noneToken turns a token into an unsigned one claiming alg "none".
func noneToken(valid string) string {
	_, rest, _ := strings.Cut(valid, ".")
	payload, _, _ := strings.Cut(rest, ".")
	return "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + "." // {"alg":"none","typ":"JWT"}
}

// run records in t's notes how it answered; a target that accepts a forgery
// is not measured.
func (p *preflight) run(ctx context.Context, t *target) {
	var accepted []string
	var refusedValid []string
	var statuses []string
	for _, n := range p.forged {
		status, _, err := get(ctx, t.url+apiPath, n.token)
		switch {
		case err != nil:
			statuses = append(statuses, n.name+": "+err.Error())
		case status == http.StatusOK:
			accepted = append(accepted, n.name)
		default:
			statuses = append(statuses, fmt.Sprintf("%s %d", n.name, status))
		}
	}
	for _, n := range p.valid {
		status, _, err := get(ctx, t.url+apiPath, n.token)
		if err != nil || status != http.StatusOK {
			refusedValid = append(refusedValid, fmt.Sprintf("%s (%d)", n.name, status))
		}
	}
	t.notes = append(t.notes, "refuses: "+strings.Join(statuses, ", "))
	if len(refusedValid) > 0 {
		t.notes = append(t.notes, "also refuses valid tokens with "+strings.Join(refusedValid, ", "))
	}
	if len(accepted) > 0 {
		t.skip = "accepts forged tokens: " + strings.Join(accepted, ", ")
		logf("http: (%s) left out: it %s", t.key, t.skip)
	}
}

// runWrk runs wrk against t for d; when measure is set it also takes the CPU
// time of t's process and of the whole machine around the run.
func runWrk(ctx context.Context, cfg *config, t *target, backend *procs.Proc, luaPath, tokPath string, d time.Duration, measure bool) (wrkRun, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	argv := []string{"wrk", "-t", strconv.Itoa(cfg.threads), "-c", strconv.Itoa(cfg.connections),
		"-d", strconv.Itoa(secs) + "s", "--timeout", "5s", "-s", luaPath,
		t.url + apiPath, "--", tokPath, strconv.Itoa(cfg.threads), apiPath}
	if cfg.pin {
		argv = append([]string{"taskset", "-c", cfg.loadCPUs}, argv...)
	}
	var run wrkRun
	var sut0, up0, busy0 int64
	var err error
	if measure {
		if sut0, err = procs.CPUTicks(t.proc.PID()); err != nil {
			return run, err
		}
		up0, _ = procs.CPUTicks(backend.PID())
		busy0, _ = procs.BusyTicks()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return run, ctx.Err()
		}
		return run, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	if !measure {
		return run, nil
	}
	sut1, err := procs.CPUTicks(t.proc.PID())
	if err != nil {
		return run, fmt.Errorf("(%s) %s is gone: %w", t.key, t.name, err)
	}
	up1, _ := procs.CPUTicks(backend.PID())
	busy1, _ := procs.BusyTicks()
	if run, err = parseWrk(out); err != nil {
		return run, fmt.Errorf("wrk against (%s): %w\n%s", t.key, err, out)
	}
	elapsed := float64(run.DurationUS) / 1e6
	run.rps = float64(run.Requests) / elapsed
	sut := sut1 - sut0
	run.cpuUSPerReq = float64(sut) / procs.TicksPerSecond * 1e6 / float64(run.Requests)
	wrkTicks := int64((cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()) * procs.TicksPerSecond / time.Second)
	ours := sut + wrkTicks
	if t.key != "a" {
		ours += up1 - up0
	}
	run.foreignCores = max(0, float64(busy1-busy0-ours)/procs.TicksPerSecond/elapsed)
	return run, nil
}

// parseWrk reads the line tokens.lua's done() prints.
func parseWrk(out []byte) (wrkRun, error) {
	var run wrkRun
	found := false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if js, ok := strings.CutPrefix(sc.Text(), "WRKRESULT "); ok {
			if err := json.Unmarshal([]byte(js), &run); err != nil {
				return run, fmt.Errorf("wrk result %q: %w", js, err)
			}
			found = true
		}
	}
	if !found || run.DurationUS <= 0 || run.Requests <= 0 {
		return run, errors.New("no WRKRESULT line with requests")
	}
	return run, nil
}

// memoryPhase sends n new distinct tokens once each to the binary with the
// cache, then reads its memory and its cache metrics.
func memoryPhase(ctx context.Context, cfg *config, fix *fixture.Fixture, c *target, perToken time.Duration) *memReport {
	m := &memReport{tokens: cfg.memTokens}
	if c.skip != "" {
		m.skip = "the binary was not measured"
		return m
	}
	start := time.Now()
	logf("memory: minting %d distinct tokens (about %s)", cfg.memTokens, (time.Duration(cfg.memTokens) * perToken).Round(time.Second))
	toks, err := fix.Mint(1_000_000, cfg.memTokens)
	if err != nil {
		m.skip = err.Error()
		return m
	}
	m.rssBefore = procs.Status(c.proc.PID())["VmRSS"]
	logf("memory: sending them to (c)")
	var next atomic.Int64
	var wg sync.WaitGroup
	for range cfg.connections {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(toks) || ctx.Err() != nil {
					return
				}
				if status, _, err := get(ctx, c.url+apiPath, toks[i]); err != nil || status != http.StatusOK {
					atomic.AddInt64(&m.refused, 1)
				}
			}
		})
	}
	wg.Wait()
	st := procs.Status(c.proc.PID())
	m.rss, m.peak = st["VmRSS"], st["VmHWM"]
	m.cacheMetrics = cacheMetrics(ctx, c.admin)
	m.elapsed = time.Since(start)
	logf("memory: RSS %.1f MiB after %d tokens (peak %.1f MiB, %d refused)", float64(m.rss)/1024, m.tokens, float64(m.peak)/1024, m.refused)
	return m
}

// cacheMetrics are the samples of tokenward's /metrics whose name mentions
// the cache (tokenward_*cache*).
func cacheMetrics(ctx context.Context, adminURL string) []string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/metrics", nil)
	if err != nil {
		return nil
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		line := sc.Text()
		name, _, _ := strings.Cut(line, " ")
		if strings.HasPrefix(name, "tokenward_") && strings.Contains(name, "cache") {
			out = append(out, line)
		}
	}
	return out
}
