package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenward/tokenward/bench/internal/fixture"
	"github.com/tokenward/tokenward/bench/internal/loadgen"
	"github.com/tokenward/tokenward/bench/internal/procs"
)

// The fixed-rate shares of the bare proxy's capacity (issue 15).
var fixedShares = []float64{0.25, 0.50, 0.80}

// fixedRun is one constant-rate run (one round) against one server.
type fixedRun struct {
	rate         float64
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
	runs     map[string][][]*fixedRun // by target key: for each share, its rounds
	workers  int
	duration time.Duration
	rounds   int
}

// cell is what the table shows of one server at one rate: the median over
// the rounds of each percentile (a hiccup of the machine in one round does
// not decide a cell; what the server does every round does), their range,
// and the worst round's max, late slots and other load.
type cell struct {
	rate                   float64
	p50, p99, p999         time.Duration
	p99Lo, p99Hi           time.Duration
	p999Lo, p999Hi         time.Duration
	max                    time.Duration
	cpuUSPerReq, loadCores float64 // means
	errors                 int64
	lateShare              float64
	maxLag                 time.Duration
	foreignCores           float64
}

func (fr *fixedReport) cell(key string, i int) (cell, bool) {
	if i >= len(fr.runs[key]) || len(fr.runs[key][i]) == 0 {
		return cell{}, false
	}
	rounds := fr.runs[key][i]
	c := cell{rate: rounds[0].rate}
	q := func(p float64) (med, lo, hi time.Duration) {
		v := make([]float64, len(rounds))
		for j, r := range rounds {
			v[j] = float64(r.hist.Quantile(p))
		}
		return time.Duration(median(v)), time.Duration(slices.Min(v)), time.Duration(slices.Max(v))
	}
	c.p50, _, _ = q(0.5)
	c.p99, c.p99Lo, c.p99Hi = q(0.99)
	c.p999, c.p999Lo, c.p999Hi = q(0.999)
	for _, r := range rounds {
		c.max = max(c.max, r.hist.Max())
		c.cpuUSPerReq += r.cpuUSPerReq / float64(len(rounds))
		c.loadCores += r.loadCores / float64(len(rounds))
		c.errors += r.errors
		c.lateShare = max(c.lateShare, r.stats.LateShare())
		c.maxLag = max(c.maxLag, r.stats.MaxLag)
		c.foreignCores = max(c.foreignCores, r.foreignCores)
	}
	return c, true
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
	fr := &fixedReport{runs: map[string][][]*fixedRun{}, workers: cfg.frWorkers, duration: cfg.duration, rounds: cfg.rounds}
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
	for _, t := range fr.targets {
		fr.runs[t.key] = make([][]*fixedRun, len(fixedShares))
	}
	// Rounds outermost, then rates, then servers: the servers of a cell run
	// next to each other, and a disturbance of the machine lasting minutes
	// touches one round of each.
	for round := range cfg.rounds {
		for i, share := range fixedShares {
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
				fr.runs[t.key][i] = append(fr.runs[t.key][i], run)
				logf("fixed rate: round %d/%d %3.0f%% %7.0f req/s (%s) %-28s p50 %6d µs  p99 %6d µs  p99.9 %6d µs  errors %d  late slots %d (max lag %v)  CPU %.1f µs/req  generator+upstream %.2f cores  other load %.2f cores",
					round+1, cfg.rounds, share*100, rate, t.key, t.name, us(run.hist.Quantile(0.5)), us(run.hist.Quantile(0.99)), us(run.hist.Quantile(0.999)),
					run.errors, run.stats.Late, run.stats.MaxLag.Round(time.Microsecond), run.cpuUSPerReq, run.loadCores, run.foreignCores)
			}
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
func constantRate(ctx context.Context, t *target, backend *procs.Proc, reqs [][]byte, rate float64, d time.Duration, workers int) (*fixedRun, error) {
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
	cpu0, err := procs.CPUTicks(t.proc.PID())
	if err != nil {
		return nil, err
	}
	self0, _ := procs.CPUTicks(os.Getpid())
	up0, _ := procs.CPUTicks(backend.PID())
	busy0, _ := procs.BusyTicks()
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
	cpu1, err := procs.CPUTicks(t.proc.PID())
	if err != nil {
		return nil, fmt.Errorf("(%s) %s is gone: %w", t.key, t.name, err)
	}
	self1, _ := procs.CPUTicks(os.Getpid())
	up1, _ := procs.CPUTicks(backend.PID())
	busy1, _ := procs.BusyTicks()
	run := &fixedRun{rate: rate, stats: st}
	ours := (cpu1 - cpu0) + (self1 - self0) + (up1 - up0)
	run.foreignCores = max(0, float64(busy1-busy0-ours)/procs.TicksPerSecond/st.Elapsed.Seconds())
	run.loadCores = float64((self1-self0)+(up1-up0)) / procs.TicksPerSecond / st.Elapsed.Seconds()
	for i := range hists {
		run.hist.Merge(&hists[i])
		run.errors += errs[i]
	}
	if st.Slots > 0 {
		run.cpuUSPerReq = float64(cpu1-cpu0) / procs.TicksPerSecond * 1e6 / float64(st.Slots)
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
	p("- each cell: %d round(s) of %s at a constant rate, each after a %s warm-up at the same rate, %d distinct tokens round robin, %d connections; latency from each request's scheduled send time (coordinated-omission-correct), log-linear histogram (≤ 1.6%% error); rounds outermost, then rates, then servers, so that the servers of a cell run back to back\n", fr.rounds, fr.duration, cfg.warmup, cfg.tokens, fr.workers)
	p("- total time %s\n\n", elapsed.Round(time.Second))
	p("Each percentile is the median of the rounds' (so that a hiccup of the machine in one round does not decide a cell, while what a server does every round does), with the rounds' range beside p99 and p99.9; max is the highest of all rounds. Server CPU: the server's CPU time per request sent (from `/proc/PID/stat`), mean of the rounds. Late slots: the share of requests the generator started over 1 ms after their scheduled time, and the longest delay, in the worst round (no slot is ever dropped: a late one is sent late, and its latency counts from its scheduled time). Generator and upstream: the cores they used together (they share %s), mean of the rounds: near that, their side limited the cell. Other load: cores used by processes other than the run's during the cell, from /proc/stat, in the worst round.\n\n", map[bool]string{true: "core(s) " + cfg.loadCPUs, false: "the machine"}[cfg.pin])
	p("| rate | server | p50 µs | p99 µs (range) | p99.9 µs (range) | max µs | server CPU µs/req | errors | late slots (max lag) | generator and upstream, cores | other load, cores |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for i, share := range fixedShares {
		for _, t := range fr.targets {
			c, ok := fr.cell(t.key, i)
			if !ok {
				continue
			}
			p("| %.0f%% (%.0f/s) | (%s) %s | %d | %d (%d–%d) | %d (%d–%d) | %d | %.1f | %d | %.1f%% (%s) | %.2f | %.2f |\n", share*100, c.rate, t.key, t.name,
				us(c.p50), us(c.p99), us(c.p99Lo), us(c.p99Hi), us(c.p999), us(c.p999Lo), us(c.p999Hi), us(c.max), c.cpuUSPerReq, c.errors,
				c.lateShare*100, c.maxLag.Round(time.Millisecond), c.loadCores, c.foreignCores)
		}
	}
	p("\n")
	var notMet []string
	compared := true
	for i, share := range fixedShares {
		c, okC := fr.cell("c", i)
		e, okE := fr.cell("e", i)
		if !okC || !okE {
			compared = false
			continue
		}
		if c.p99 > e.p99 {
			notMet = append(notMet, fmt.Sprintf("p99 at %.0f%% (%d vs %d µs)", share*100, us(c.p99), us(e.p99)))
		}
		if c.p999 > e.p999 {
			notMet = append(notMet, fmt.Sprintf("p99.9 at %.0f%% (%d vs %d µs)", share*100, us(c.p999), us(e.p999)))
		}
	}
	switch {
	case !compared:
	case len(notMet) == 0:
		p("Target of issue 15 (tokenward's p99 and p99.9 ≤ HAProxy's at every rate, medians of the rounds): **met**.\n")
	default:
		p("Target of issue 15 (tokenward's p99 and p99.9 ≤ HAProxy's at every rate, medians of the rounds): **not met** for %s.\n", strings.Join(notMet, ", "))
	}
	late := false
	for _, t := range fr.targets {
		for i := range fixedShares {
			if c, ok := fr.cell(t.key, i); ok && c.lateShare > 0.01 {
				late = true
			}
		}
	}
	if late {
		p("\n**Over 1%% of a round's slots started more than 1 ms late in some cells: the generator fell behind there (or the server did not answer in time for it to keep the schedule), and that cell measures it too.**\n")
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
