package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tokenward/tokenward/proxy"
)

// Two rule sets that judge GET /a/b%2Fc differently, and a mix of them
// differently again: the first lets an encoded slash through and requires
// s1 (200 for a token with s1); the second refuses it (400); the first's
// normalization with the second's route would require s2 (403).
const (
	swapRulesOld = `
allow_encoded_slash: true
routes:
  - match: "GET /a/{x}"
    scopes: ["s1"]
`
	swapRulesNew = `
routes:
  - match: "GET /a/{x}"
    scopes: ["s2"]
`
)

// TestRuleSetSwap: rules replaced through a RuleSet while requests are
// served (both modes) give every request either the old set's answer or the
// new set's, never one made of both, and never a failure.
func TestRuleSetSwap(t *testing.T) {
	iss := newIssuer(t)
	oldRules, newRules := mustRules(t, swapRulesOld), mustRules(t, swapRulesNew)
	token := withScope(t, iss, "api s1")
	up := newUpstream(t)
	go func() { // the upstream's records are not looked at here
		for range up.got {
		}
	}()

	for _, mode := range []string{"proxy", "forward-auth"} {
		t.Run(mode, func(t *testing.T) {
			set := proxy.NewRuleSet(oldRules)
			cfg := proxy.Config{Validator: newValidator(t, iss), RuleSet: set}
			var h http.Handler
			var err error
			if mode == "proxy" {
				h, err = proxy.New(up.URL, cfg, proxy.UpstreamOptions{})
			} else {
				h, err = proxy.NewForwardAuth(cfg)
			}
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()

			const workers, perWorker = 4, 300
			var (
				wg       sync.WaitGroup
				done     atomic.Int32
				counts   [600]atomic.Int64
				failures = make(chan string, workers)
			)
			for range workers {
				wg.Go(func() {
					defer done.Add(1)
					c := &http.Client{Transport: &http.Transport{}}
					defer c.CloseIdleConnections()
					for range perWorker {
						url := srv.URL + "/a/b%2Fc"
						if mode == "forward-auth" {
							url = srv.URL + "/auth"
						}
						req, _ := http.NewRequest("GET", url, nil)
						req.Header.Set("Authorization", "Bearer "+token)
						req.Header.Set("X-Forwarded-Method", "GET")
						req.Header.Set("X-Forwarded-Uri", "/a/b%2Fc")
						resp, err := c.Do(req)
						if err != nil {
							failures <- err.Error()
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode < len(counts) {
							counts[resp.StatusCode].Add(1)
						}
					}
				})
			}
			// Swap as fast as possible until the load is over.
			swaps := 0
			for done.Load() < workers {
				if swaps%2 == 0 {
					set.Store(newRules)
				} else {
					set.Store(oldRules)
				}
				swaps++
				runtime.Gosched()
			}
			wg.Wait()
			close(failures)
			for f := range failures {
				t.Errorf("request failed: %s", f)
			}
			var got []string
			for code := range counts {
				if n := counts[code].Load(); n > 0 {
					got = append(got, http.StatusText(code))
					if code != http.StatusOK && code != http.StatusBadRequest {
						t.Errorf("%d answers %d: neither the old rules' 200 nor the new rules' 400", n, code)
					}
				}
			}
			t.Logf("%d swaps; answers: %s", swaps, strings.Join(got, ", "))
			if counts[200].Load() == 0 || counts[400].Load() == 0 {
				t.Errorf("the load saw only one rule set (200: %d, 400: %d)", counts[200].Load(), counts[400].Load())
			}
		})
	}
}

// TestRuleSet: a RuleSet must hold rules when the handler is built, cannot
// be given with Rules, cannot be emptied, and Scopes reads the set in force.
func TestRuleSet(t *testing.T) {
	iss := newIssuer(t)
	v := newValidator(t, iss)
	for name, cfg := range map[string]proxy.Config{
		"empty":    {Validator: v, RuleSet: &proxy.RuleSet{}},
		"both set": {Validator: v, Rules: mustRules(t, testRules), RuleSet: proxy.NewRuleSet(mustRules(t, testRules))},
	} {
		if _, err := proxy.NewForwardAuth(cfg); err == nil {
			t.Errorf("%s: NewForwardAuth succeeded", name)
		}
		if _, err := proxy.New("http://127.0.0.1:1", cfg, proxy.UpstreamOptions{}); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	var zero proxy.RuleSet
	if zero.Load() != nil {
		t.Error("the zero RuleSet holds rules")
	}

	set := proxy.NewRuleSet(mustRules(t, swapRulesOld))
	p, err := proxy.New("http://127.0.0.1:1", proxy.Config{Validator: v, RuleSet: set}, proxy.UpstreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/a/x", nil)
	if got := p.Scopes(req).String(); got != "api s1" {
		t.Errorf("Scopes = %q, want the first set's", got)
	}
	set.Store(mustRules(t, swapRulesNew))
	set.Store(nil)
	if got := p.Scopes(req).String(); got != "api s2" {
		t.Errorf("Scopes after Store = %q, want the second set's", got)
	}
}
