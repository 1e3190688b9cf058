package opaque_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/syncbuf"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/opaque"
)

// heldIssuer is a fake introspection endpoint (not a real issuer: it exists
// to hold calls). It answers the one token it knows at once (active, or as
// revoked and failing say), and holds every other call until release is
// closed (or the caller goes), then answers it inactive. It counts the calls
// and the connections open at once.
type heldIssuer struct {
	*httptest.Server
	known   string
	revoked atomic.Bool // the known token is answered inactive
	failing atomic.Bool // the known token is answered 500
	release chan struct{}
	once    sync.Once
	arrived chan struct{} // one value per held call, buffered

	mu                 sync.Mutex // guards the counters below
	inFlight, maxCalls int
	conns, maxConns    int
	calls              int
}

func newHeldIssuer(t *testing.T, known string) *heldIssuer {
	t.Helper()
	h := &heldIssuer{known: known, release: make(chan struct{}), arrived: make(chan struct{}, 4096)}
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(h.serve))
	h.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		h.mu.Lock()
		defer h.mu.Unlock()
		switch s {
		case http.StateNew:
			h.conns++
			h.maxConns = max(h.maxConns, h.conns)
		case http.StateClosed, http.StateHijacked:
			h.conns--
		}
	}
	h.Start()
	// Release before Close, which waits for the held handlers.
	t.Cleanup(func() { h.Release(); h.Close() })
	return h
}

// Release lets every held call, and every later one, answer.
func (h *heldIssuer) Release() { h.once.Do(func() { close(h.release) }) }

func (h *heldIssuer) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.PostForm.Get("token") == h.known {
		switch {
		case h.failing.Load():
			http.Error(w, "down", http.StatusInternalServerError)
			return
		case h.revoked.Load():
			fmt.Fprint(w, `{"active":false}`)
			return
		}
		fmt.Fprintf(w, `{"active":true,"iss":%q,"aud":%q,"sub":"auth0|real-user","exp":%d}`,
			h.URL, audience, time.Now().Add(time.Hour).Unix())
		return
	}
	h.mu.Lock()
	h.calls++
	h.inFlight++
	h.maxCalls = max(h.maxCalls, h.inFlight)
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

// peaks returns the most calls and connections that were open at once.
func (h *heldIssuer) peaks() (calls, conns int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.maxCalls, h.maxConns
}

// total returns the calls for unknown tokens so far.
func (h *heldIssuer) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

func randomToken(t testing.TB) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// TestFloodOfMadeUpTokens: 200 clients sending 5 made-up tokens each, to an
// issuer that holds every call, cost at most MaxConcurrency calls and
// connections to the issuer at once; the checks beyond the bound are refused
// at once with 503 and Retry-After (reason issuer_busy) instead of waiting;
// goroutines stay bounded by the clients; a real user's cached token is
// accepted throughout.
func TestFloodOfMadeUpTokens(t *testing.T) {
	const (
		clients   = 200
		perClient = 5
		bound     = 4
	)
	user := randomToken(t)
	iss := newHeldIssuer(t, user)
	var logs syncbuf.Buffer
	in, err := opaque.NewIntrospector(iss.URL, opaque.IntrospectorOptions{
		ClientID: clientID, ClientSecret: clientSecret, Issuer: iss.URL,
		Timeout:        time.Hour, // only Release ends a held call
		MaxConcurrency: bound,
		Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	v := newValidator(t, iss.URL, in, middleware.ValidatorOptions{})
	api := newAPI(t, v)
	if a := call(t, api.URL+"/contacts", user); a.status != http.StatusOK {
		t.Fatalf("real token before the flood: %d %s", a.status, a.body)
	}

	// The clients' transport keeps one connection per client, so the
	// goroutines counted are the server's and the checker's, not churn.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	base := runtime.NumGoroutine()
	var peakGoroutines atomic.Int64
	sample := func() {
		n := int64(runtime.NumGoroutine())
		for {
			p := peakGoroutines.Load()
			if n <= p || peakGoroutines.CompareAndSwap(p, n) {
				return
			}
		}
	}

	type result struct {
		status     int
		retryAfter string
		err        error
	}
	results := make(chan result, clients*perClient)
	finished := make(chan struct{}, clients) // one value per client that sent all its tokens
	tokens := make([][]string, clients)
	for i := range tokens {
		for range perClient {
			tokens[i] = append(tokens[i], randomToken(t))
		}
	}
	for i := range clients {
		go func() {
			for _, tok := range tokens[i] {
				req, _ := http.NewRequest(http.MethodGet, api.URL+"/contacts", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				sample()
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

	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	// Every check beyond the bound is refused at once: every client but
	// those whose call the issuer holds sends all its tokens and gets all
	// its answers while the issuer holds those calls. An issuer holding
	// more calls than the bound ends the wait.
	busy, got, done, released := 0, 0, 0, false
	check := func(r result) {
		got++
		switch {
		case r.err != nil:
			t.Errorf("request failed: %v", r.err)
		case r.status == http.StatusServiceUnavailable && r.retryAfter != "":
			busy++
		case r.status == http.StatusUnauthorized && released:
			// A held call's token, or one sent after the release.
		default:
			t.Errorf("made-up token: status %d, Retry-After %q", r.status, r.retryAfter)
		}
	}
wait:
	for done < clients-bound {
		select {
		case <-finished:
			done++
		case r := <-results:
			check(r)
			if got%100 == 0 {
				// A real user's token, cached, is answered during the flood.
				if a := call(t, api.URL+"/contacts", user); a.status != http.StatusOK {
					t.Errorf("real token during the flood: %d %s", a.status, a.body)
				}
			}
		case <-iss.arrived:
			if calls, _ := iss.peaks(); calls > bound {
				t.Errorf("the issuer holds %d calls at once, more than MaxConcurrency %d", calls, bound)
				break wait
			}
		case <-ctx.Done():
			t.Errorf("only %d of %d clients got all their answers while the issuer held %d calls", done, clients-bound, bound)
			break wait
		}
	}
	sample()
	if a := call(t, api.URL+"/contacts", user); a.status != http.StatusOK {
		t.Errorf("real token while the issuer holds %d calls: %d %s", bound, a.status, a.body)
	}
	iss.Release()
	released = true
	for got < clients*perClient {
		select {
		case r := <-results:
			check(r)
		case <-ctx.Done():
			t.Fatalf("%d of %d answers after the release", got, clients*perClient)
		}
	}

	calls, conns := iss.peaks()
	t.Logf("issuer: %d calls, at most %d at once on %d connections; %d answers 503; goroutines %d before, %d at most",
		iss.total(), calls, conns, busy, base, peakGoroutines.Load())
	if calls > bound || conns > bound {
		t.Errorf("the issuer had %d calls and %d connections open at once, want at most MaxConcurrency %d", calls, conns, bound)
	}
	if s := in.Stats(); s.Busy != uint64(busy) {
		t.Errorf("Stats.Busy %d, want the %d answers 503", s.Busy, busy)
	}
	// The operator hears of it, once, not once per refused token.
	if n := strings.Count(logs.String(), "the most calls allowed to the issuer are in progress"); n != 1 {
		t.Errorf("%d warnings about the bound, want 1:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), tokens[0][0]) {
		t.Error("a token was logged")
	}
	// Each client holds at most five goroutines in this process (its own,
	// its transport's two, the server's connection and its background
	// read), and one spare; the checker adds a few per call in progress,
	// never one per token (without the bound: about 8 per client).
	if limit := int64(base + 6*clients + 8*bound); peakGoroutines.Load() > limit {
		t.Errorf("%d goroutines at the peak, want at most %d (%d before, %d clients)", peakGoroutines.Load(), limit, base, clients)
	}
}
