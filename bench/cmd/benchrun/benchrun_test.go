package main

import (
	"strings"
	"testing"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
BenchmarkFloorRSA         	   20000	     50000 ns/op	    1376 B/op	       9 allocs/op
BenchmarkTokenwardCached-2	 1000000	       412.5 ns/op	     224 B/op	       1 allocs/op
BenchmarkFloorRSA         	   20000	     52000 ns/op	    1376 B/op	       9 allocs/op
BenchmarkFloorRSA         	   20000	     90000 ns/op	    1376 B/op	       9 allocs/op
PASS
`
	rep := &goBenchReport{results: map[string]*goBenchResult{}}
	if err := parseGoBench(rep, out); err != nil {
		t.Fatal(err)
	}
	f := rep.results["FloorRSA"]
	if f.nsPerOp != 52000 || f.bPerOp != 1376 || f.allocs != 9 || len(f.samples) != 3 {
		t.Errorf("FloorRSA = %+v, want the median 52000 ns, 1376 B, 9 allocs of 3 samples", f)
	}
	c := rep.results["TokenwardCached"]
	if c == nil || c.nsPerOp != 412.5 || c.allocs != 1 {
		t.Errorf("TokenwardCached = %+v, want 412.5 ns and 1 alloc (the -2 suffix dropped)", c)
	}
	if err := parseGoBench(&goBenchReport{results: map[string]*goBenchResult{}}, "PASS\n"); err == nil {
		t.Error("no error for an output without the floor")
	}
}

func TestParseWrk(t *testing.T) {
	out := []byte("Running 2s test @ http://127.0.0.1:1/api/contacts\n" +
		`WRKRESULT {"requests":1200,"duration_us":2000000,"bytes":1,"connect_errors":0,"read_errors":0,"write_errors":0,"status_errors":3,"timeouts":1,"mean_us":812.5,"p50_us":700,"p90_us":900,"p99_us":1500,"p999_us":2000,"max_us":3000}` + "\n")
	run, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if run.Requests != 1200 || run.P99US != 1500 || run.errors() != 4 {
		t.Errorf("parsed %+v", run)
	}
	if _, err := parseWrk([]byte("unable to connect\n")); err == nil {
		t.Error("no error without a result line")
	}
}

func TestHAProxyVersion(t *testing.T) {
	for _, tc := range []struct {
		out, want string
	}{
		{"HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/", "2.6.12-1+deb12u4"},
		{"HA-Proxy version 1.8.19 2019/02/11", "1.8.19"},
	} {
		m := haproxyVersionRE.FindStringSubmatch(tc.out)
		if m == nil || m[1]+"."+m[2]+m[3] != tc.want {
			t.Errorf("%q: got %v, want %s", tc.out, m, tc.want)
		}
	}
}

func TestHAProxyConfig(t *testing.T) {
	cfg := haproxyConfig(3, "127.0.0.1:1", "127.0.0.1:2", "/k.pem", "http://127.0.0.1:3/", "https://api")
	for _, want := range []string{"nbthread 3", "bind 127.0.0.1:1", `jwt_verify(txn.alg,"/k.pem")`, "-m str http://127.0.0.1:3/", "server api 127.0.0.1:2", "json_query('$.aud[1]') -m str https://api"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("configuration lacks %q:\n%s", want, cfg)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestMarkdown(t *testing.T) {
	run := func(rps, p99, cpu float64) wrkRun {
		return wrkRun{Requests: int64(rps) * 10, DurationUS: 10e6, P50US: 100, P99US: int64(p99), rps: rps, cpuUSPerReq: cpu}
	}
	h := &httpReport{targets: []*target{
		{key: "a", name: "upstream alone", runs: []wrkRun{run(30000, 900, 20), run(10000, 3000, 25)}},
		{key: "b", name: "bare", runs: []wrkRun{run(10000, 1000, 60), run(5000, 2000, 70)}},
		{key: "c", name: "cache", cacheOn: true, runs: []wrkRun{run(9800, 1000, 55), run(4800, 2100, 66)}},
		{key: "d", name: "no cache", skip: "the binary did not build: x | y"},
		{key: "e", name: "haproxy", runs: []wrkRun{run(13000, 900, 45), run(6500, 1800, 50)}},
	}}
	g := &goBenchReport{results: map[string]*goBenchResult{
		"FloorRSA":          {nsPerOp: 50000, samples: []float64{50000, 100000}},
		"TokenwardCold":     {nsPerOp: 56000, samples: []float64{55000, 110000}},
		"GoJWTMiddlewareV2": {nsPerOp: 90000, samples: []float64{90000, 180000}},
	}}
	r := &report{cfg: &config{tokens: 300, connections: 32, rounds: 2}, goBench: g, http: h}
	md := r.markdown()
	for _, want := range []string{
		"| TokenwardCold | (2) tokenward `Validator`, new token each call, no cache | 56000 | 67% | 1.100 |",
		"| TokenwardCached | (2) tokenward `Validator`, same token, `CacheSize` 100000: no result |",
		"| validator, new token (RS256) | ≤ 1.15× bare crypto/rsa | 1.100×",
		"| validator vs go-jwt-middleware/v2, new token | ≥ 1.5× faster | 1.64× faster | **met** |",
		"| (d) | no cache | not measured: the binary did not build: x \\| y |",
		"0.97× req/s, p99 1.02× (CPU per request 0.93×) | **met** |",
		"| binary without cache, same mix | ≥ 0.8× bare ReverseProxy req/s | — | not measured |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
