package main

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tokenward/tokenward/bench/internal/loadgen"
	"github.com/tokenward/tokenward/bench/internal/procs"
	"github.com/tokenward/tokenward/jwks/jwkstest"
)

const maxPhases = 24

// soak is one run: the processes, the state the faults change, and what was
// measured.
type soak struct {
	cfg      *config
	iss      *jwkstest.Issuer
	t        *tokens
	st       state
	up       *upstream
	tw       *procs.Proc
	listen   string // tokenward's address
	admin    string // its admin base URL
	work     string
	epoch    time.Time // the soak's clock: offsets are from here
	soakFrom time.Duration

	restartMu sync.Mutex
	restarts  []restart // the upstream's restarts so far

	phaseMu sync.Mutex // guards phases
	phases  []phase
	phase   atomic.Int32

	events []event // done by the fault schedule (read after it ended)

	workers []*workerStats
	samples []sample
	cap     loadgen.Stats
	load    loadgen.Stats
	rate    float64
	capRate float64
}

type phase struct {
	name  string
	start time.Duration
}

type event struct {
	name       string
	planned    time.Duration
	start, end time.Duration
	note       string
	err        error
	ran        bool
}

type sample struct {
	at                     time.Duration
	rssKiB, fds, goroutine int64
	rssAnonKiB, rssFileKiB int64 // VmRSS's parts: the heap, stacks and runtime; the binary's mapped pages
	heapBytes              int64 // go_memstats_heap_alloc_bytes: its floor is the live heap, after a collection
	heapInuse, heapIdle    int64 // spans in use; free spans the runtime holds, returned or not
	heapReleased, stack    int64 // free spans returned to the OS; stacks in use
	heapObjects            int64 // objects allocated, live or not yet swept
	cacheEntries, cacheB   int64 // the verified-token cache
}

// workerStats are one generator worker's records: no locks.
type workerStats struct {
	counts     map[*kind]map[int]int64 // status (0: transport error) → requests
	bad        map[*kind]int64         // answers that were wrong
	restart502 int64                   // 502s of valid requests during the upstream's restart
	noHeader   map[*kind]int64         // a right status without its WWW-Authenticate or Retry-After
	hist       [maxPhases]loadgen.Histogram
	examples   []string
}

func newWorkerStats() *workerStats {
	return &workerStats{counts: map[*kind]map[int]int64{}, bad: map[*kind]int64{}, noHeader: map[*kind]int64{}}
}

func (s *soak) since() time.Duration { return time.Since(s.epoch) }

func (s *soak) setPhase(name string) {
	s.phaseMu.Lock()
	defer s.phaseMu.Unlock()
	if len(s.phases) >= maxPhases {
		return
	}
	s.phases = append(s.phases, phase{name: name, start: s.since()})
	s.phase.Store(int32(len(s.phases) - 1))
	logf("phase: %s", name)
}

func run(ctx context.Context, cfg *config) error {
	s := &soak{cfg: cfg, epoch: time.Now()}
	logf("soak: %s at %.0f%% of the capacity, %d distinct valid tokens, cache %d, %d connections", cfg.duration, cfg.share*100, cfg.tokens, cfg.cacheSize, cfg.workers)
	var err error
	if s.work, err = os.MkdirTemp("", "tokenward-soak-"); err != nil {
		return err
	}
	if cfg.keep {
		logf("keeping the work directory %s", s.work)
	} else {
		defer os.RemoveAll(s.work)
	}
	if cfg.pin {
		// The generator and the upstream are this process: keep them off
		// tokenward's core (tokenward is started with its own).
		if out, err := exec.Command("taskset", "-a", "-p", "-c", cfg.loadCPUs, strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
			return fmt.Errorf("pinning the generator: %v: %s", err, out)
		}
		// One P per core it may use: more would put two threads on one
		// core, spinning and switching where the upstream needs the time.
		runtime.GOMAXPROCS(runtime.NumCPU() - 1)
	}

	bin := filepath.Join(s.work, "tokenward")
	logf("building cmd/tokenward")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tokenward")
	build.Dir = cfg.repoDir
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building cmd/tokenward: %v\n%s", err, out)
	}

	s.iss, err = jwkstest.Start(jwkstest.Options{Algorithm: soakAlg})
	if err != nil {
		return err
	}
	defer s.iss.Close()
	s.iss.SetIntrospectionClient("tokenward-soak", "soak-secret")

	mintStart := time.Now()
	s.t, err = mintTokens(s.iss, cfg.tokens)
	if err != nil {
		return err
	}
	logf("minted %d valid and %d invalid tokens in %s", cfg.tokens, 6*poolSize, time.Since(mintStart).Round(time.Millisecond))

	denyPath, rulesPath := filepath.Join(s.work, "denylist.json"), filepath.Join(s.work, "rules.yaml")
	if err := writeAtomic(denyPath, denyList(s.t, false)); err != nil {
		return err
	}
	if err := writeAtomic(rulesPath, rulesFile(false)); err != nil {
		return err
	}
	ports, err := procs.FreePorts(3)
	if err != nil {
		return err
	}
	addrs := make([]string, len(ports))
	for i, port := range ports {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	s.listen, s.admin = addrs[0], "http://"+addrs[1]
	opaqueValid := map[string]bool{}
	for _, o := range s.t.opaque {
		opaqueValid[o] = true
	}
	s.up = newUpstream(addrs[2], opaqueValid)
	if err := s.up.start(); err != nil {
		return err
	}
	defer s.up.stop()

	env := []string{
		"TOKENWARD_ISSUERS=" + s.iss.URL(),
		"TOKENWARD_AUDIENCES=" + api,
		"TOKENWARD_ALGORITHMS=" + soakAlg,
		"TOKENWARD_UPSTREAM=http://" + addrs[2],
		"TOKENWARD_LISTEN_ADDR=" + s.listen,
		"TOKENWARD_ADMIN_ADDR=" + addrs[1],
		"TOKENWARD_CACHE_SIZE=" + strconv.Itoa(cfg.cacheSize),
		"TOKENWARD_RULES_FILE=" + rulesPath,
		"TOKENWARD_DENYLIST_FILE=" + denyPath,
		"TOKENWARD_JWKS_MIN_REFRESH_INTERVAL=" + cfg.minRefresh.String(),
		"TOKENWARD_OPAQUE_TOKENS=introspection",
		"TOKENWARD_INTROSPECTION_CLIENT_ID=tokenward-soak",
		"TOKENWARD_INTROSPECTION_CLIENT_SECRET=soak-secret",
	}
	if cfg.pin {
		env = append(env, "GOMAXPROCS=1")
	}
	s.tw, err = procs.Start("tokenward", cfg.sutCPUs, env, filepath.Join(s.work, "tokenward.log"), bin)
	if err != nil {
		return err
	}
	defer func() {
		if s.tw.Alive() {
			s.tw.Stop(5 * time.Second)
		}
	}()
	if err := s.waitReady(ctx); err != nil {
		return err
	}

	// Resources, sampled through the run.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		s.sampleLoop(sampleCtx, max(time.Second, cfg.duration/240))
	}()

	// Capacity: closed loop, the same mix, no faults.
	s.setPhase("capacity (closed loop)")
	logf("measuring the capacity for %s", cfg.capDuration)
	s.cap = s.generate(ctx, 0, cfg.capDuration)
	s.capRate = float64(s.cap.Slots) / s.cap.Elapsed.Seconds()
	s.rate = s.capRate * cfg.share
	logf("capacity %.0f req/s; the soak runs at %.0f req/s for %s", s.capRate, s.rate, cfg.duration)
	if ctx.Err() != nil {
		return ctx.Err()
	}

	// The soak: constant rate, faults on their schedule.
	s.soakFrom = s.since()
	s.setPhase("steady")
	faultCtx, stopFaults := context.WithCancel(ctx)
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		s.faults(faultCtx, denyPath, rulesPath)
	}()
	s.load = s.generate(ctx, s.rate, cfg.duration)
	stopFaults()
	<-faultsDone
	end := s.since()
	if ctx.Err() != nil {
		return ctx.Err()
	}

	final, mErr := metrics(ctx, s.admin)
	stopSampling()
	<-sampled
	stopErr := s.tw.Stop(30 * time.Second)
	rep := s.evaluate(end, final, mErr, stopErr)
	md := rep.markdown(s)
	fmt.Print(md)
	if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
		return err
	}
	logf("report written to %s", cfg.out)
	csvOut := strings.TrimSuffix(cfg.out, filepath.Ext(cfg.out)) + "-samples.csv"
	if err := os.WriteFile(csvOut, s.samplesCSV(), 0o644); err != nil {
		return err
	}
	logf("resource samples written to %s", csvOut)
	if failed := rep.failed(); len(failed) > 0 {
		return fmt.Errorf("assertions failed: %s\n--- tokenward's log, last lines:\n%s", strings.Join(failed, "; "), s.tw.LogTail(3000))
	}
	return nil
}

// waitReady waits for /readyz and a valid request answered 200.
func (s *soak) waitReady(ctx context.Context) error {
	if err := waitListening(ctx, s.listen, 20*time.Second); err != nil {
		return fmt.Errorf("tokenward: %v\n%s", err, s.tw.LogTail(3000))
	}
	c := loadgen.NewConn(s.listen, 5*time.Second)
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Do(loadgen.Request(s.listen, "/api/contacts", "Authorization: Bearer "+s.t.a.tokens[0]))
		if err == nil && resp.Status == 200 {
			return nil
		}
		if !s.tw.Alive() || time.Now().After(deadline) {
			return fmt.Errorf("tokenward not ready (%v, %d):\n%s", err, resp.Status, s.tw.LogTail(3000))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// generate runs the generator: rate 0 is closed loop.
func (s *soak) generate(ctx context.Context, rate float64, d time.Duration) loadgen.Stats {
	n := s.cfg.workers
	if len(s.workers) == 0 {
		for range n {
			s.workers = append(s.workers, newWorkerStats())
		}
	}
	conns := make([]*loadgen.Conn, n)
	pickers := make([]*picker, n)
	// The capacity run slides through the tokens at the soak's pace, so
	// that it sees the same share of cache misses.
	start := time.Now()
	window := max(100, len(s.t.a.tokens)/50)
	for i := range conns {
		conns[i] = loadgen.NewConn(s.listen, 15*time.Second)
		pickers[i] = &picker{t: s.t, st: &s.st, rng: mrand.New(mrand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))),
			start: start, span: s.cfg.duration, window: window}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	return loadgen.Run(ctx, loadgen.Config{Rate: rate, Duration: d, Workers: n}, func(ctx context.Context, w int, slot int64, at time.Time) {
		req := pickers[w].pick()
		var hdr []string
		if req.token != "" {
			hdr = append(hdr, "Authorization: Bearer "+req.token)
		}
		ph := s.phase.Load()
		resp, err := conns[w].Do(loadgen.Request(s.listen, req.path, hdr...))
		done := time.Now()
		s.record(s.workers[w], req, resp, err, ph, at, done)
	})
}

func (s *soak) record(ws *workerStats, req request, resp loadgen.Response, err error, ph int32, at, done time.Time) {
	k := req.kind
	status := resp.Status
	if err != nil {
		status = 0
	}
	m := ws.counts[k]
	if m == nil {
		m = map[int]int64{}
		ws.counts[k] = m
	}
	m[status]++
	if k.fast {
		ws.hist[ph].Record(done.Sub(at))
	}
	switch {
	case status != 0 && slices.Contains(k.allow, status):
		if (status == 401 || status == 403) && k.notify && !resp.Challenge ||
			status == 503 && !resp.RetryAfter {
			ws.noHeader[k]++
		}
	case (status == 502 || status == 0 && k == kStream) && k.valid && s.inRestart(at, done):
		// 502: the upstream refused the connection; a transport error: a
		// streamed answer cut when the upstream died mid-stream (tokenward
		// aborts the client's response, as net/http/httputil does).
		ws.restart502++
	default:
		ws.bad[k]++
		if len(ws.examples) < 3 {
			off := fmtOffset(at.Sub(s.epoch) - s.soakFrom)
			msg := fmt.Sprintf("%s: %s answered %d", off, k.name, status)
			if err != nil {
				msg = fmt.Sprintf("%s: %s: %v", off, k.name, err)
			}
			ws.examples = append(ws.examples, msg)
		}
	}
}

// restartGrace is how long after the upstream is back a 502 still counts
// as the restart's: tokenward's pooled connections to the old process are
// found dead on their next use.
const restartGrace = time.Second

// restart is one of the upstream's restarts, as offsets from the epoch; up
// is 0 until it listens again.
type restart struct{ down, up time.Duration }

// addRestart records the restart that began at down (up 0: not back yet),
// or that it is back.
func (s *soak) addRestart(down, up time.Duration) {
	s.restartMu.Lock()
	defer s.restartMu.Unlock()
	if n := len(s.restarts); n > 0 && s.restarts[n-1].down == down {
		s.restarts[n-1].up = up
		return
	}
	s.restarts = append(s.restarts, restart{down, up})
}

// inRestart reports whether a request overlapped one of the upstream's
// restarts.
func (s *soak) inRestart(at, done time.Time) bool {
	s.restartMu.Lock()
	defer s.restartMu.Unlock()
	for _, r := range s.restarts {
		if done.Sub(s.epoch) >= r.down && (r.up == 0 || at.Sub(s.epoch) <= r.up+restartGrace) {
			return true
		}
	}
	return false
}

func fmtOffset(d time.Duration) string { return "t+" + d.Round(100*time.Millisecond).String() }

func (s *soak) sampleLoop(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		pid := s.tw.PID()
		st := procs.Status(pid)
		smp := sample{at: s.since(), rssKiB: st["VmRSS"], rssAnonKiB: st["RssAnon"], rssFileKiB: st["RssFile"], fds: procs.OpenFDs(pid)}
		if m, err := metrics(ctx, s.admin); err == nil {
			smp.goroutine = int64(m["go_goroutines"])
			smp.heapBytes = int64(m["go_memstats_heap_alloc_bytes"])
			smp.heapInuse = int64(m["go_memstats_heap_inuse_bytes"])
			smp.heapIdle = int64(m["go_memstats_heap_idle_bytes"])
			smp.heapReleased = int64(m["go_memstats_heap_released_bytes"])
			smp.stack = int64(m["go_memstats_stack_inuse_bytes"])
			smp.heapObjects = int64(m["go_memstats_heap_objects"])
			smp.cacheEntries = int64(m["tokenward_token_cache_entries"])
			smp.cacheB = int64(m["tokenward_token_cache_bytes"])
		}
		s.samples = append(s.samples, smp)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// probe sends req until tokenward answers want, or ctx ends. It returns how
// long that took.
func (s *soak) probe(ctx context.Context, path, token string, want int) (time.Duration, error) {
	start := time.Now()
	c := loadgen.NewConn(s.listen, 5*time.Second)
	defer c.Close()
	req := loadgen.Request(s.listen, path, "Authorization: Bearer "+token)
	last := 0
	for {
		resp, err := c.Do(req)
		if err == nil && resp.Status == want {
			return time.Since(start), nil
		}
		if err == nil {
			last = resp.Status
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("not in force before the end of the run (still answered %d after %s)", last, time.Since(start).Round(time.Second))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// wait sleeps d or until ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// faults runs the fault schedule, each at its share of the run (later if
// the one before is still waiting for its effect).
func (s *soak) faults(ctx context.Context, denyPath, rulesPath string) {
	d := s.cfg.duration
	outage := min(30*time.Second, d/20)
	burst := min(15*time.Second, d/40)
	// Each fault that can happen twice happens in both halves, so that what
	// it leaves behind (a refilled pool, a cache of refusals) is in the
	// first half's peak, and a second occurrence that adds to it shows as
	// growth in the last fifth. Key rotation, the deny-list and rules
	// updates are one-way and come first; the old key's retirement comes
	// last.
	issuerDown := func() (string, error) {
		s.iss.SetDown(true)
		err := wait(ctx, outage)
		s.iss.SetDown(false)
		s.setPhase("issuer back")
		return fmt.Sprintf("every issuer endpoint answered 503 for %s", outage), err
	}
	issuerGarbage := func() (string, error) {
		s.iss.SetGarbage(true)
		err := wait(ctx, outage)
		s.iss.SetGarbage(false)
		s.setPhase("issuer back")
		return fmt.Sprintf("JWKS and introspection answered 200 with an HTML page for %s", outage), err
	}
	restartUpstream := func() (string, error) {
		down := s.since()
		s.addRestart(down, 0)
		s.up.stop()
		err := wait(ctx, time.Second)
		if e := s.up.start(); e != nil {
			return "", e
		}
		s.addRestart(down, s.since())
		s.setPhase("upstream back")
		return "closed with every connection, listening again 1 s later", err
	}
	opaqueBurst := func() (string, error) {
		s.st.burst.Store(true)
		err := wait(ctx, burst)
		s.st.burst.Store(false)
		s.setPhase("burst over")
		return fmt.Sprintf("10%% of the requests for %s carried a new random opaque token", burst), err
	}
	schedule := []struct {
		at   float64
		name string
		do   func() (string, error)
	}{
		{0.05, "key rotation: a new key published", func() (string, error) {
			if err := s.iss.PublishKey(s.t.key2); err != nil {
				return "", err
			}
			took, err := s.probe(ctx, "/api/contacts", s.t.probeB, 200)
			if err != nil {
				return "", err
			}
			s.st.bInUse.Store(true)
			return fmt.Sprintf("tokens of the new key accepted %s after it was published; half the valid tokens use it from then on", took.Round(100*time.Millisecond)), nil
		}},
		{0.10, "issuer down", issuerDown},
		{0.16, "issuer answers garbage", issuerGarbage},
		{0.22, "made-up opaque token burst", opaqueBurst},
		{0.28, "upstream restarted", restartUpstream},
		{0.34, "deny list updated (SIGHUP)", func() (string, error) {
			if err := writeAtomic(denyPath, denyList(s.t, true)); err != nil {
				return "", err
			}
			s.tw.Signal(syscall.SIGHUP)
			took, err := s.probe(ctx, "/api/contacts", s.t.probeRev2, 401)
			if err != nil {
				return "", err
			}
			s.st.rev2.Store(true)
			return fmt.Sprintf("%d more jti revoked; in force %s after the SIGHUP", poolSize+1, took.Round(100*time.Millisecond)), nil
		}},
		{0.40, "rules file updated (polled)", func() (string, error) {
			s.st.rulesPaused.Store(true)
			if err := writeAtomic(rulesPath, rulesFile(true)); err != nil {
				return "", err
			}
			took, err := s.probe(ctx, "/api/reports/probe", s.t.probeRules, 200)
			if err != nil {
				return "", err
			}
			s.up.reportsAllowed.Store(true)
			s.st.rulesNew.Store(true)
			return fmt.Sprintf("/api/reports/ opened to read:contacts; in force %s after the write (TOKENWARD_RULES_RELOAD_INTERVAL 5s)", took.Round(100*time.Millisecond)), nil
		}},
		{0.54, "issuer down", issuerDown},
		{0.60, "issuer answers garbage", issuerGarbage},
		{0.66, "made-up opaque token burst", opaqueBurst},
		{0.71, "upstream restarted", restartUpstream},
		{0.76, "old key retired", func() (string, error) {
			if err := s.iss.SetSigningKey(s.t.key2.ID); err != nil {
				return "", err
			}
			s.st.aWithdrawn.Store(true)
			// Requests already picked with an old-key token are answered
			// long before tokenward can refresh (at most once per
			// TOKENWARD_JWKS_MIN_REFRESH_INTERVAL); give them a second.
			if err := wait(ctx, time.Second); err != nil {
				return "", err
			}
			if err := s.iss.RemoveKey(s.t.key1.ID); err != nil {
				return "", err
			}
			took, err := s.probe(ctx, "/api/contacts", s.t.probeA, 401)
			if err != nil {
				return "", err
			}
			s.up.oldKeyRetired.Store(true)
			s.st.aRetired.Store(true)
			return fmt.Sprintf("old-key tokens refused %s after the key was unpublished; sent as invalid from then on", took.Round(100*time.Millisecond)), nil
		}},
	}
	for _, f := range schedule {
		ev := event{name: f.name, planned: time.Duration(f.at * float64(d))}
		if err := wait(ctx, s.soakFrom+ev.planned-s.since()); err != nil {
			s.events = append(s.events, ev)
			continue
		}
		ev.ran, ev.start = true, s.since()-s.soakFrom
		s.setPhase(f.name)
		ev.note, ev.err = f.do()
		ev.end = s.since() - s.soakFrom
		if ev.err != nil {
			logf("fault %q: %v", f.name, ev.err)
		} else {
			logf("fault %q: %s", f.name, ev.note)
		}
		s.events = append(s.events, ev)
	}
}

// samplesCSV is every resource sample, one line each, for a closer look at
// a plateau than the report's table gives (memory in KiB).
func (s *soak) samplesCSV() []byte {
	var b bytes.Buffer
	b.WriteString("seconds,rss,rss_anon,rss_file,heap_alloc,heap_inuse,heap_idle,heap_released,stack,heap_objects,token_cache_entries,token_cache,goroutines,fds\n")
	for _, x := range s.samples {
		fmt.Fprintf(&b, "%.0f,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d\n", (x.at - s.soakFrom).Seconds(), x.rssKiB, x.rssAnonKiB, x.rssFileKiB,
			x.heapBytes>>10, x.heapInuse>>10, x.heapIdle>>10, x.heapReleased>>10, x.stack>>10, x.heapObjects, x.cacheEntries, x.cacheB>>10, x.goroutine, x.fds)
	}
	return b.Bytes()
}
