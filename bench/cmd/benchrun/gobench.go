package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenward/tokenward/bench/internal/procs"
)

// goBenchResult is one benchmark's medians over -count runs.
type goBenchResult struct {
	name     string
	nsPerOp  float64
	bPerOp   float64
	allocs   float64
	samples  []float64 // ns/op of every run
	hasAlloc bool
}

type goBenchReport struct {
	results   map[string]*goBenchResult
	raw       string    // the benchmark output
	foreign   []float64 // cores used by other processes during each run
	benchstat string    // benchstat's view of it, if benchstat is installed
}

// goBenchNames are the benchmarks in the order of the report.
var goBenchNames = []string{"FloorRSA", "TokenwardCold", "TokenwardCached", "GoJWTMiddlewareV2", "GolangJWTv5", "GolangJWTv5Typed"}

// runGoBench builds the benchmark binary and runs it, pinned like the
// servers of the HTTP benchmark.
func runGoBench(ctx context.Context, cfg *config, work string) (*goBenchReport, error) {
	rep := &goBenchReport{results: map[string]*goBenchResult{}}
	bin := filepath.Join(work, "bench.test")
	logf("go benchmarks: building")
	if _, err := runCmd(ctx, cfg.benchDir, nil, "go", "test", "-c", "-o", bin, "."); err != nil {
		return nil, err
	}
	// -count runs of the whole set rather than -test.count: the benchmarks
	// are interleaved, so that a burst of load from elsewhere on a shared
	// machine lands on all of them rather than on one.
	argv := []string{bin, "-test.run", "^$", "-test.bench", ".", "-test.benchmem",
		"-test.count", "1", "-test.benchtime", cfg.benchtime,
		"-test.cpu", strconv.Itoa(cfg.procs)}
	if cfg.pin {
		argv = append([]string{"taskset", "-c", cfg.sutCPUs}, argv...)
	}
	var buf bytes.Buffer
	for i := 1; i <= cfg.count; i++ {
		logf("go benchmarks: run %d/%d: %s", i, cfg.count, strings.Join(argv, " "))
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = cfg.benchDir
		cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
		cmd.Stderr = cmd.Stdout
		busy0, _ := procs.BusyTicks()
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
		}
		busy1, _ := procs.BusyTicks()
		ours := int64((cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()) * procs.TicksPerSecond / time.Second)
		rep.foreign = append(rep.foreign, max(0, float64(busy1-busy0-ours)/procs.TicksPerSecond/time.Since(start).Seconds()))
	}
	rep.raw = buf.String()
	raw := filepath.Join(cfg.resultsDir, "gobench.txt")
	if err := os.WriteFile(raw, buf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	if err := parseGoBench(rep, rep.raw); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("benchstat"); err == nil {
		out, err := runCmd(ctx, cfg.benchDir, nil, "benchstat", raw)
		if err == nil {
			rep.benchstat = string(out)
		}
	}
	return rep, nil
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) B/op)?(?:\s+([\d.]+) allocs/op)?`)

func parseGoBench(rep *goBenchReport, out string) error {
	samples := map[string][][3]float64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var v [3]float64
		for i := range v {
			v[i], _ = strconv.ParseFloat(m[2+i], 64)
		}
		samples[m[1]] = append(samples[m[1]], v)
		if m[3] != "" && rep.results[m[1]] == nil {
			rep.results[m[1]] = &goBenchResult{name: m[1], hasAlloc: true}
		}
	}
	for name, s := range samples {
		r := rep.results[name]
		if r == nil {
			r = &goBenchResult{name: name}
			rep.results[name] = r
		}
		col := func(i int) []float64 {
			var c []float64
			for _, v := range s {
				c = append(c, v[i])
			}
			return c
		}
		r.samples = col(0)
		r.nsPerOp = median(col(0))
		r.bPerOp = median(col(1))
		r.allocs = median(col(2))
	}
	if rep.results["FloorRSA"] == nil {
		return fmt.Errorf("no BenchmarkFloorRSA result in the output")
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func firstLines(b []byte, n int) string {
	lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
