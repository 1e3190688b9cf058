// Command benchrun runs tokenward's benchmark suite (issue 5) and writes a
// markdown report to stdout and to results/latest.md:
//
//   - the Go benchmarks of this module (bare crypto/rsa, tokenward's validator
//     cold and cached, go-jwt-middleware/v2, golang-jwt/v5), -count times,
//     medians and ratios to the crypto/rsa floor;
//   - an HTTP load test with wrk: (a) the upstream alone, (b) a bare
//     httputil.ReverseProxy, (c) the tokenward binary with its cache, (d)
//     without it, (e) HAProxy verifying the same tokens with jwt_verify;
//     rounds interleaved, medians and ratios to (b);
//   - optionally, the memory of the binary after N distinct tokens.
//
// It is run by run.sh from the bench directory, which checks the
// prerequisites first. It installs nothing. Every process it starts is
// stopped when it ends, also on SIGINT and SIGTERM. Knobs are environment
// variables (BENCH_*), listed in loadConfig and in BENCHMARKS.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tokenward/tokenward/bench/internal/fixture"
	"github.com/tokenward/tokenward/bench/internal/procs"
)

func main() {
	smoke := flag.Bool("smoke", false, "short run for CI (< 60 s): 1 round, short durations, benchmarks once")
	fixedRate := flag.Bool("fixedrate", false, "the fixed-rate tail latency runner (issue 15): (b), (c), (e) at 25%, 50%, 80% of (b)'s capacity")
	flag.Parse()
	cfg, err := loadConfig(*smoke, *fixedRate)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg *config) error {
	start := time.Now()
	logf("benchrun: %s", cfg.summary())
	m := describeMachine(cfg)
	work, err := os.MkdirTemp("", "tokenward-bench-")
	if err != nil {
		return err
	}
	if os.Getenv("BENCH_KEEP") == "" {
		defer os.RemoveAll(work)
	} else {
		logf("keeping the work directory %s", work)
	}
	if err := os.MkdirAll(cfg.resultsDir, 0o755); err != nil {
		return err
	}
	if cfg.fixedRate {
		fix, err := fixture.New()
		if err != nil {
			return err
		}
		defer fix.Close()
		fr, hrep, err := runFixedRate(ctx, cfg, work, fix)
		if err != nil {
			return fmt.Errorf("fixed rate: %w", err)
		}
		m.loadAfter = procs.LoadAvg()
		if err := writeFixed(cfg, fr.markdown(cfg, m, start, time.Since(start))); err != nil {
			return err
		}
		var skipped []string
		for _, t := range hrep.targets {
			if t.skip != "" {
				skipped = append(skipped, fmt.Sprintf("(%s) %s: %s", t.key, t.name, firstLines([]byte(t.skip), 3)))
			}
		}
		if len(skipped) > 0 {
			return fmt.Errorf("servers left out:\n  %s", strings.Join(skipped, "\n  "))
		}
		return nil
	}

	rep := &report{cfg: cfg, machine: m, started: start}
	if cfg.goBench {
		rep.goBench, err = runGoBench(ctx, cfg, work)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// Reported, and the run goes on: the HTTP part may still work.
			rep.goErr = err.Error()
			logf("go benchmarks failed: %v", err)
		}
	}
	if cfg.http {
		fix, err := fixture.New()
		if err != nil {
			return err
		}
		defer fix.Close()
		rep.http, err = runHTTP(ctx, cfg, work, fix)
		if err != nil {
			return fmt.Errorf("http benchmark: %w", err)
		}
	}
	rep.machine.loadAfter = procs.LoadAvg()
	rep.elapsed = time.Since(start)

	md := rep.markdown()
	fmt.Print(md)
	out := filepath.Join(cfg.resultsDir, "latest.md")
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		return err
	}
	logf("report written to %s (%s in all)", out, rep.elapsed.Round(time.Second))
	if p := rep.problems(); len(p) > 0 {
		return fmt.Errorf("parts of the suite did not run:\n  %s", strings.Join(p, "\n  "))
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
