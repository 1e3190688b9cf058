package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// heldIntrospection is a fake introspection endpoint (a fault injector, not
// a real issuer): it answers the one token it knows at once, and holds every
// other call until release is closed, then answers it inactive. It counts
// the calls and the connections open at once.
type heldIntrospection struct {
	*httptest.Server
	issuer, known string
	release       chan struct{}
	once          sync.Once
	arrived       chan struct{} // one value per held call

	mu                  sync.Mutex // guards the counters below
	inFlight, peakCalls int
	conns, peakConns    int
}

func newHeldIntrospection(t *testing.T, issuer, known string) *heldIntrospection {
	t.Helper()
	h := &heldIntrospection{issuer: issuer, known: known, release: make(chan struct{}), arrived: make(chan struct{}, 4096)}
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(h.serve))
	h.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		h.mu.Lock()
		defer h.mu.Unlock()
		switch s {
		case http.StateNew:
			h.conns++
			h.peakConns = max(h.peakConns, h.conns)
		case http.StateClosed, http.StateHijacked:
			h.conns--
		}
	}
	h.Start()
	t.Cleanup(func() { h.Release(); h.Close() }) // Close waits for held handlers
	return h
}

func (h *heldIntrospection) Release() { h.once.Do(func() { close(h.release) }) }

func (h *heldIntrospection) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.PostForm.Get("token") == h.known {
		fmt.Fprintf(w, `{"active":true,"iss":%q,"aud":%q,"sub":"auth0|real-user","scope":"read:contacts","exp":%d}`,
			h.issuer, audience, time.Now().Add(time.Hour).Unix())
		return
	}
	h.mu.Lock()
	h.inFlight++
	h.peakCalls = max(h.peakCalls, h.inFlight)
	h.mu.Unlock()
	h.arrived <- struct{}{}
	select {
	case <-h.release:
	case <-r.Context().Done():
	}
	h.mu.Lock()
	h.inFlight--
	h.mu.Unlock()
	fmt.Fprint(w, `{"active":false}`)
}

func (h *heldIntrospection) peaks() (calls, conns int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peakCalls, h.peakConns
}

func opaqueToken(t *testing.T) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

var goroutinesLine = regexp.MustCompile(`(?m)^go_goroutines (\d+)$`)

// TestOpaqueFlood (issue 9, finding 8): 1,000 made-up opaque tokens from 200
// clients against an issuer that holds every call cost the binary at most
// TOKENWARD_OPAQUE_MAX_CONCURRENCY calls and connections to the issuer at
// once; the others get 503 with Retry-After at once (reason issuer_busy); the
// binary's goroutines stay bounded by the clients, not the tokens; a real
// user's cached token gets 200 throughout.
func TestOpaqueFlood(t *testing.T) {
	t.Parallel()
	const (
		clients   = 200
		perClient = 5
		bound     = 4
	)
	iss := newIssuer(t)
	user := opaqueToken(t)
	held := newHeldIntrospection(t, iss.URL(), user)
	up := echoUpstream(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":                     iss.URL(),
		"TOKENWARD_AUDIENCES":                   audience,
		"TOKENWARD_UPSTREAM":                    up.URL,
		"TOKENWARD_RULES_FILE":                  testRulesFile(t),
		"TOKENWARD_OPAQUE_TOKENS":               "introspection",
		"TOKENWARD_INTROSPECTION_URL":           held.URL,
		"TOKENWARD_INTROSPECTION_CLIENT_ID":     "tokenward",
		"TOKENWARD_INTROSPECTION_CLIENT_SECRET": "s3cret",
		"TOKENWARD_OPAQUE_TIMEOUT":              "1h", // only Release ends a held call
		"TOKENWARD_OPAQUE_MAX_CONCURRENCY":      strconv.Itoa(bound),
	})
	if r := do(t, srv.client, "GET", srv.url+"/api/contacts/1", bearer(user)); r.status != 200 {
		t.Fatalf("real user before the flood: %d %s", r.status, r.body)
	}

	// The binary's own goroutines, from its metrics.
	goroutines := func() int {
		r := do(t, srv.client, "GET", srv.adminURL+"/metrics", nil)
		m := goroutinesLine.FindSubmatch(r.body)
		if m == nil {
			t.Fatal("/metrics has no go_goroutines")
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	base := goroutines()

	// One connection per client, kept: what the binary holds is per client.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	type result struct {
		status     int
		retryAfter string
		err        error
	}
	results := make(chan result, clients*perClient)
	finished := make(chan struct{}, clients) // a client sent all its tokens
	for range clients {
		tokens := make([]string, perClient)
		for i := range tokens {
			tokens[i] = opaqueToken(t)
		}
		go func() {
			for _, tok := range tokens {
				req, _ := http.NewRequest("GET", srv.url+"/api/contacts/1", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					results <- result{err: err}
					continue
				}
				resp.Body.Close()
				results <- result{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
			}
			finished <- struct{}{}
		}()
	}

	peak := base
	busy, got, done, released := 0, 0, 0, false
	check := func(r result) {
		got++
		switch {
		case r.err != nil:
			t.Errorf("request failed: %v", r.err)
		case r.status == 503 && r.retryAfter != "":
			busy++
		case r.status == 401 && released: // a held call's answer, or a token sent after
		default:
			t.Errorf("made-up token: status %d, Retry-After %q", r.status, r.retryAfter)
		}
	}
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	// Every client but those whose call the issuer holds gets all its
	// answers while the issuer holds those calls; an issuer holding more
	// calls than the bound ends the wait.
wait:
	for done < clients-bound {
		select {
		case <-finished:
			done++
		case r := <-results:
			check(r)
			if got%50 == 0 {
				peak = max(peak, goroutines())
				if r := do(t, srv.client, "GET", srv.url+"/api/contacts/1", bearer(user)); r.status != 200 {
					t.Errorf("real user during the flood: %d %s", r.status, r.body)
				}
			}
		case <-held.arrived:
			if calls, _ := held.peaks(); calls > bound {
				t.Errorf("the issuer holds %d calls at once, more than TOKENWARD_OPAQUE_MAX_CONCURRENCY=%d", calls, bound)
				break wait
			}
		case <-deadline.C:
			t.Errorf("only %d of %d clients got all their answers while the issuer held %d calls", done, clients-bound, bound)
			break wait
		}
	}
	peak = max(peak, goroutines())
	if r := do(t, srv.client, "GET", srv.url+"/api/contacts/1", bearer(user)); r.status != 200 {
		t.Errorf("real user while the issuer holds its calls: %d %s", r.status, r.body)
	}
	held.Release()
	released = true
	for got < clients*perClient {
		select {
		case r := <-results:
			check(r)
		case <-deadline.C:
			t.Fatalf("%d of %d answers", got, clients*perClient)
		}
	}

	calls, conns := held.peaks()
	t.Logf("issuer: at most %d calls at once on %d connections; %d of %d answers 503; binary's goroutines %d before, %d at most",
		calls, conns, busy, clients*perClient, base, peak)
	if calls > bound || conns > bound {
		t.Errorf("the issuer had %d calls and %d connections open at once, want at most %d", calls, conns, bound)
	}
	// Per client connection the binary holds a goroutine or two (its
	// connection, reading the next request); per call in progress a few
	// more. Never one per token.
	if limit := base + 3*clients + 8*bound; peak > limit {
		t.Errorf("the binary ran %d goroutines, want at most %d (%d before the flood, %d clients)", peak, limit, base, clients)
	}
	r := do(t, srv.client, "GET", srv.adminURL+"/metrics", nil)
	want := fmt.Sprintf(`tokenward_requests_total{outcome="denied",reason="issuer_busy"} %d`+"\n", busy)
	if !regexp.MustCompile(regexp.QuoteMeta(want)).Match(r.body) {
		t.Errorf("/metrics has no %q", want)
	}
}
