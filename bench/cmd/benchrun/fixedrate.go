package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/tokenward/tokenward/bench/internal/fixture"
	"github.com/tokenward/tokenward/bench/internal/loadgen"
)

// The fixed-rate shares of the bare proxy's capacity (issue 15).
var fixedShares = []float64{0.25, 0.50, 0.80}

// fixedRun is one constant-rate run against one server.
type fixedRun struct {
	share, rate  float64
	hist         loadgen.Histogram
	stats        loadgen.Stats
	errors       int64 // transport errors and answers other than 200
	cpuUSPerReq  float64
	loadCores    float64 // cores busy with the generator and the upstream: near their count, the generator's side was the limit
	foreignCores float64 // cores busy with processes other than the run's
}

type fixedReport struct {
	capacity float64 // the bare proxy's req/s under wrk, measured in this run
	capRun   wrkRun
	targets  []*target
	runs     map[string][]*fixedRun // by target key, in share order
	workers  int
	duration time.Duration
}

// runFixedRate measures the bare proxy's capacity with wrk, then sends each
// of (b), (c) and (e) a constant rate of 25%, 50% and 80% of it, latency
// measured from each request's scheduled time (internal/loadgen), and
// reports p50, p99 and p99.9.
func runFixedRate(ctx context.Context, cfg *config, work string, fix *fixture.Fixture) (*fixedReport, *httpReport, error) {
	if cfg.pin {
		// The generator is this process: keep it off the servers' core.
		// Servers are started through taskset with their own cores.
		if out, err := exec.CommandContext(ctx, "taskset", "-a", "-p", "-c", cfg.loadCPUs, strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
			return nil, nil, fmt.Errorf("pinning the generator: %v: %s", err, out)
		}
		// One P per core it may use: more would put two threads on one
		// core, spinning and switching where the upstream needs the time.
		runtime.GOMAXPROCS(cfg.nproc - cfg.procs)
	}
	s, err := startServers(ctx, cfg, work, fix)
	defer s.stop()
	if err != nil {
		return nil, nil, err
	}
	b := s.rep.target("b")
	if b == nil || b.skip != "" {
		return nil, s.rep, fmt.Errorf("fixed rate: the bare proxy (b) is needed for the capacity: %v", b)
	}
	fr := &fixedReport{runs: map[string][]*fixedRun{}, workers: cfg.frWorkers, duration: cfg.duration}
	logf("fixed rate: measuring the capacity of (b) with wrk (%s)", cfg.duration)
	if _, err := runWrk(ctx, cfg, b, s.backend, s.bin("tokens.lua"), s.bin("tokens.txt"), cfg.warmup, false); err != nil {
		return nil, s.rep, err
	}
	if fr.capRun, err = runWrk(ctx, cfg, b, s.backend, s.bin("tokens.lua"), s.bin("tokens.txt"), cfg.duration, true); err != nil {
		return nil, s.rep, err
	}
	fr.capacity = fr.capRun.rps
	logf("fixed rate: (b) capacity %.0f req/s (p99 %d µs at saturation)", fr.capacity, fr.capRun.P99US)
	for _, t := range s.rep.targets {
		if t.skip == "" && (t.key == "b" || t.key == "c" || t.key == "e") {
			fr.targets = append(fr.targets, t)
		}
	}
	for _, share := range fixedShares {
		rate := fr.capacity * share
		for _, t := range fr.targets {
			reqs := requests(t.url, s.tokens)
			if _, err := constantRate(ctx, t, s.backend, reqs, rate, cfg.warmup, cfg.frWorkers); err != nil {
				return nil, s.rep, err
			}
			run, err := constantRate(ctx, t, s.backend, reqs, rate, cfg.duration, cfg.frWorkers)
			if err != nil {
				return nil, s.rep, err
			}
			run.share = share
			fr.runs[t.key] = append(fr.runs[t.key], run)
			logf("fixed rate: %3.0f%% %7.0f req/s (%s) %-28s p50 %6d µs  p99 %6d µs  p99.9 %6d µs  errors %d  late slots %d (max lag %v)  CPU %.1f µs/req  generator+upstream %.2f cores  other load %.2f cores",
				share*100, rate, t.key, t.name, us(run.hist.Quantile(0.5)), us(run.hist.Quantile(0.99)), us(run.hist.Quantile(0.999)),
				run.errors, run.stats.Late, run.stats.MaxLag.Round(time.Microsecond), run.cpuUSPerReq, run.loadCores, run.foreignCores)
		}
	}
	return fr, s.rep, nil
}

func us(d time.Duration) int64 { return int64(d / time.Microsecond) }

// requests are the load requests, one per token, for the server at baseURL.
func requests(baseURL string, tokens []string) [][]byte {
	host := strings.TrimPrefix(baseURL, "http://")
	reqs := make([][]byte, len(tokens))
	for i, tok := range tokens {
		reqs[i] = loadgen.Request(host, apiPath, "Authorization: Bearer "+tok)
	}
	return reqs
}

// constantRate sends rate requests/s to t for d, round robin over reqs.
func constantRate(ctx context.Context, t *target, backend *proc, reqs [][]byte, rate float64, d time.Duration, workers int) (*fixedRun, error) {
	host := strings.TrimPrefix(t.url, "http://")
	conns := make([]*loadgen.Conn, workers)
	hists := make([]loadgen.Histogram, workers)
	errs := make([]int64, workers)
	for i := range conns {
		conns[i] = loadgen.NewConn(host, 5*time.Second)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	cpu0, err := cpuTicks(t.proc.pid())
	if err != nil {
		return nil, err
	}
	self0, _ := cpuTicks(os.Getpid())
	up0, _ := cpuTicks(backend.pid())
	busy0, _ := busyTicks()
	st := loadgen.Run(ctx, loadgen.Config{Rate: rate, Duration: d, Workers: workers}, func(ctx context.Context, w int, slot int64, at time.Time) {
		resp, err := conns[w].Do(reqs[slot%int64(len(reqs))])
		hists[w].Record(time.Since(at))
		if err != nil || resp.Status != 200 {
			errs[w]++
		}
	})
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	cpu1, err := cpuTicks(t.proc.pid())
	if err != nil {
		return nil, fmt.Errorf("(%s) %s is gone: %w", t.key, t.name, err)
	}
	self1, _ := cpuTicks(os.Getpid())
	up1, _ := cpuTicks(backend.pid())
	busy1, _ := busyTicks()
	run := &fixedRun{rate: rate, stats: st}
	ours := (cpu1 - cpu0) + (self1 - self0) + (up1 - up0)
	run.foreignCores = max(0, float64(busy1-busy0-ours)/ticksPerSecond/st.Elapsed.Seconds())
	run.loadCores = float64((self1-self0)+(up1-up0)) / ticksPerSecond / st.Elapsed.Seconds()
	for i := range hists {
		run.hist.Merge(&hists[i])
		run.errors += errs[i]
	}
	if st.Slots > 0 {
		run.cpuUSPerReq = float64(cpu1-cpu0) / ticksPerSecond * 1e6 / float64(st.Slots)
	}
	return run, nil
}

// markdown renders the fixed-rate table.
func (fr *fixedReport) markdown(cfg *config, m machine, started time.Time, elapsed time.Duration) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## Fixed-rate tail latency\n\n%s, by `bench/run.sh -fixedrate`%s.\n\n", started.UTC().Format("2006-01-02 15:04 MST"), map[bool]string{true: " (smoke: indicative only)"}[cfg.smoke])
	p("- machine: %d cores, %s, Linux %s; %s; load average at start %s, at end %s\n", m.nproc, m.cpuModel, m.kernel, m.goVersion, m.loadStart, m.loadAfter)
	if cfg.pin {
		p("- pinning (taskset): the server measured on core(s) %s with GOMAXPROCS/nbthread %d; the generator and the upstream on core(s) %s\n", cfg.sutCPUs, cfg.procs, cfg.loadCPUs)
	}
	p("- capacity of (b), the bare httputil.ReverseProxy, measured first in this run: **%.0f req/s** (wrk, %d connections, %s)\n", fr.capacity, cfg.connections, cfg.duration)
	p("- each cell: %s at a constant rate after a %s warm-up at the same rate, %d distinct tokens round robin, %d connections; latency from each request's scheduled send time (coordinated-omission-correct), log-linear histogram (≤ 1.6%% error); rates interleaved across the servers\n", fr.duration, cfg.warmup, cfg.tokens, fr.workers)
	p("- total time %s\n\n", elapsed.Round(time.Second))
	p("Late slots: the share of requests the generator started over 1 ms after their scheduled time, and the longest delay (no slot is ever dropped: a late one is sent late, and its latency counts from its scheduled time). Generator and upstream: the cores the generator and the upstream used together during the cell (they share %s): near that, their side limited the cell. Other load: cores used by processes other than the run's (server, generator, upstream) during the cell, from /proc/stat.\n\n", map[bool]string{true: "core(s) " + cfg.loadCPUs, false: "the machine"}[cfg.pin])
	p("| rate | server | p50 µs | p99 µs | p99.9 µs | max µs | server CPU µs/req | errors | late slots (max lag) | generator and upstream, cores | other load, cores |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for i, share := range fixedShares {
		for _, t := range fr.targets {
			runs := fr.runs[t.key]
			if i >= len(runs) {
				continue
			}
			r := runs[i]
			p("| %.0f%% (%.0f/s) | (%s) %s | %d | %d | %d | %d | %.1f | %d | %.1f%% (%s) | %.2f | %.2f |\n", share*100, r.rate, t.key, t.name,
				us(r.hist.Quantile(0.5)), us(r.hist.Quantile(0.99)), us(r.hist.Quantile(0.999)), us(r.hist.Max()), r.cpuUSPerReq, r.errors,
				r.stats.LateShare()*100, r.stats.MaxLag.Round(time.Millisecond), r.loadCores, r.foreignCores)
		}
	}
	p("\n")
	c, e := fr.runs["c"], fr.runs["e"]
	if len(c) == len(fixedShares) && len(e) == len(fixedShares) {
		var notMet []string
		for i, share := range fixedShares {
			for _, q := range []struct {
				name string
				q    float64
			}{{"p99", 0.99}, {"p99.9", 0.999}} {
				if c[i].hist.Quantile(q.q) > e[i].hist.Quantile(q.q) {
					notMet = append(notMet, fmt.Sprintf("%s at %.0f%% (%d vs %d µs)", q.name, share*100, us(c[i].hist.Quantile(q.q)), us(e[i].hist.Quantile(q.q))))
				}
			}
		}
		if len(notMet) == 0 {
			p("Target of issue 15 (tokenward's p99 and p99.9 ≤ HAProxy's at every rate): **met**.\n")
		} else {
			p("Target of issue 15 (tokenward's p99 and p99.9 ≤ HAProxy's at every rate): **not met** for %s.\n", strings.Join(notMet, ", "))
		}
	}
	late := false
	for _, runs := range fr.runs {
		for _, r := range runs {
			late = late || r.stats.LateShare() > 0.01
		}
	}
	if late {
		p("\n**Over 1%% of a run's slots started more than 1 ms late: the generator fell behind there, and that cell measures it too.**\n")
	}
	return b.String()
}

// writeFixed prints the fixed-rate report and writes it to
// results/fixedrate-latest.md.
func writeFixed(cfg *config, md string) error {
	fmt.Print(md)
	out := filepath.Join(cfg.resultsDir, "fixedrate-latest.md")
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		return err
	}
	logf("report written to %s", out)
	return nil
}
