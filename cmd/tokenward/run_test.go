package main

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRunInProcess calls run as main does, so that the wiring runs under the
// race detector (the e2e tests run a binary built without it), and checks
// that cancelling ctx shuts down cleanly with a nil error.
func TestRunInProcess(t *testing.T) {
	iss := newIssuer(t)
	iss.SetIntrospectionClient("tokenward-proxy", "s3cret")
	up := echoUpstream(t)
	env := map[string]string{
		"TOKENWARD_ISSUERS":                     iss.URL(),
		"TOKENWARD_AUDIENCES":                   audience,
		"TOKENWARD_UPSTREAM":                    up.URL,
		"TOKENWARD_LISTEN_ADDR":                 "127.0.0.1:0",
		"TOKENWARD_ADMIN_ADDR":                  "127.0.0.1:0",
		"TOKENWARD_ACCESS_LOG":                  "true",
		"TOKENWARD_CLAIM_HEADERS":               "sub=X-Auth-Subject,https://example.com/roles=X-Auth-Roles",
		"TOKENWARD_OPAQUE_TOKENS":               "introspection",
		"TOKENWARD_INTROSPECTION_CLIENT_ID":     "tokenward-proxy",
		"TOKENWARD_INTROSPECTION_CLIENT_SECRET": "s3cret",
		"TOKENWARD_DENYLIST_FILE":               writeFile(t, "denylist.json", `{"jti": ["revoked-jti"]}`),
		"TOKENWARD_DENYLIST_INTERVAL":           "10ms",
	}
	stderr := newLines()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runErr error
	finished := make(chan struct{})
	go func() {
		runErr = run(ctx, nil, mapGetenv(env), io.Discard, stderr)
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(waitTimeout):
		}
	})

	mainLine := stderr.waitLog(t, "listening", "server", "proxy")
	adminLine := stderr.waitLog(t, "listening", "server", "admin")
	c := newClient(t)
	base := "http://" + mainLine.str("addr")
	token := mint(t, iss, map[string]any{"https://example.com/roles": []string{"a", "b"}})
	for range 3 {
		r := do(t, c, "GET", base+"/x", bearer(token))
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if got := r.seen(t).Header.Get("X-Auth-Roles"); got != "a,b" {
			t.Errorf("X-Auth-Roles %q", got)
		}
	}
	if r := do(t, c, "GET", base+"/x", nil); r.status != 401 {
		t.Errorf("no token: %d", r.status)
	}
	if r := do(t, c, "GET", "http://"+adminLine.str("addr")+"/metrics", nil); !strings.Contains(string(r.body), "tokenward_requests_total") {
		t.Errorf("metrics: %d", r.status)
	}

	// Opaque tokens, the deny list and the cache, concurrently with scrapes
	// (which read the cache's and the deny list's state) and reloads.
	opaqueToken := iss.MintOpaque(iss.Claims(audience, nil))
	revoked := mint(t, iss, map[string]any{"jti": "revoked-jti"})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 5 {
				switch i % 4 {
				case 0:
					if r := do(t, c, "GET", base+"/x", bearer(opaqueToken)); r.status != 200 {
						t.Errorf("opaque token: status %d", r.status)
					}
				case 1:
					if r := do(t, c, "GET", base+"/x", bearer(revoked)); r.status != 401 {
						t.Errorf("revoked token: status %d", r.status)
					}
				case 2:
					if r := do(t, c, "GET", base+"/x", bearer(token)); r.status != 200 {
						t.Errorf("token: status %d", r.status)
					}
				case 3:
					r := do(t, c, "GET", "http://"+adminLine.str("addr")+"/metrics", nil)
					for _, want := range []string{"tokenward_opaque_checks_total", "tokenward_denylist_entries 1", "tokenward_token_cache_hits_total"} {
						if !strings.Contains(string(r.body), want) {
							t.Errorf("/metrics has no %q", want)
						}
					}
				}
			}
		})
	}
	wg.Wait()
	if n := iss.IntrospectionRequests(); n != 1 {
		t.Errorf("%d introspection requests for one opaque token, want 1", n)
	}
	stderr.waitLog(t, "request allowed")

	// A connection the client dialed but never used is new to the server,
	// and Shutdown waits 5 s before it counts one as idle.
	c.CloseIdleConnections()
	cancel()
	select {
	case <-finished:
		if runErr != nil {
			t.Fatalf("run returned %v after cancel, want nil", runErr)
		}
	case <-time.After(waitTimeout):
		t.Fatal("run did not return after cancel")
	}
	stderr.waitLog(t, "stopped")
}

// TestRunConfigError: run reports configuration errors on stderr and returns
// an error that exits 2.
func TestRunConfigError(t *testing.T) {
	stderr := newLines()
	err := run(context.Background(), nil, mapGetenv(nil), io.Discard, stderr)
	if exitCode(err) != 2 {
		t.Fatalf("exit code %d for %v", exitCode(err), err)
	}
	stderr.finish()
	if out := stderr.String(); !strings.Contains(out, "TOKENWARD_ISSUERS is not set") {
		t.Errorf("stderr: %s", out)
	}
}
