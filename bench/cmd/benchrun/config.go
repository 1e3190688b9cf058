package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is the run's settings, from BENCH_* environment variables.
type config struct {
	smoke      bool
	fixedRate  bool   // the fixed-rate latency runner instead of the suite
	frWorkers  int    // connections of the fixed-rate generator
	benchDir   string // this module's directory
	repoDir    string // the main module's directory
	resultsDir string

	goBench   bool
	count     int    // -count of the Go benchmarks
	benchtime string // -benchtime of the Go benchmarks

	http        bool
	servers     map[string]bool // the HTTP targets measured, by key: a…e
	duration    time.Duration   // of one measured wrk run
	warmup      time.Duration   // of the unmeasured wrk run before it
	rounds      int
	connections int
	threads     int // wrk threads
	tokens      int // distinct tokens wrk rotates through
	cacheSize   int // TOKENWARD_CACHE_SIZE of (c)
	memTokens   int // distinct tokens of the memory phase; 0 skips it

	procs    int    // GOMAXPROCS of the Go servers, nbthread of HAProxy
	pin      bool   // pin with taskset
	sutCPUs  string // cores of the process measured
	loadCPUs string // cores of wrk and the backend upstream
	nproc    int
}

// loadConfig reads the knobs. Every one has a default; -smoke changes the
// defaults so that the whole run takes less than a minute.
func loadConfig(smoke, fixedRate bool) (*config, error) {
	if v := os.Getenv("BENCH_SMOKE"); v != "" && v != "0" {
		smoke = true
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	if !isBenchModule(wd) {
		return nil, errors.New("run me from the bench directory (bench/run.sh does)")
	}
	c := &config{
		smoke:      smoke,
		fixedRate:  fixedRate,
		benchDir:   wd,
		repoDir:    filepath.Dir(wd),
		resultsDir: filepath.Join(wd, "results"),
		nproc:      runtime.NumCPU(),
	}
	var errs []error
	num := func(name string, def int, min int) int {
		v, err := envInt(name, def)
		if err == nil && v < min {
			err = fmt.Errorf("%s=%d: must be at least %d", name, v, min)
		}
		errs = append(errs, err)
		return v
	}
	dur := func(name string, def time.Duration) time.Duration {
		v, err := envDuration(name, def)
		errs = append(errs, err)
		return v
	}
	c.goBench = envBool("BENCH_GO", true)
	c.count = num("BENCH_COUNT", byMode(smoke, 5, 1), 1)
	c.benchtime = cmp.Or(os.Getenv("BENCH_BENCHTIME"), byMode(smoke, "1s", "50x"))
	c.http = envBool("BENCH_HTTP", true)
	c.servers, err = envServers("BENCH_SERVERS")
	errs = append(errs, err)
	if fixedRate {
		// The three systems; the bare proxy also gives the capacity.
		c.goBench = false
		if os.Getenv("BENCH_SERVERS") == "" {
			c.servers = map[string]bool{"b": true, "c": true, "e": true}
		} else if !c.servers["b"] {
			errs = append(errs, errors.New("BENCH_SERVERS: the fixed-rate runner needs b, the bare proxy, for the capacity"))
		}
	}
	c.frWorkers = num("BENCH_FR_CONNECTIONS", 64, 1)
	c.duration = dur("BENCH_DURATION", byMode(smoke, 10*time.Second, 2*time.Second))
	c.warmup = dur("BENCH_WARMUP", byMode(smoke, 2*time.Second, time.Second))
	c.rounds = num("BENCH_ROUNDS", byMode(smoke, 3, 1), 1)
	c.connections = num("BENCH_CONNECTIONS", 32, 1)
	c.threads = num("BENCH_THREADS", 2, 1)
	c.tokens = num("BENCH_TOKENS", 300, 1)
	c.cacheSize = num("BENCH_CACHE_SIZE", 100000, 1)
	c.memTokens = num("BENCH_MEM_TOKENS", 0, 0)
	if c.threads > c.connections {
		errs = append(errs, fmt.Errorf("BENCH_THREADS=%d exceeds BENCH_CONNECTIONS=%d", c.threads, c.connections))
	}
	if c.duration < time.Second {
		errs = append(errs, errors.New("BENCH_DURATION must be at least 1s (wrk counts whole seconds)"))
	}

	_, tasksetErr := exec.LookPath("taskset")
	canPin := tasksetErr == nil && c.nproc >= 2
	c.pin = envBool("BENCH_PIN", canPin)
	if c.pin && !canPin {
		errs = append(errs, errors.New("BENCH_PIN=1 needs taskset (util-linux) and at least 2 cores"))
	}
	defProcs := c.nproc
	if c.pin {
		defProcs = 1
	}
	c.procs = num("BENCH_PROCS", defProcs, 1)
	if c.pin {
		if c.procs >= c.nproc {
			errs = append(errs, fmt.Errorf("BENCH_PROCS=%d leaves no core for the load generator on %d cores; lower it or set BENCH_PIN=0", c.procs, c.nproc))
		}
		c.sutCPUs = cpuRange(0, c.procs-1)
		c.loadCPUs = cpuRange(c.procs, c.nproc-1)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *config) summary() string {
	mode := "full"
	if c.smoke {
		mode = "smoke"
	}
	s := fmt.Sprintf("%s run; go benchmarks %v (count %d, benchtime %s); http %v (servers %s, %d rounds of %s + %s warm-up, %d connections, %d wrk threads, %d tokens); GOMAXPROCS/nbthread %d",
		mode, c.goBench, c.count, c.benchtime, c.http, c.serverList(), c.rounds, c.duration, c.warmup, c.connections, c.threads, c.tokens, c.procs)
	if c.pin {
		s += fmt.Sprintf("; pinned: servers measured on cores %s, wrk and the upstream on %s", c.sutCPUs, c.loadCPUs)
	} else {
		s += "; not pinned"
	}
	return s
}

// serverList is the selected servers' keys, in order.
func (c *config) serverList() string {
	var keys []string
	for k := range strings.SplitSeq(allServers, ",") {
		if c.servers[k] {
			keys = append(keys, k)
		}
	}
	return strings.Join(keys, ",")
}

func isBenchModule(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	return sc.Scan() && strings.TrimSpace(sc.Text()) == "module github.com/tokenward/tokenward/bench"
}

func cpuRange(lo, hi int) string {
	if lo == hi {
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

func envInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def, fmt.Errorf("%s=%q: not an integer", name, v)
	}
	return n, nil
}

func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return def, fmt.Errorf("%s=%q: not a positive duration such as 10s", name, v)
	}
	return d, nil
}

// allServers are the keys of the HTTP targets, in the order they run.
const allServers = "a,b,c,d,e"

// envServers reads a comma-separated subset of allServers; unset means all.
func envServers(name string) (map[string]bool, error) {
	v := cmp.Or(os.Getenv(name), allServers)
	all := strings.Split(allServers, ",")
	set := map[string]bool{}
	for k := range strings.SplitSeq(v, ",") {
		k = strings.TrimSpace(k)
		if !slices.Contains(all, k) {
			return nil, fmt.Errorf("%s=%q: name servers among %s", name, v, allServers)
		}
		set[k] = true
	}
	return set, nil
}

func envBool(name string, def bool) bool {
	switch strings.ToLower(os.Getenv(name)) {
	case "":
		return def
	case "0", "false", "no", "off":
		return false
	}
	return true
}

// byMode is the default of a full run, or of a smoke run.
func byMode[T any](smoke bool, full, short T) T {
	if smoke {
		return short
	}
	return full
}
