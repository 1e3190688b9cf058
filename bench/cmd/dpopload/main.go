// Command dpopload measures what the shared DPoP replay store costs per
// request: it runs the tokenward binary in proxy mode with
// TOKENWARD_DPOP_REPLAY_STORE unset (memory) and then pointed at a
// redis-server it starts on loopback, sends the same load of DPoP requests
// (each with a fresh proof, made before the run) to each, in interleaved
// rounds, and prints the latency percentiles seen by the client. Bearer
// requests are measured too, as the floor.
//
//	cd bench && go run ./cmd/dpopload -requests 20000 -concurrency 1,16 -rounds 3
//
// Needs redis-server (apt-get install -y redis-server) and Go; builds
// ../cmd/tokenward itself. Everything it starts is stopped at the end.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tokenward/tokenward/jwks/jwkstest"
)

const audience = "https://api.example.com"

func main() {
	requests := flag.Int("requests", 20000, "measured requests per run")
	concurrencies := flag.String("concurrency", "1,16", "client connections, comma-separated: one run each")
	rounds := flag.Int("rounds", 3, "interleaved rounds of memory, redis and bearer runs")
	stores := flag.String("stores", "memory,redis", "replay stores to measure, comma-separated")
	flag.Parse()
	if err := run(*requests, *concurrencies, *rounds, strings.Split(*stores, ",")); err != nil {
		log.Fatal(err)
	}
}

// proc is a process started here, stopped by stop.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(name string, env []string, args ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if strings.HasSuffix(name, "tokenward") {
		cmd.Stderr = io.Discard // JSON logs; readiness is polled
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) stop() {
	p.cmd.Process.Kill()
	<-p.done
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitHTTP polls url until it answers 200.
func waitHTTP(url string, p *proc) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited", p.cmd.Path)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready", url)
}

// waitTCP polls addr until it accepts a connection.
func waitTCP(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s", addr)
}

func run(requests int, concurrencies string, rounds int, stores []string) error {
	redis, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server not found: apt-get install -y redis-server")
	}
	dir, err := os.MkdirTemp("", "dpopload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "tokenward")
	build := exec.Command("go", "build", "-o", bin, "./cmd/tokenward")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building tokenward: %w", err)
	}

	iss, err := jwkstest.Start(jwkstest.Options{})
	if err != nil {
		return err
	}
	defer iss.Close()
	upAddr, err := freeAddr()
	if err != nil {
		return err
	}
	up := &http.Server{Addr: upAddr, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok"))
	})}
	go up.ListenAndServe()
	defer up.Close()

	redisAddr, err := freeAddr()
	if err != nil {
		return err
	}
	_, redisPort, _ := net.SplitHostPort(redisAddr)
	rp, err := startProc(redis, nil, "--bind", "127.0.0.1", "--port", redisPort, "--save", "", "--appendonly", "no", "--dir", dir)
	if err != nil {
		return err
	}
	defer rp.stop()
	if err := waitTCP(redisAddr); err != nil {
		return err
	}

	key, err := jwkstest.NewProofKey("ES256")
	if err != nil {
		return err
	}
	dpopToken, err := iss.MintDPoP(iss.Claims(audience, nil), key)
	if err != nil {
		return err
	}
	bearerToken, err := iss.Mint(iss.Claims(audience, nil))
	if err != nil {
		return err
	}

	type target struct {
		name string
		url  string
		dpop bool
	}
	var targets []target
	for _, store := range stores {
		listen, err := freeAddr()
		if err != nil {
			return err
		}
		admin, err := freeAddr()
		if err != nil {
			return err
		}
		env := []string{
			"TOKENWARD_ISSUERS=" + iss.URL(), "TOKENWARD_AUDIENCES=" + audience,
			"TOKENWARD_UPSTREAM=http://" + upAddr, "TOKENWARD_LISTEN_ADDR=" + listen, "TOKENWARD_ADMIN_ADDR=" + admin,
			"TOKENWARD_PUBLIC_URL=https://api.example.com", "TOKENWARD_LOG_LEVEL=warn",
		}
		if store == "redis" {
			env = append(env, "TOKENWARD_DPOP_REPLAY_STORE=redis://"+redisAddr+"/0")
		}
		tp, err := startProc(bin, env)
		if err != nil {
			return err
		}
		defer tp.stop()
		if err := waitHTTP("http://"+admin+"/readyz", tp); err != nil {
			return err
		}
		targets = append(targets, target{"dpop/" + store, "http://" + listen + "/api/x", true})
		if store == "memory" {
			targets = append(targets, target{"bearer", "http://" + listen + "/api/x", false})
		}
	}

	var cs []int
	for f := range strings.SplitSeq(concurrencies, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("bad -concurrency %q", concurrencies)
		}
		cs = append(cs, n)
	}
	results := map[string][]time.Duration{}
	var order []string
	for _, c := range cs {
		for r := range rounds {
			for _, tg := range targets {
				// Proofs made just before the run: each is fresh (60 s window)
				// and used once.
				auth := make([][2]string, requests+requests/10)
				for i := range auth {
					if tg.dpop {
						p, err := key.Proof("GET", "https://api.example.com/api/x", dpopToken)
						if err != nil {
							return err
						}
						auth[i] = [2]string{"DPoP " + dpopToken, p}
					} else {
						auth[i] = [2]string{"Bearer " + bearerToken, ""}
					}
				}
				warm, measured := auth[:requests/10], auth[requests/10:]
				if _, err := load(tg.url, warm, c); err != nil {
					return err
				}
				lat, err := load(tg.url, measured, c)
				if err != nil {
					return fmt.Errorf("%s: %w", tg.name, err)
				}
				name := fmt.Sprintf("%s c=%d", tg.name, c)
				if r == 0 {
					order = append(order, name)
				}
				results[name] = append(results[name], lat...)
			}
		}
	}
	fmt.Printf("%d measured requests per run, %d rounds interleaved, GOMAXPROCS of tokenward: all cores\n\n", requests, rounds)
	fmt.Println("| run | requests | p50 | p90 | p99 |")
	fmt.Println("|---|---|---|---|---|")
	for _, name := range order {
		lat := results[name]
		slices.Sort(lat)
		q := func(f float64) time.Duration { return lat[int(f*float64(len(lat)-1))] }
		fmt.Printf("| %s | %d | %s | %s | %s |\n", name, len(lat), us(q(.5)), us(q(.9)), us(q(.99)))
	}
	return nil
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }

// load sends one request per element of auth over c connections and
// returns each one's latency. Any answer but 200 is an error: every proof is
// fresh and used once.
func load(url string, auth [][2]string, c int) ([]time.Duration, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	lat := make([]time.Duration, len(auth))
	next := make(chan int)
	errc := make(chan error, c)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range c {
		wg.Go(func() {
			for i := range next {
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				req.Header.Set("Authorization", auth[i][0])
				if auth[i][1] != "" {
					req.Header.Set("DPoP", auth[i][1])
				}
				start := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, bufio.NewReader(resp.Body))
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d (WWW-Authenticate %q)", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
					}
				}
				lat[i] = time.Since(start)
				if err != nil {
					select {
					case errc <- err:
					default:
					}
					cancel()
				}
			}
		})
	}
feed:
	for i := range auth {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	return lat, nil
}
