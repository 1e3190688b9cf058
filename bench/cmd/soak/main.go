// Command soak runs the tokenward binary for a long time under a constant,
// realistic load while faults are injected, and asserts that it stays
// correct and bounded (issue 15):
//
//   - the binary in front of a real upstream that records what reached it,
//     a test issuer (jwks/jwkstest) with ES256 keys, discovery, JWKS and
//     introspection, a deny-list file and a rules file;
//   - first the capacity (closed loop, the same mix), then a constant rate
//     at a share of it (-share, 0.6), latency measured from each request's
//     scheduled time (internal/loadgen);
//   - a mix of many distinct valid tokens (-tokens, over a sliding window so
//     the cache evicts), 10% invalid tokens of five kinds, public routes,
//     routes without the scope, slow and streamed answers, opaque tokens;
//   - faults at fixed shares of the run: a new key published and used, the
//     issuer down, the issuer answering garbage, the upstream restarted, the
//     deny list updated (SIGHUP), the rules file updated (polled), a burst
//     of made-up opaque tokens, the old key retired.
//
// It prints a report and writes it to results/soak-latest.md, and exits 1 if
// an assertion failed. Run it from the bench directory:
//
//	go run ./cmd/soak                    # 20 minutes, 200,000 tokens
//	go run ./cmd/soak -duration 60s      # the CI form
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

type config struct {
	duration    time.Duration
	share       float64
	tokens      int
	cacheSize   int
	workers     int
	capDuration time.Duration
	minRefresh  time.Duration
	out         string
	keep        bool

	benchDir, repoDir string
	pin               bool
	sutCPUs, loadCPUs string
}

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func parseConfig(args []string) (*config, error) {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	env := func(name, def string) string { return cmp.Or(os.Getenv(name), def) }
	duration := fs.Duration("duration", mustDuration(env("SOAK_DURATION", "20m")), "length of the constant-rate run (env SOAK_DURATION)")
	share := fs.Float64("share", mustFloat(env("SOAK_SHARE", "0.6")), "the rate, as a share of the capacity measured first (env SOAK_SHARE)")
	tokens := fs.Int("tokens", mustInt(env("SOAK_TOKENS", "0")), "distinct valid tokens (env SOAK_TOKENS; 0: 200,000 for 20 minutes, in proportion for shorter runs, at least 10,000)")
	cacheSize := fs.Int("cache-size", 0, "TOKENWARD_CACHE_SIZE (0: a tenth of -tokens, so that the cache evicts)")
	workers := fs.Int("workers", mustInt(env("SOAK_WORKERS", "64")), "connections of the load generator (env SOAK_WORKERS)")
	capDuration := fs.Duration("capacity-duration", 0, "length of the capacity measurement (0: 10s, 5s for runs under 5 minutes)")
	minRefresh := fs.Duration("min-refresh", 0, "TOKENWARD_JWKS_MIN_REFRESH_INTERVAL (0: the default 10s, 5s for runs under 5 minutes)")
	out := fs.String("out", "results/soak-latest.md", "where the report is written")
	keep := fs.Bool("keep", false, "keep the work directory (binary, logs, files)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	short := *duration < 5*time.Minute
	c := &config{
		duration: *duration, share: *share, tokens: *tokens, cacheSize: *cacheSize, workers: *workers,
		capDuration: *capDuration, minRefresh: *minRefresh, out: *out, keep: *keep,
	}
	var errs []error
	if c.duration < 30*time.Second {
		errs = append(errs, errors.New("-duration: at least 30s (the faults need room)"))
	}
	if c.share <= 0 || c.share > 1 {
		errs = append(errs, errors.New("-share: in (0, 1]"))
	}
	if c.tokens == 0 {
		c.tokens = max(10000, int(200000*c.duration.Seconds()/(20*time.Minute).Seconds()))
	}
	if c.tokens < 2000 {
		errs = append(errs, errors.New("-tokens: at least 2000"))
	}
	if c.cacheSize == 0 {
		c.cacheSize = c.tokens / 10
	}
	if c.workers < 1 {
		errs = append(errs, errors.New("-workers: at least 1"))
	}
	if c.capDuration == 0 {
		c.capDuration = map[bool]time.Duration{true: 5 * time.Second, false: 10 * time.Second}[short]
	}
	if c.minRefresh == 0 {
		c.minRefresh = map[bool]time.Duration{true: 5 * time.Second, false: 10 * time.Second}[short]
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(wd, "cmd", "soak")); err != nil {
		errs = append(errs, errors.New("run me from the bench directory: cd bench && go run ./cmd/soak"))
	}
	c.benchDir, c.repoDir = wd, filepath.Dir(wd)
	if !filepath.IsAbs(c.out) {
		c.out = filepath.Join(wd, c.out)
	}
	if _, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
		c.pin, c.sutCPUs, c.loadCPUs = true, "0", "1-"+strconv.Itoa(runtime.NumCPU()-1)
		if runtime.NumCPU() == 2 {
			c.loadCPUs = "1"
		}
	}
	return c, errors.Join(errs...)
}

func mustDuration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: %q: not a duration\n", s)
		os.Exit(2)
	}
	return d
}

func mustFloat(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: %q: not a number\n", s)
		os.Exit(2)
	}
	return v
}

func mustInt(s string) int {
	v, err := strconv.Atoi(s)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: %q: not an integer\n", s)
		os.Exit(2)
	}
	return v
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
