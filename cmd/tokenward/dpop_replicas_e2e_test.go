package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/redistest"
)

// waitStore polls /readyz until it lists the replay store as up (or down),
// with a deadline: the store's state is read at each call, so there is no
// event to wait on but the answer itself. /readyz stays 200 throughout: a
// store every replica shares must not take them all out of the Service.
func waitStore(t *testing.T, s *server, up bool) response {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		r := do(t, s.client, "GET", s.adminURL+"/readyz", nil)
		var body struct {
			Dependencies []struct {
				Name string `json:"name"`
				Up   bool   `json:"up"`
			} `json:"dependencies"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatalf("/readyz body: %v: %s", err, r.body)
		}
		// 200 (once the issuer's keys are loaded) whatever the store's state.
		if r.status == 200 && len(body.Dependencies) == 1 && body.Dependencies[0].Name == "dpop_replay_store" && body.Dependencies[0].Up == up {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz %d, not 200 with dpop_replay_store up=%v after %s: %s", r.status, up, waitTimeout, r.body)
		}
		time.Sleep(20 * time.Millisecond) // polling a readiness URL, with a deadline
	}
}

// TestDPoPReplicasSharedStoreE2E: two tokenward processes sharing one real
// redis-server (TOKENWARD_DPOP_REPLAY_STORE). A proof accepted by one is
// refused by the other as a replay; the same proof sent to both at the same
// instant is accepted by exactly one (SET NX decides), in every one of many
// rounds. Two replicas with their own memory stores accept the same proof
// twice: the gap the shared store closes. With Redis stopped, DPoP requests
// get 503 with Retry-After, bearer requests still pass, /readyz lists the
// store as down (and stays 200) and the store gauge is 0; Redis started
// again on the same port, both recover without a restart.
func TestDPoPReplicasSharedStoreE2E(t *testing.T) {
	t.Parallel()
	rs := redistest.New(t, redistest.Options{Password: "s3cret-redis-password"})
	iss := newIssuer(t)
	up := echoUpstream(t)
	env := dpopEnv(iss, up.URL, map[string]string{
		"TOKENWARD_PUBLIC_URL":                "https://api.example.com",
		"TOKENWARD_DPOP_REPLAY_STORE":         strings.Replace(rs.URL(), ":s3cret-redis-password@", "@", 1),
		"TOKENWARD_DPOP_REPLAY_PASSWORD_FILE": writeFile(t, "redis.pw", "s3cret-redis-password\n"),
	})
	a, b := serveBinary(t, env), serveBinary(t, env)
	for _, s := range []*server{a, b} {
		waitStore(t, s, true)
	}
	c := newDPoPClient(t, iss, "ES256")
	plain := mint(t, iss, map[string]any{"scope": "read:contacts"})
	public := "https://api.example.com/api/contacts/7"
	send := func(s *server, proof string) response {
		return do(t, s.client, "GET", s.url+"/api/contacts/7", c.withProof(proof))
	}

	// One after the other, both ways.
	for _, pair := range [][2]*server{{a, b}, {b, a}} {
		p := c.proof(t, "GET", public)
		if r := send(pair[0], p); r.status != 200 {
			t.Fatalf("first replica: status %d; body %s", r.status, r.body)
		}
		wantRefusal(t, pair[1], send(pair[1], p), 401, "invalid_dpop_proof", "dpop_replay")
	}

	// At the same instant: both requests wait on one channel.
	const rounds = 25
	for i := range rounds {
		p := c.proof(t, "GET", public)
		release := make(chan struct{})
		var wg sync.WaitGroup
		statuses := make([]int, 2)
		for j, s := range []*server{a, b} {
			req, err := http.NewRequest("GET", s.url+"/api/contacts/7", nil)
			if err != nil {
				t.Fatal(err)
			}
			c.withProof(p)(req)
			wg.Go(func() {
				<-release
				resp, err := s.client.Do(req)
				if err != nil {
					statuses[j] = -1
					return
				}
				resp.Body.Close()
				statuses[j] = resp.StatusCode
			})
		}
		close(release)
		wg.Wait()
		if !(statuses[0] == 200 && statuses[1] == 401 || statuses[0] == 401 && statuses[1] == 200) {
			t.Fatalf("round %d: the same proof at the same instant got %v; want one 200 and one 401", i, statuses)
		}
	}
	for _, s := range []*server{a, b} {
		// Every refusal above was a replay, none an outage.
		if n, _ := metric(t, s, `tokenward_requests_total{outcome="denied",reason="dpop_store_unavailable"}`); n != 0 {
			t.Errorf("%v store failures during the rounds", n)
		}
	}

	// Redis down.
	rs.Stop()
	for _, s := range []*server{a, b} {
		r := send(s, c.proof(t, "GET", public))
		if r.status != 503 || r.header.Get("Retry-After") == "" {
			t.Fatalf("Redis down: status %d, Retry-After %q; want 503 with Retry-After; body %s", r.status, r.header.Get("Retry-After"), r.body)
		}
		s.stderr.waitLog(t, "request refused", "reason", "dpop_store_unavailable")
		if r := do(t, s.client, "GET", s.url+"/api/contacts/7", bearer(plain)); r.status != 200 {
			t.Errorf("Redis down: a bearer request got %d, want 200", r.status)
		}
		ready := waitStore(t, s, false)
		if strings.Contains(string(ready.body), "s3cret") {
			t.Errorf("/readyz while Redis is down: %s", ready.body)
		}
		if up, _ := metric(t, s, "tokenward_dpop_replay_store_up"); up != 0 {
			t.Errorf("tokenward_dpop_replay_store_up %v while Redis is down, want 0", up)
		}
	}

	// Redis back, same port: no restart of tokenward.
	rs.Start()
	for _, s := range []*server{a, b} {
		waitStore(t, s, true)
		if up, _ := metric(t, s, "tokenward_dpop_replay_store_up"); up != 1 {
			t.Errorf("tokenward_dpop_replay_store_up %v after recovery, want 1", up)
		}
	}
	p := c.proof(t, "GET", public)
	if r := send(a, p); r.status != 200 {
		t.Fatalf("after recovery: status %d; body %s", r.status, r.body)
	}
	if r := send(b, p); r.status != 401 {
		t.Fatalf("after recovery, replay on the other replica: status %d, want 401", r.status)
	}
	for _, s := range []*server{a, b} {
		if strings.Contains(s.stderr.String(), "s3cret-redis-password") {
			t.Error("the Redis password is in the log")
		}
	}
}

// TestDPoPReplicasMemoryStoreE2E: without a shared store, two replicas each
// accept the same proof once: what TOKENWARD_DPOP_REPLAY_STORE is for (and
// what makes the shared-store test above able to fail).
func TestDPoPReplicasMemoryStoreE2E(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	env := dpopEnv(iss, echoUpstream(t).URL, map[string]string{"TOKENWARD_PUBLIC_URL": "https://api.example.com"})
	a, b := serveBinary(t, env), serveBinary(t, env)
	c := newDPoPClient(t, iss, "ES256")
	p := c.proof(t, "GET", "https://api.example.com/api/contacts/7")
	for _, s := range []*server{a, b} {
		if r := do(t, s.client, "GET", s.url+"/api/contacts/7", c.withProof(p)); r.status != 200 {
			t.Fatalf("status %d; body %s", r.status, r.body)
		}
	}
	wantRefusal(t, a, do(t, a.client, "GET", a.url+"/api/contacts/7", c.withProof(p)), 401, "invalid_dpop_proof", "dpop_replay")
}
