// Command conns measures what client connections and cached tokens cost the
// tokenward binary (issue 15): the RSS of each of 10,000 keep-alive
// connections held at once, the latency of requests while they are held, and
// the RSS of 100,000 cached tokens, alone and with the connections held on
// top (what the soft memory limit, README "Memory", meets then).
//
//	cd bench && go run ./cmd/conns                 # builds ../cmd/tokenward
//	go run ./cmd/conns -bin /path/to/tokenward -conns 10000 -tokens 100000
//
// Tokens are Auth0-shaped, like bench/internal/fixture's, but signed with
// EdDSA: minting 100,000 takes seconds, not minutes, and a cache entry holds
// the claims, never the signature, so its size does not depend on the
// algorithm. The descriptor limit is raised to its hard limit; the program
// needs one descriptor per connection, as does the binary.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tokenward/tokenward/bench/internal/procs"
	"github.com/tokenward/tokenward/jwks/jwkstest"
)

const api = "https://api.bench.tokenward.example"

// settle is how long the connections are held before anything is measured:
// the binary's soft memory limit follows the connections open four times a
// second (README, "Memory"); what is measured is connections held, not
// their arrival.
const settle = time.Second

func main() {
	bin := flag.String("bin", "", "tokenward binary (default: built from ../cmd/tokenward)")
	conns := flag.Int("conns", 10000, "keep-alive connections held at once")
	tokens := flag.Int("tokens", 100000, "distinct tokens sent once each (0: skip that phase)")
	probes := flag.Int("probes", 2000, "requests timed, one after another on one connection, for each latency figure")
	hold := flag.Duration("hold", 5*time.Second, "how long the connections are held idle while the binary's CPU time is measured")
	flag.Parse()
	if err := run(*bin, *conns, *tokens, *probes, *hold); err != nil {
		fmt.Fprintln(os.Stderr, "conns:", err)
		os.Exit(1)
	}
}

func run(bin string, conns, tokens, probes int, hold time.Duration) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		if int(lim.Cur) < conns+256 {
			return fmt.Errorf("descriptor limit %d is below %d connections (raise the hard limit: ulimit -Hn)", lim.Cur, conns)
		}
	}
	if bin == "" {
		dir, err := os.MkdirTemp("", "conns-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "tokenward")
		build := exec.Command("go", "build", "-o", bin, "github.com/tokenward/tokenward/cmd/tokenward")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building tokenward: %w", err)
		}
	}
	iss := jwkstest.NewIssuerWithOptions(jwkstest.Options{Algorithm: "EdDSA"})
	defer iss.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	mint := func(i int) (string, error) {
		return iss.Mint(iss.Claims(api, map[string]any{
			"sub":         fmt.Sprintf("auth0|65f1c0ffee%014x", i),
			"aud":         []string{api, iss.URL() + "userinfo"},
			"azp":         "k3Xbq8VqS0tXf2kYpWm4hN7cR1dJ9eLu",
			"scope":       "openid profile read:contacts",
			"permissions": []string{"read:contacts"},
		}))
	}
	probeToken, err := mint(0)
	if err != nil {
		return err
	}
	env := []string{
		"TOKENWARD_ISSUERS=" + iss.URL(),
		"TOKENWARD_AUDIENCES=" + api,
		"TOKENWARD_ALGORITHMS=EdDSA",
		"TOKENWARD_UPSTREAM=" + up.URL,
		"TOKENWARD_LISTEN_ADDR=127.0.0.1:0",
		"TOKENWARD_ADMIN_ADDR=127.0.0.1:0",
		"TOKENWARD_MAX_CONNECTIONS=" + strconv.Itoa(conns+100),
	}
	fmt.Printf("tokenward %s; %d connections, %d tokens; Go raised the descriptor limit to %d\n\n", bin, conns, tokens, lim.Cur)

	// Phase 1: connections on a fresh binary.
	p, err := startBinary(bin, env)
	if err != nil {
		return err
	}
	idle := p.sample()
	quiet, err := latency(p.addr, probeToken, probes)
	if err != nil {
		p.stop()
		return err
	}
	before := p.sample()
	held, err := holdConns(p.addr, probeToken, conns)
	if err != nil {
		p.stop()
		return err
	}
	time.Sleep(settle)
	withConns := p.sample()
	loaded, err := latency(p.addr, probeToken, probes)
	if err != nil {
		p.stop()
		return err
	}
	probeGCs := p.sample().metric("go_gc_duration_seconds_count") - withConns.metric("go_gc_duration_seconds_count")
	quietGCs := before.metric("go_gc_duration_seconds_count") - idle.metric("go_gc_duration_seconds_count")
	idleCPU := p.cpuOver(hold)
	closeAll(held)
	p.stop()
	perConn := float64(withConns.rssKiB-before.rssKiB) * 1024 / float64(conns)
	perConnHeap := (withConns.metric("go_memstats_heap_inuse_bytes") + withConns.metric("go_memstats_stack_inuse_bytes") -
		before.metric("go_memstats_heap_inuse_bytes") - before.metric("go_memstats_stack_inuse_bytes")) / float64(conns)
	fmt.Printf("## %d keep-alive connections, fresh binary\n\n", conns)
	fmt.Printf("| measure | value |\n|---|--:|\n")
	fmt.Printf("| RSS idle / before / with the connections, MiB | %.1f / %.1f / %.1f |\n", mib(idle.rssKiB), mib(before.rssKiB), mib(withConns.rssKiB))
	fmt.Printf("| RSS per connection | %.1f KiB |\n", perConn/1024)
	fmt.Printf("| heap + stacks in use per connection | %.1f KiB |\n", perConnHeap/1024)
	fmt.Printf("| goroutines with the connections | %.0f |\n", withConns.metric("go_goroutines"))
	fmt.Printf("| latency without / with them held, p50 µs | %.0f / %.0f |\n", quiet.p(50), loaded.p(50))
	fmt.Printf("| latency without / with them held, p99 µs | %.0f / %.0f |\n", quiet.p(99), loaded.p(99))
	fmt.Printf("| collections during the %d requests timed, without / with them held | %.0f / %.0f |\n", probes, quietGCs, probeGCs)
	fmt.Printf("| CPU of the binary while they are held idle | %.3f cores |\n", idleCPU)
	fmt.Printf("| soft memory limit | %.1f MiB |\n\n", withConns.metric("go_gc_gomemlimit_bytes")/(1<<20))

	if tokens == 0 {
		return nil
	}
	// Phase 2: the cache filled, then the connections on top.
	fmt.Fprintf(os.Stderr, "minting %d tokens\n", tokens)
	toks := make([]string, tokens)
	var next atomic.Int64
	var mintErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= tokens; i = int(next.Add(1)) {
				t, err := mint(i)
				if err != nil {
					mintErr.Store(&err)
					return
				}
				toks[i-1] = t
			}
		})
	}
	wg.Wait()
	if e := mintErr.Load(); e != nil {
		return *e
	}
	if p, err = startBinary(bin, env); err != nil {
		return err
	}
	defer p.stop()
	start := p.sample()
	t0 := time.Now()
	refused, err := sendOnce(p.addr, toks)
	if err != nil {
		return err
	}
	sent := time.Since(t0)
	filled := p.sample()
	if held, err = holdConns(p.addr, probeToken, conns); err != nil {
		return err
	}
	time.Sleep(settle)
	both := p.sample()
	loaded, err = latency(p.addr, probeToken, probes)
	if err != nil {
		return err
	}
	probeGCs = p.sample().metric("go_gc_duration_seconds_count") - both.metric("go_gc_duration_seconds_count")
	gcBefore := p.sample().metric("go_gc_duration_seconds_count")
	cpu := p.cpuOver(hold)
	gcs := p.sample().metric("go_gc_duration_seconds_count") - gcBefore
	closeAll(held)
	fmt.Printf("## %d distinct tokens sent once each (%d refused, %s), then %d connections held\n\n", tokens, refused, sent.Round(time.Second), conns)
	fmt.Printf("| measure | value |\n|---|--:|\n")
	fmt.Printf("| RSS at start / after the tokens (peak) / with the connections too, MiB | %.1f / %.1f (%.1f) / %.1f |\n",
		mib(start.rssKiB), mib(filled.rssKiB), mib(filled.hwmKiB), mib(both.rssKiB))
	fmt.Printf("| cache entries, estimated bytes per entry | %.0f, %.0f |\n", filled.metric("tokenward_token_cache_entries"),
		filled.metric("tokenward_token_cache_bytes")/filled.metric("tokenward_token_cache_entries"))
	fmt.Printf("| heap in use after the tokens / with the connections, MiB | %.1f / %.1f |\n",
		filled.metric("go_memstats_heap_inuse_bytes")/(1<<20), both.metric("go_memstats_heap_inuse_bytes")/(1<<20))
	fmt.Printf("| soft memory limit | %.1f MiB |\n", both.metric("go_gc_gomemlimit_bytes")/(1<<20))
	fmt.Printf("| latency with the connections held, p50 / p99 µs (collections meanwhile) | %.0f / %.0f (%.0f) |\n", loaded.p(50), loaded.p(99), probeGCs)
	fmt.Printf("| CPU of the binary, connections held idle for %s | %.3f cores, %.0f collections |\n", hold, cpu, gcs)
	return nil
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// proc is a running binary.
type proc struct {
	cmd   *exec.Cmd
	addr  string // main listener
	admin string
	done  chan struct{}
}

func startBinary(bin string, env []string) (*proc, error) {
	cmd := exec.Command(bin)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	found := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var l struct{ Msg, Server, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "listening" {
				continue
			}
			if l.Server == "admin" {
				p.admin = l.Addr
			} else {
				p.addr = l.Addr
			}
			if p.addr != "" && p.admin != "" {
				found <- nil
				break
			}
		}
		io.Copy(io.Discard, stderr) // the lines of refused requests, if any
		close(p.done)
	}()
	select {
	case <-found:
		return p, nil
	case <-p.done:
		cmd.Wait()
		return nil, errors.New("tokenward exited before listening")
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, errors.New("tokenward did not listen within 30s")
	}
}

func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
}

// sample is the binary's memory and metrics at one moment.
type sample struct {
	rssKiB, hwmKiB int64
	metrics        map[string]float64
}

func (s sample) metric(name string) float64 { return s.metrics[name] }

func (p *proc) sample() sample {
	st := procs.Status(p.cmd.Process.Pid)
	s := sample{rssKiB: st["VmRSS"], hwmKiB: st["VmHWM"]}
	s.metrics = map[string]float64{}
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		return s
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(body), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			s.metrics[name] = f
		}
	}
	return s
}

// cpuOver returns the cores the binary used over d (user + system).
func (p *proc) cpuOver(d time.Duration) float64 {
	ticks := func() float64 {
		n, _ := procs.CPUTicks(p.cmd.Process.Pid)
		return float64(n)
	}
	t0, c0 := time.Now(), ticks()
	time.Sleep(d)
	return (ticks() - c0) / procs.TicksPerSecond / time.Since(t0).Seconds()
}

func request(token string) []byte {
	return []byte("GET /api/contacts HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer " + token + "\r\n\r\n")
}

// roundTrip sends req on c and reads the answer; the status is returned.
func roundTrip(c net.Conn, br *bufio.Reader, req []byte) (int, error) {
	if _, err := c.Write(req); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// holdConns opens n connections, has one request answered on each, and
// returns them open.
func holdConns(addr, token string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	req := request(token)
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && first.Load() == nil; i = int(next.Add(1) - 1) {
				c, err := net.Dial("tcp", addr)
				if err == nil {
					var status int
					if status, err = roundTrip(c, bufio.NewReaderSize(c, 512), req); err == nil && status != http.StatusOK {
						err = fmt.Errorf("status %d", status)
					}
				}
				if err != nil {
					err = fmt.Errorf("connection %d: %w", i, err)
					first.CompareAndSwap(nil, &err)
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		closeAll(conns)
		return nil, *e
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// timings are request latencies in microseconds, sorted.
type timings []float64

func (t timings) p(q float64) float64 {
	if len(t) == 0 {
		return 0
	}
	return t[min(len(t)-1, int(float64(len(t))*q/100))]
}

// latency times n requests one after another on one new connection.
func latency(addr, token string, n int) (timings, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := request(token)
	t := make(timings, 0, n)
	for range n {
		t0 := time.Now()
		status, err := roundTrip(c, br, req)
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("status %d", status)
		}
		t = append(t, float64(time.Since(t0).Microseconds()))
	}
	slices.Sort(t)
	return t, nil
}

// sendOnce sends each token once over 32 connections and counts the
// answers other than 200.
func sendOnce(addr string, toks []string) (refused int64, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var next, bad atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				first.CompareAndSwap(nil, &err)
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for i := int(next.Add(1) - 1); i < len(toks) && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				status, err := roundTrip(c, br, request(toks[i]))
				if err != nil {
					first.CompareAndSwap(nil, &err)
					cancel()
					return
				}
				if status != http.StatusOK {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return bad.Load(), *e
	}
	return bad.Load(), nil
}
