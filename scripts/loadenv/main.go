// Command loadenv sets up what scripts/load.sh measures, on loopback only:
// a jwkstest issuer, distinct tokens it minted (one per line in DIR/tokens.txt),
// an upstream API, and two proxies in front of it, each in its own process:
// the tokenward binary and a bare httputil.ReverseProxy. When both answer, it
// writes their URLs to DIR/env.sh and waits for SIGINT or SIGTERM, then stops
// everything it started.
//
//	loadenv -dir DIR -tokenward ./tokenward [-tokens 300]
//
// Without -tokenward, tokenward's Proxy runs in a child process of loadenv
// itself (for when cmd/tokenward does not build); load.sh says so.
//
// loadenv runs itself as the proxies' processes: "loadenv bare UPSTREAM" and
// "loadenv inprocess ISSUER AUDIENCE SCOPE UPSTREAM" listen on a free loopback
// port, print "listening ADDR", and serve until killed.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/jwks/jwkstest"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
	"github.com/tokenward/tokenward/scopes"
)

const (
	audience = "https://api.example.com"
	scope    = "read:contacts"
	// loadPath is what load.lua requests.
	loadPath = "/api/contacts/"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("loadenv: ")
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "bare":
			serveChild(bareProxy(os.Args[2]))
			return
		case "inprocess":
			h, err := inprocessProxy(os.Args[2], os.Args[3], os.Args[4], os.Args[5])
			if err != nil {
				log.Fatal(err)
			}
			serveChild(h)
			return
		}
	}
	dir := flag.String("dir", "", "directory for tokens.txt and env.sh (required)")
	bin := flag.String("tokenward", "", "tokenward binary; empty runs tokenward's Proxy in a child of loadenv")
	n := flag.Int("tokens", 300, "distinct tokens to mint")
	flag.Parse()
	if *dir == "" || *n < 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *dir, *bin, *n); err != nil {
		log.Fatal(err)
	}
}

// children are the processes loadenv started; stopAll ends them.
type children struct {
	mu    sync.Mutex // guards procs
	procs []*exec.Cmd
}

func (c *children) add(cmd *exec.Cmd) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.procs = append(c.procs, cmd)
}

func (c *children) stopAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cmd := range c.procs {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, cmd := range c.procs {
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}

func run(ctx context.Context, dir, bin string, n int) error {
	iss, err := jwkstest.Start(jwkstest.Options{})
	if err != nil {
		return err
	}
	defer iss.Close()

	tokens := make([]string, n)
	for i := range tokens {
		tokens[i], err = iss.Mint(iss.Claims(audience, map[string]any{
			"sub":   fmt.Sprintf("auth0|load-user-%d", i),
			"scope": scope,
		}))
		if err != nil {
			return err
		}
	}
	tokensFile := filepath.Join(dir, "tokens.txt")
	if err := os.WriteFile(tokensFile, []byte(strings.Join(tokens, "\n")+"\n"), 0o600); err != nil {
		return err
	}

	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	body := []byte(`{"contacts":[{"id":1,"name":"Ada"},{"id":2,"name":"Grace"}]}` + "\n")
	up := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go up.Serve(upLn)
	defer up.Close()
	upstream := "http://" + upLn.Addr().String()

	var kids children
	defer kids.stopAll()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bareAddr, err := startChild(ctx, &kids, exec.Command(self, "bare", upstream))
	if err != nil {
		return fmt.Errorf("bare proxy: %w", err)
	}
	var twAddr, mode string
	if bin != "" {
		mode = "the tokenward binary"
		twAddr, err = startTokenward(ctx, &kids, bin, iss.URL(), upstream, dir)
	} else {
		mode = "in-process fallback (proxy.New in a child of loadenv), NOT the binary"
		twAddr, err = startChild(ctx, &kids, exec.Command(self, "inprocess", iss.URL(), audience, scope, upstream))
	}
	if err != nil {
		return fmt.Errorf("tokenward: %w", err)
	}

	// Both must answer 200 with a token; tokenward must refuse without one.
	client := &http.Client{Timeout: 10 * time.Second}
	for _, c := range []struct {
		addr, token string
		want        int
	}{
		{bareAddr, tokens[0], 200},
		{twAddr, tokens[0], 200},
		{twAddr, tokens[n-1], 200},
		{twAddr, "", 401},
	} {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+c.addr+loadPath, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("check of %s: %w", c.addr, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			return fmt.Errorf("check of %s: status %d, want %d", c.addr, resp.StatusCode, c.want)
		}
	}

	env := fmt.Sprintf("BARE_URL=http://%s\nTOKENWARD_URL=http://%s\nTOKENS_FILE=%s\nLOAD_PATH=%s\nTOKENWARD_RUN=%q\n",
		bareAddr, twAddr, tokensFile, loadPath, mode)
	// Written whole then renamed, so load.sh never reads half of it.
	tmp := filepath.Join(dir, "env.sh.tmp")
	if err := os.WriteFile(tmp, []byte(env), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "env.sh")); err != nil {
		return err
	}
	log.Printf("ready: bare %s, tokenward %s (%s)", bareAddr, twAddr, mode)
	<-ctx.Done()
	return nil
}

// startChild starts a "bare" or "inprocess" child and returns the address it
// printed.
func startChild(ctx context.Context, kids *children, cmd *exec.Cmd) (string, error) {
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	kids.add(cmd)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				addr <- a
			}
		}
		close(addr)
	}()
	return waitAddr(ctx, addr)
}

func waitAddr(ctx context.Context, addr <-chan string) (string, error) {
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case a, ok := <-addr:
		if !ok {
			return "", errors.New("exited before listening")
		}
		return a, nil
	case <-t.C:
		return "", errors.New("not listening after 30s")
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// startTokenward runs the binary on free loopback ports, finds them in its
// log, and waits until /readyz says its keys are loaded.
func startTokenward(ctx context.Context, kids *children, bin, issuer, upstream, dir string) (string, error) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"TOKENWARD_ISSUERS="+issuer,
		"TOKENWARD_AUDIENCES="+audience,
		"TOKENWARD_REQUIRED_SCOPES="+scope,
		"TOKENWARD_UPSTREAM="+upstream,
		"TOKENWARD_LISTEN_ADDR=127.0.0.1:0",
		"TOKENWARD_ADMIN_ADDR=127.0.0.1:0",
		"TOKENWARD_LOG_FORMAT=json",
		"TOKENWARD_LOG_LEVEL=info",
		"TOKENWARD_SHUTDOWN_GRACE=2s",
	)
	logFile, err := os.Create(filepath.Join(dir, "tokenward.log"))
	if err != nil {
		return "", err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	kids.add(cmd)
	proxyAddr, adminAddr := make(chan string, 1), make(chan string, 1)
	go func() {
		defer logFile.Close()
		defer close(proxyAddr)
		defer close(adminAddr)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(logFile, sc.Text())
			var line struct{ Msg, Server, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "listening" {
				continue
			}
			if line.Server == "admin" {
				adminAddr <- line.Addr
			} else {
				proxyAddr <- line.Addr
			}
		}
	}()
	addr, err := waitAddr(ctx, proxyAddr)
	if err != nil {
		return "", fmt.Errorf("%w (see %s)", err, logFile.Name())
	}
	admin, err := waitAddr(ctx, adminAddr)
	if err != nil {
		return "", err
	}
	// The issuer answers at once; bounded polling of /readyz.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return addr, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("not ready after 30s (see %s)", logFile.Name())
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// serveChild serves h on a free loopback port, announced on stdout, until
// SIGTERM or SIGINT.
func serveChild(h http.Handler) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := proxy.NewServer(ln.Addr().String(), h)
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt, syscall.SIGTERM)
		<-c
		srv.Close()
	}()
	fmt.Printf("listening %s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// bareProxy is httputil.ReverseProxy set up as tokenward sets up its own —
// Rewrite, Host kept, X-Forwarded-*, a transport tuned for one local
// upstream, a copy-buffer pool — with no validation.
func bareProxy(upstream string) http.Handler {
	target, err := url.Parse(upstream)
	if err != nil {
		log.Fatal(err)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   1024,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
		},
		BufferPool: bufferPool{},
		ErrorLog:   log.New(io.Discard, "", 0),
	}
}

type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// inprocessProxy is tokenward's Proxy configured as the binary would be by
// the same variables startTokenward sets.
func inprocessProxy(issuer, aud, scope, upstream string) (http.Handler, error) {
	keys, err := jwks.NewRegistry([]string{issuer}, jwks.RegistryOptions{})
	if err != nil {
		return nil, err
	}
	set, _ := keys.Set(issuer)
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: issuer, Keys: set}}, []string{aud}, middleware.ValidatorOptions{})
	if err != nil {
		return nil, err
	}
	rules, err := proxy.NewRules(nil, scopes.All(scope))
	if err != nil {
		return nil, err
	}
	claims, err := proxy.ParseClaimHeaders("sub=X-Auth-Subject")
	if err != nil {
		return nil, err
	}
	return proxy.New(upstream, proxy.Config{Validator: v, Rules: rules, ClaimHeaders: claims}, proxy.UpstreamOptions{})
}
