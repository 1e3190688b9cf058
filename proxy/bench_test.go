package proxy_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
)

// The load benchmarks (issue #3): tokenward's Proxy against a bare
// httputil.ReverseProxy, both over real loopback HTTP, with the same client,
// the same upstream and the same requests. Compare their ns/op:
//
//	go test -run '^$' -bench 'Proxy' -benchmem ./proxy/
//
// Every request carries one of benchTokens distinct RS256 tokens, in
// rotation, so each is a full signature verification unless the validator
// caches verified tokens. Besides ns/op (wall time: throughput is
// 1e9/(ns/op) requests/s), cpu-ns/op is the process's CPU time per request,
// client and upstream included; the difference between the two benchmarks is
// tokenward's cost.
const (
	benchTokens      = 300
	benchConcurrency = 32 // requests in flight, as bench/run.sh runs wrk
)

// benchUpstream answers like a small JSON API.
func benchUpstream(b *testing.B) *httptest.Server {
	body := []byte(`{"contacts":[{"id":1,"name":"Ada"},{"id":2,"name":"Grace"}]}` + "\n")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	b.Cleanup(up.Close)
	return up
}

// benchTransport is tuned for one local peer: enough idle connections that
// none is ever closed under the benchmark's concurrency. The bare proxy uses
// it towards the upstream (the same settings as tokenward's own transport),
// and the client uses it towards either proxy.
func benchTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// runLoad sends b.N GETs to front, benchConcurrency at a time, each with the
// next of tokens, and fails unless every answer is 200.
func runLoad(b *testing.B, front string, tokens []string) {
	tr := benchTransport()
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	target := front + "/api/contacts/"
	var next, failed atomic.Int64
	var firstErr atomic.Value
	b.SetParallelism(max(1, benchConcurrency/max(1, runtime.GOMAXPROCS(0))))
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, target, nil)
			if tokens != nil {
				req.Header.Set("Authorization", "Bearer "+tokens[next.Add(1)%int64(len(tokens))])
			}
			resp, err := client.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		}
	})
	b.StopTimer()
	// CPU time per request (client, proxy and upstream together: all run in
	// this process) is steadier than ns/op on a shared machine.
	if cpu1, ok := processCPU(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed; first: %v", n, b.N, firstErr.Load())
	}
}

// benchSetup mints n distinct valid tokens, one subject each, and
// configures a proxy like the binary's default (subject in X-Auth-Subject)
// with the test rules and a validator tuned by opts.
func benchSetup(b *testing.B, n int, opts middleware.ValidatorOptions) ([]string, proxy.Config) {
	iss := newIssuer(b)
	v, err := middleware.NewValidator([]middleware.Issuer{{URL: iss.URL(), Keys: staticKeys(b, iss)}}, []string{audience}, opts)
	if err != nil {
		b.Fatal(err)
	}
	cfg := proxy.Config{
		Validator:    v,
		Rules:        mustRules(b, testRules),
		ClaimHeaders: []proxy.ClaimHeader{{Claim: "sub", Header: "X-Auth-Subject"}},
	}
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = mint(b, iss, map[string]any{"sub": fmt.Sprintf("auth0|user-%d", i), "scope": "api read:contacts"})
	}
	return tokens, cfg
}

// BenchmarkProxy: tokenward's Proxy (validation, rules, identity header) in
// front of the upstream; every request verifies a signature.
func BenchmarkProxy(b *testing.B) {
	tokens, cfg := benchSetup(b, benchTokens, middleware.ValidatorOptions{})
	up := benchUpstream(b)
	front := startProxy(b, up.URL, cfg, proxy.UpstreamOptions{})
	runLoad(b, front.URL, tokens)
}

// BenchmarkProxyCached is BenchmarkProxy with the validator's verified-token
// cache: after the first round of the rotation no request verifies a
// signature.
func BenchmarkProxyCached(b *testing.B) {
	tokens, cfg := benchSetup(b, benchTokens, middleware.ValidatorOptions{CacheSize: 4 * benchTokens})
	up := benchUpstream(b)
	front := startProxy(b, up.URL, cfg, proxy.UpstreamOptions{})
	runLoad(b, front.URL, tokens)
}

// BenchmarkBareReverseProxy: the same requests through httputil.ReverseProxy
// alone, set up as tokenward sets up its own (Rewrite, Host kept,
// X-Forwarded-*, a copy-buffer pool): the cost of proxying, to compare
// BenchmarkProxy with.
func BenchmarkBareReverseProxy(b *testing.B) {
	tokens, _ := benchSetup(b, benchTokens, middleware.ValidatorOptions{})
	up := benchUpstream(b)
	target, _ := url.Parse(up.URL)
	tr := benchTransport()
	b.Cleanup(tr.CloseIdleConnections)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:  tr,
		BufferPool: benchBuffers{}, // as tokenward has: without it each request allocates 32 KiB
	}
	front := httptest.NewServer(rp)
	b.Cleanup(front.Close)
	runLoad(b, front.URL, tokens)
}

// benchBuffers lends the bare proxy its copy buffers, as tokenward's pool does.
type benchBuffers struct{}

var benchBufferPool = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (benchBuffers) Get() []byte  { return *(benchBufferPool.Get().(*[]byte)) }
func (benchBuffers) Put(b []byte) { benchBufferPool.Put(&b) }

// BenchmarkProxyForwardAuthCached is forward-auth's whole answer in process
// (no network), with a cached token: the original request rebuilt from the
// gateway's headers, the normalization contract, the rules, the decision and
// the identity headers.
func BenchmarkProxyForwardAuthCached(b *testing.B) {
	tokens, cfg := benchSetup(b, 1, middleware.ValidatorOptions{CacheSize: 16})
	fa, err := proxy.NewForwardAuth(cfg)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/auth", nil)
	r.Header.Set("Authorization", "Bearer "+tokens[0])
	r.Header.Set("X-Forwarded-Method", http.MethodGet)
	r.Header.Set("X-Forwarded-Uri", "/api/contacts/")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		fa.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}
