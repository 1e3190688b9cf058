package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

type report struct {
	cfg     *config
	machine machine
	started time.Time
	elapsed time.Duration
	goBench *goBenchReport
	goErr   string // why the Go benchmarks did not run
	http    *httpReport
}

// problems are the parts that should have run and did not: benchrun exits
// with an error after writing the report, so that CI notices.
func (r *report) problems() []string {
	var p []string
	if r.goErr != "" {
		p = append(p, "Go benchmarks: "+firstLines([]byte(r.goErr), 3))
	}
	if r.http != nil {
		for _, t := range r.http.targets {
			if t.skip != "" {
				p = append(p, fmt.Sprintf("(%s) %s: %s", t.key, t.name, firstLines([]byte(t.skip), 3)))
			}
		}
	}
	return p
}

// markdown renders the report: the machine and settings, the validator
// table, the HTTP table, and the targets of issue 5.
func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.machine
	mode := "full run"
	if r.cfg.smoke {
		mode = "smoke run (short: the numbers are only indicative)"
	}
	p("## Latest results\n\n%s, %s, by `%sbench/run.sh`.\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"), mode, knobs())
	p("- machine: %d cores, %s, Linux %s; %s\n", m.nproc, m.cpuModel, m.kernel, m.goVersion)
	if r.http != nil {
		p("- load tool: %s; HAProxy %s\n", r.http.wrkVersion, orDash(r.http.haproxyVersion))
	}
	p("- load average at start %s, at end %s", m.loadStart, m.loadAfter)
	if f, ok := r.foreignLoad(); ok {
		p("; other processes used %.2f cores on average during the measurements (max %.2f)", f.mean, f.max)
		if f.max > 0.1 {
			p(" — **the machine was shared: compare ratios within this run, not absolute numbers across runs**")
		}
	}
	p("\n")
	if r.cfg.pin {
		p("- pinning (taskset): the process measured — the Go benchmarks, or the server under load — on core(s) %s with GOMAXPROCS/nbthread %d; wrk and the upstream on core(s) %s\n", r.cfg.sutCPUs, r.cfg.procs, r.cfg.loadCPUs)
	} else {
		p("- no pinning; GOMAXPROCS/nbthread %d\n", r.cfg.procs)
	}
	p("- total time %s\n\n", r.elapsed.Round(time.Second))

	if r.goErr != "" {
		p("### Validators\n\nThe Go benchmarks did not run: %s\n\n", mdEscape(r.goErr))
	}
	if r.goBench != nil {
		r.goTable(&b)
	}
	if r.http != nil {
		r.httpTable(&b)
	}
	r.targets(&b)
	return b.String()
}

// knobs are the BENCH_* variables of the run, as a command prefix.
func knobs() string {
	var k []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "BENCH_") {
			k = append(k, kv+" ")
		}
	}
	slices.Sort(k)
	return strings.Join(k, "")
}

func (r *report) goTable(b *strings.Builder) {
	g := r.goBench
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("### Validators (Go benchmarks, median of %d, -benchtime %s)\n\n", r.cfg.count, r.cfg.benchtime)
	if len(g.foreign) > 0 {
		p("Other processes used %.2f cores on average during these runs (max %.2f).\n\n", mean(g.foreign), slices.Max(g.foreign))
	}
	p("× floor is the median of the per-run ratios (each run has every benchmark, so a burst of load elsewhere hits them all); spread is (max − min) / median of ns/op over the runs.\n\n")
	p("| benchmark | what | ns/op | spread | × floor | B/op | allocs/op |\n|---|---|--:|--:|--:|--:|--:|\n")
	floor := g.results["FloorRSA"]
	what := map[string]string{
		"FloorRSA":          "(1) floor: sha256 + rsa.VerifyPKCS1v15 of the signing input",
		"TokenwardCold":     "(2) tokenward `Validator`, new token each call, no cache",
		"TokenwardCached":   "(2) tokenward `Validator`, same token, `CacheSize` 100000",
		"GoJWTMiddlewareV2": "(3) go-jwt-middleware/v2 `validator.ValidateToken`",
		"GolangJWTv5":       "(4) golang-jwt/v5 `jwt.Parse` (MapClaims) + claim checks",
		"GolangJWTv5Typed":  "(4') golang-jwt/v5 `ParseWithClaims`, typed claims, parser reused",
	}
	for _, name := range goBenchNames {
		res := g.results[name]
		if res == nil {
			p("| %s | %s | — | — | — | — | — |\n", name, what[name]+": no result")
			continue
		}
		p("| %s | %s | %s | %s | %.3f | %.0f | %.0f |\n", name, what[name], fmtNs(res.nsPerOp), spread(res.samples), goRatio(res, floor), res.bPerOp, res.allocs)
	}
	p("\n")
}

// goRatio is the median over the runs of a's ns/op divided by b's in the
// same run.
func goRatio(a, b *goBenchResult) float64 {
	if len(a.samples) != len(b.samples) || len(a.samples) == 0 {
		return a.nsPerOp / b.nsPerOp
	}
	r := make([]float64, len(a.samples))
	for i := range r {
		r[i] = a.samples[i] / b.samples[i]
	}
	return median(r)
}

func mean(v []float64) float64 {
	var sum float64
	for _, x := range v {
		sum += x
	}
	return sum / float64(max(1, len(v)))
}

// spread is (max - min) / median, as a percentage.
func spread(v []float64) string {
	if len(v) < 2 {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", 100*(slices.Max(v)-slices.Min(v))/median(v))
}

func fmtNs(ns float64) string {
	if ns >= 1000 {
		return fmt.Sprintf("%.0f", ns)
	}
	return fmt.Sprintf("%.1f", ns)
}

// httpStats are a target's medians over its rounds.
type httpStats struct {
	rps, p50, p99, cpu float64
	errors             int64
	requests           int64
	rpsRuns            []float64
}

func (t *target) stats() (httpStats, bool) {
	if len(t.runs) == 0 {
		return httpStats{}, false
	}
	var s httpStats
	var rps, p50, p99, cpu []float64
	for _, run := range t.runs {
		rps = append(rps, run.rps)
		p50 = append(p50, float64(run.P50US))
		p99 = append(p99, float64(run.P99US))
		cpu = append(cpu, run.cpuUSPerReq)
		s.errors += run.errors()
		s.requests += run.Requests
	}
	s.rps, s.p50, s.p99, s.cpu, s.rpsRuns = median(rps), median(p50), median(p99), median(cpu), rps
	return s, true
}

func (r *report) httpTable(b *strings.Builder) {
	h := r.http
	cfg := r.cfg
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("### HTTP (wrk: %d distinct tokens round robin, %d connections, %d threads, %d interleaved rounds of %s after a %s warm-up; medians)\n\n",
		cfg.tokens, cfg.connections, cfg.threads, cfg.rounds, cfg.duration, cfg.warmup)
	p("Tokens are %d bytes. CPU is the user+system time of the server measured (not of the upstream behind it) per request, from /proc/PID/stat.\n\n", h.tokenBytes)
	p("| | server | req/s | × (b) | p50 µs | p99 µs | p99 × (b) | CPU µs/req | CPU × (b) | RSS MiB | errors | req/s each round |\n")
	p("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	base := h.target("b")
	for _, t := range h.targets {
		s, ok := t.stats()
		if !ok {
			p("| (%s) | %s | not measured: %s |||||||||||\n", t.key, t.name, mdEscape(t.skip))
			continue
		}
		ratio := func(f func(wrkRun) float64) string {
			if x, ok := roundRatio(t, base, f); ok {
				return fmt.Sprintf("%.2f", x)
			}
			return "—"
		}
		var runs []string
		for _, v := range s.rpsRuns {
			runs = append(runs, fmt.Sprintf("%.0f", v))
		}
		p("| (%s) | %s | %.0f | %s | %.0f | %.0f | %s | %.1f | %s | %.1f | %s | %s |\n",
			t.key, t.name, s.rps, ratio(rps), s.p50, s.p99, ratio(p99),
			s.cpu, ratio(cpu), float64(t.rss)/1024, errCell(s), strings.Join(runs, " / "))
	}
	p("\n")
	for _, t := range h.targets {
		for _, n := range t.notes {
			p("- (%s) %s\n", t.key, n)
		}
	}
	if m := h.mem; m != nil {
		if m.skip != "" {
			p("- memory phase not run: %s\n", m.skip)
		} else {
			p("- memory: after %d new distinct tokens (sent once each, %d refused, %s), (c) has %.1f MiB RSS (%.1f MiB before them, peak %.1f MiB)",
				m.tokens, m.refused, m.elapsed.Round(time.Second), kib(m.rss), kib(m.rssBefore), kib(m.peak))
			if len(m.cacheMetrics) > 0 {
				p("; its cache metrics: `%s`", strings.Join(m.cacheMetrics, "`, `"))
			}
			p("\n")
		}
	}
	p("\n")
}

// The measures of a wrk run that are compared.
func rps(r wrkRun) float64 { return r.rps }
func p99(r wrkRun) float64 { return float64(r.P99US) }
func cpu(r wrkRun) float64 { return r.cpuUSPerReq }

// roundRatio is the median over the rounds of t's measure divided by ref's
// in the same round: the rounds are interleaved, so the two shared whatever
// else the machine was doing at the time.
func roundRatio(t, ref *target, f func(wrkRun) float64) (float64, bool) {
	if t == nil || ref == nil || len(t.runs) == 0 || len(t.runs) != len(ref.runs) {
		return 0, false
	}
	r := make([]float64, len(t.runs))
	for i := range r {
		d := f(ref.runs[i])
		if d == 0 {
			return 0, false
		}
		r[i] = f(t.runs[i]) / d
	}
	return median(r), true
}

func errCell(s httpStats) string {
	if s.errors == 0 {
		return "0"
	}
	return fmt.Sprintf("**%d** (%.2f%%)", s.errors, 100*float64(s.errors)/float64(max(1, s.requests)))
}

func kib(v int64) float64 { return float64(v) / 1024 }

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", `\|`)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

type foreign struct{ mean, max float64 }

// foreignLoad is the CPU other processes used during the measurements, in
// cores: the Go benchmark runs and the measured wrk runs.
func (r *report) foreignLoad() (foreign, bool) {
	var v []float64
	if r.goBench != nil {
		v = append(v, r.goBench.foreign...)
	}
	if r.http != nil {
		for _, t := range r.http.targets {
			for _, run := range t.runs {
				v = append(v, run.foreignCores)
			}
		}
	}
	if len(v) == 0 {
		return foreign{}, false
	}
	return foreign{mean: mean(v), max: slices.Max(v)}, true
}

// targets checks the measures of issue 5 against its targets.
func (r *report) targets(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("### Targets of issue 5\n\n| measure | target | measured | met |\n|---|---|---|---|\n")
	row := func(measure, target, measured string, met *bool) {
		verdict := "not measured"
		switch {
		case met == nil:
		case *met:
			verdict = "**met**"
		default:
			verdict = "**not met**"
		}
		p("| %s | %s | %s | %s |\n", measure, target, measured, verdict)
	}
	yes := func(v bool) *bool { return &v }

	var floor, cold, cached, peer *goBenchResult
	if g := r.goBench; g != nil {
		floor, cold, cached, peer = g.results["FloorRSA"], g.results["TokenwardCold"], g.results["TokenwardCached"], g.results["GoJWTMiddlewareV2"]
	}
	if floor != nil && cold != nil {
		x := goRatio(cold, floor)
		row("validator, new token (RS256)", "≤ 1.15× bare crypto/rsa", fmt.Sprintf("%.3f× (%s vs %s ns)", x, fmtNs(cold.nsPerOp), fmtNs(floor.nsPerOp)), yes(x <= 1.15))
	} else {
		row("validator, new token (RS256)", "≤ 1.15× bare crypto/rsa", "—", nil)
	}
	if cached != nil {
		row("validator, cached token", "≤ 1 µs and ≤ 2 allocations per call", fmt.Sprintf("%s ns, %.0f allocs", fmtNs(cached.nsPerOp), cached.allocs), yes(cached.nsPerOp <= 1000 && cached.allocs <= 2))
	} else {
		row("validator, cached token", "≤ 1 µs and ≤ 2 allocations per call", "—", nil)
	}
	if peer != nil && cold != nil {
		x := goRatio(peer, cold)
		row("validator vs go-jwt-middleware/v2, new token", "≥ 1.5× faster", fmt.Sprintf("%.2f× faster", x), yes(x >= 1.5))
	} else {
		row("validator vs go-jwt-middleware/v2, new token", "≥ 1.5× faster", "—", nil)
	}

	var tb, tc, td, te *target
	if h := r.http; h != nil {
		tb, tc, td, te = h.target("b"), h.target("c"), h.target("d"), h.target("e")
	}
	if rx, ok := roundRatio(tc, tb, rps); ok {
		px, _ := roundRatio(tc, tb, p99)
		cx, _ := roundRatio(tc, tb, cpu)
		measured := fmt.Sprintf("%.2f× req/s, p99 %.2f× (CPU per request %.2f×)", rx, px, cx)
		if !r.http.target("c").cacheOn {
			measured += "; **no cache metric on /metrics: the cache is not confirmed**"
		}
		row(fmt.Sprintf("binary with cache, %d distinct tokens, %d connections", r.cfg.tokens, r.cfg.connections), "≥ 0.95× bare ReverseProxy req/s, p99 ≤ 1.1×",
			measured, yes(rx >= 0.95 && px <= 1.1))
	} else {
		row("binary with cache", "≥ 0.95× bare ReverseProxy req/s, p99 ≤ 1.1×", "—", nil)
	}
	if x, ok := roundRatio(tc, te, rps); ok {
		hx, _ := roundRatio(te, tb, rps)
		cx, _ := roundRatio(tc, te, cpu)
		row("stretch: binary with cache vs HAProxy jwt_verify", "≥ 1× HAProxy req/s", fmt.Sprintf("%.2f× (HAProxy is %.2f× the bare proxy; CPU per request: tokenward %.2f× HAProxy's)", x, hx, cx), yes(x >= 1))
	} else {
		row("stretch: binary with cache vs HAProxy jwt_verify", "≥ 1× HAProxy req/s", "—", nil)
	}
	if x, ok := roundRatio(td, tb, rps); ok {
		cx, _ := roundRatio(td, tb, cpu)
		row("binary without cache, same mix", "≥ 0.8× bare ReverseProxy req/s", fmt.Sprintf("%.2f× (CPU per request %.2f×)", x, cx), yes(x >= 0.8))
	} else {
		row("binary without cache, same mix", "≥ 0.8× bare ReverseProxy req/s", "—", nil)
	}
	if m := r.memOK(); m != nil && m.tokens >= 100000 {
		measured := fmt.Sprintf("%.1f MiB RSS after %d tokens (%d refused)", kib(m.rss), m.tokens, m.refused)
		if !r.http.target("c").cacheOn {
			measured += "; **no cache metric on /metrics: the cache is not confirmed**"
		}
		row("memory with 100k distinct cached tokens", "≤ 100 MiB RSS", measured, yes(kib(m.rss) <= 100 && m.refused == 0))
	} else {
		measured := "not run by default (minting 100k RS256 tokens takes minutes): BENCH_MEM_TOKENS=100000"
		if m != nil {
			measured = fmt.Sprintf("%.1f MiB RSS after only %d tokens", kib(m.rss), m.tokens)
		}
		row("memory with 100k distinct cached tokens", "≤ 100 MiB RSS", measured, nil)
	}
	row("cache bound under a flood of new valid tokens", "the bound holds", "tested by middleware's cache tests, not here", nil)
	p("\n")
	if f, ok := r.foreignLoad(); ok && f.max > 0.25 {
		p("Other processes used up to %.2f cores during the measured runs: the req/s and latency verdicts carry that noise; CPU per request is the steadier measure.\n\n", f.max)
	}
}

func (r *report) memOK() *memReport {
	if r.http == nil || r.http.mem == nil || r.http.mem.skip != "" {
		return nil
	}
	return r.http.mem
}
