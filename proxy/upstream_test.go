package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenward/tokenward/proxy"
)

// rawUpstream is an upstream written byte by byte, for answers net/http
// would not send: serve runs on each accepted connection, with its number
// (from 1).
type rawUpstream struct {
	ln    net.Listener
	conns atomic.Int32
}

func newRawUpstream(tb testing.TB, serve func(n int32, c net.Conn, br *bufio.Reader)) *rawUpstream {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := u.conns.Add(1)
			go func() {
				defer c.Close()
				serve(n, c, bufio.NewReader(c))
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		<-done
	})
	return u
}

func (u *rawUpstream) url() string { return "http://" + u.ln.Addr().String() }

// readRequest reads one request off an upstream connection, or reports false
// when the proxy closed it.
func readRequest(br *bufio.Reader) (*http.Request, bool) {
	r, err := http.ReadRequest(br)
	if err != nil {
		return nil, false
	}
	io.Copy(io.Discard, r.Body)
	return r, true
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh"

// TestUpstreamConnectionReuse: requests without a body share one kept-alive
// connection to the upstream until the upstream says Connection: close or
// answers a HEAD request, whose answer has no body by definition.
func TestUpstreamConnectionReuse(t *testing.T) {
	iss := newIssuer(t)
	var conns atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, "upstream")
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	srv := startProxy(t, up.URL, defaultConfig(t, iss), proxy.UpstreamOptions{})
	token := withScope(t, iss, "api")

	for range 10 {
		if resp, body := do(t, srv, request{path: "/x", token: token}); resp.StatusCode != 200 || body != "upstream" {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("10 requests opened %d upstream connections, want 1", n)
	}
	for i, step := range []struct {
		method, path string
		conns        int32 // connections opened in all once answered
	}{
		{http.MethodGet, "/close", 1},
		{http.MethodGet, "/after-close", 2},
		{http.MethodHead, "/head", 2},
		{http.MethodGet, "/after-head", 3},
	} {
		resp, body := do(t, srv, request{method: step.method, path: step.path, token: token})
		if resp.StatusCode != 200 || step.method == http.MethodGet && body != "upstream" {
			t.Fatalf("%s %s: status %d body %q", step.method, step.path, resp.StatusCode, body)
		}
		if n := conns.Load(); n != step.conns {
			t.Errorf("step %d, %s %s: %d connections in all, want %d", i, step.method, step.path, n, step.conns)
		}
	}
}

// TestUpstreamClosedIdleConnection: an upstream that closes a connection
// after each answer, without saying so, costs no request an error — neither
// one that could be sent again nor one that could not.
func TestUpstreamClosedIdleConnection(t *testing.T) {
	iss := newIssuer(t)
	closed := make(chan struct{}, 8)
	up := newRawUpstream(t, func(_ int32, c net.Conn, br *bufio.Reader) {
		if _, ok := readRequest(br); ok {
			io.WriteString(c, okAnswer)
		}
		c.Close()
		closed <- struct{}{}
	})
	srv := startProxy(t, up.url(), defaultConfig(t, iss), proxy.UpstreamOptions{})
	token := withScope(t, iss, "api")
	for i, method := range []string{http.MethodGet, http.MethodGet, http.MethodPost, http.MethodPatch} {
		resp, body := do(t, srv, request{method: method, path: "/x", token: token})
		if resp.StatusCode != 200 || body != "fresh" {
			t.Fatalf("request %d (%s): status %d body %q", i+1, method, resp.StatusCode, body)
		}
		within(t, closed, "the upstream closing its connection")
	}
}

// TestUpstreamUnsolicitedBytes: bytes an upstream sends beyond its answer —
// a body on a HEAD answer, a body longer than its Content-Length, or
// anything on an idle connection — are never read as the answer to the next
// request, which may be another client's.
func TestUpstreamUnsolicitedBytes(t *testing.T) {
	const forged = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
	cases := []struct {
		name, method string
		first        string // the first connection's answer
		later        string // written on it once that answer was read
	}{
		{"body on HEAD", http.MethodHead, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n" + forged, ""},
		{"body beyond Content-Length", http.MethodGet, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + forged, ""},
		{"answer on an idle connection", http.MethodGet, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", forged},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			iss := newIssuer(t)
			firstRead := make(chan struct{})
			laterSent := make(chan struct{})
			up := newRawUpstream(t, func(n int32, c net.Conn, br *bufio.Reader) {
				if n > 1 {
					for {
						if _, ok := readRequest(br); !ok {
							return
						}
						io.WriteString(c, okAnswer)
					}
				}
				if _, ok := readRequest(br); !ok {
					return
				}
				io.WriteString(c, tc.first)
				if tc.later != "" {
					<-firstRead
					io.WriteString(c, tc.later)
					close(laterSent)
				}
				io.Copy(io.Discard, br) // until the proxy closes it
			})
			srv := startProxy(t, up.url(), defaultConfig(t, iss), proxy.UpstreamOptions{})
			token := withScope(t, iss, "api")

			if resp, _ := do(t, srv, request{method: tc.method, path: "/first", token: token}); resp.StatusCode != 200 {
				t.Fatalf("first request: status %d", resp.StatusCode)
			}
			if tc.later != "" {
				close(firstRead)
				within(t, laterSent, "the upstream's unsolicited answer")
			}
			resp, body := do(t, srv, request{path: "/second", token: token})
			if resp.StatusCode != 200 || body != "fresh" {
				t.Fatalf("second request: status %d body %q, want the answer of a new connection", resp.StatusCode, body)
			}
			if n := up.conns.Load(); n != 2 {
				t.Errorf("%d upstream connections, want 2: the first one must not be reused", n)
			}
		})
	}
}

// TestUpstreamHeaderTooLarge: an upstream's endless header is cut off with a
// 502, and the proxy goes on serving.
func TestUpstreamHeaderTooLarge(t *testing.T) {
	iss := newIssuer(t)
	up := newRawUpstream(t, func(n int32, c net.Conn, br *bufio.Reader) {
		if _, ok := readRequest(br); !ok {
			return
		}
		if n > 1 {
			io.WriteString(c, okAnswer)
			return
		}
		// 16 MiB of header, more than a client takes (net/http's takes 10):
		// the proxy must stop reading well before.
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		line := "X-Filler: " + strings.Repeat("a", 1000) + "\r\n"
		for range 16 << 10 {
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
		io.WriteString(c, "Content-Length: 5\r\n\r\nhuge!")
	})
	srv := startProxy(t, up.url(), defaultConfig(t, iss), proxy.UpstreamOptions{})
	token := withScope(t, iss, "api")
	if resp, body := do(t, srv, request{path: "/huge", token: token}); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d body %q, want 502", resp.StatusCode, body)
	}
	if resp, body := do(t, srv, request{path: "/next", token: token}); resp.StatusCode != 200 || body != "fresh" {
		t.Fatalf("next request: status %d body %q", resp.StatusCode, body)
	}
}

// TestUpstreamEarlyHints: informational answers (103 Early Hints) reach the
// client before the final one.
func TestUpstreamEarlyHints(t *testing.T) {
	iss := newIssuer(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(up.Close)
	srv := startProxy(t, up.URL, defaultConfig(t, iss), proxy.UpstreamOptions{})

	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, http.StatusText(code)+": "+h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, srv.URL+"/x", nil)
	req.Header.Set("Authorization", "Bearer "+withScope(t, iss, "api"))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "upstream" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if want := "Early Hints: </style.css>; rel=preload; as=style"; len(hints) != 1 || hints[0] != want {
		t.Errorf("informational answers %q, want [%q]", hints, want)
	}
}

// TestUpstreamClientGone: when the client leaves, the upstream's request is
// abandoned, and the connection is not reused.
func TestUpstreamClientGone(t *testing.T) {
	iss := newIssuer(t)
	arrived := make(chan struct{}, 1)
	abandoned := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			io.WriteString(w, "upstream")
			return
		}
		arrived <- struct{}{}
		<-r.Context().Done()
		abandoned <- struct{}{}
	}))
	t.Cleanup(up.Close)
	srv := startProxy(t, up.URL, defaultConfig(t, iss), proxy.UpstreamOptions{})
	token := withScope(t, iss, "api")

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/slow", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	errc := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	within(t, arrived, "the request reaching the upstream")
	cancel()
	within(t, abandoned, "the upstream's request being abandoned")
	if err := within(t, errc, "the client's request ending"); err == nil {
		t.Error("the canceled request succeeded")
	}
	if resp, body := do(t, srv, request{path: "/next", token: token}); resp.StatusCode != 200 || body != "upstream" {
		t.Fatalf("next request: status %d body %q", resp.StatusCode, body)
	}
}

// TestUpstreamBodilessAnswerLateBody: an upstream that sends a body after an
// answer that must not have one (to HEAD, 204, 304) may send it late, after
// the proxy has checked the idle connection: the upstream here writes it
// only once the next request has arrived on that connection. Such a
// connection is never reused, so the stray bytes are never read as the
// answer to the next request, which may be another client's.
func TestUpstreamBodilessAnswerLateBody(t *testing.T) {
	const forged = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
	cases := []struct {
		name, method, answer string
		status               int
	}{
		{"HEAD", http.MethodHead, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", 200},
		{"204", http.MethodGet, "HTTP/1.1 204 No Content\r\n\r\n", 204},
		{"304", http.MethodGet, "HTTP/1.1 304 Not Modified\r\nETag: \"1\"\r\n\r\n", 304},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			iss := newIssuer(t)
			up := newRawUpstream(t, func(n int32, c net.Conn, br *bufio.Reader) {
				if n > 1 {
					for {
						if _, ok := readRequest(br); !ok {
							return
						}
						io.WriteString(c, okAnswer)
					}
				}
				if _, ok := readRequest(br); !ok {
					return
				}
				io.WriteString(c, tc.answer)
				// The "body" goes out once a second request is on this
				// connection: no check made before sending it can see it.
				if _, ok := readRequest(br); ok {
					io.WriteString(c, forged)
				}
				io.Copy(io.Discard, br)
			})
			srv := startProxy(t, up.url(), defaultConfig(t, iss), proxy.UpstreamOptions{})
			token := withScope(t, iss, "api")

			if resp, _ := do(t, srv, request{method: tc.method, path: "/first", token: token}); resp.StatusCode != tc.status {
				t.Fatalf("first request: status %d, want %d", resp.StatusCode, tc.status)
			}
			resp, body := do(t, srv, request{path: "/second", token: token})
			if resp.StatusCode != 200 || body != "fresh" {
				t.Fatalf("second request: status %d body %q, want the answer of a new connection", resp.StatusCode, body)
			}
			if n := up.conns.Load(); n != 2 {
				t.Errorf("%d upstream connections, want 2: the first one must not be reused", n)
			}
		})
	}
}

// TestUpstreamReplay: when a pooled connection fails after the request was
// sent and before any answer, only a request net/http would replay is sent
// again (GET, HEAD, OPTIONS, TRACE, or one with an Idempotency-Key); any
// other (POST, PUT, DELETE, PATCH) may have been carried out, and gets 502.
func TestUpstreamReplay(t *testing.T) {
	cases := []struct {
		method string
		header http.Header
		replay bool
	}{
		{http.MethodGet, nil, true},
		{http.MethodHead, nil, true},
		{http.MethodOptions, nil, true},
		{http.MethodTrace, nil, true},
		{http.MethodPost, nil, false},
		{http.MethodPut, nil, false},
		{http.MethodDelete, nil, false},
		{http.MethodPatch, nil, false},
		{http.MethodPost, http.Header{"Idempotency-Key": {"k1"}}, true},
		{http.MethodDelete, http.Header{"X-Idempotency-Key": {"k2"}}, true},
	}
	for _, tc := range cases {
		name := tc.method
		for k := range tc.header {
			name += " with " + k
		}
		t.Run(name, func(t *testing.T) {
			iss := newIssuer(t)
			got := make(chan string, 8) // the paths the upstream received
			up := newRawUpstream(t, func(n int32, c net.Conn, br *bufio.Reader) {
				for i := 0; ; i++ {
					r, ok := readRequest(br)
					if !ok {
						return
					}
					got <- r.URL.Path
					if n == 1 && i == 1 {
						return // the second request on the first connection: closed unanswered
					}
					io.WriteString(c, okAnswer)
				}
			})
			srv := startProxy(t, up.url(), defaultConfig(t, iss), proxy.UpstreamOptions{})
			token := withScope(t, iss, "api")

			if resp, _ := do(t, srv, request{path: "/first", token: token}); resp.StatusCode != 200 {
				t.Fatalf("first request: status %d", resp.StatusCode)
			}
			resp, _ := do(t, srv, request{method: tc.method, path: "/second", token: token, header: tc.header})
			sent := 0
			for len(got) > 0 {
				if p := <-got; p == "/second" {
					sent++
				}
			}
			want, wantSent := http.StatusBadGateway, 1
			if tc.replay {
				want, wantSent = 200, 2
			}
			if resp.StatusCode != want || sent != wantSent {
				t.Errorf("status %d, the upstream received the request %d times; want %d and %d", resp.StatusCode, sent, want, wantSent)
			}
		})
	}
}

// closeWatch is an upstream that answers every request with okAnswer, or
// after hold is closed for paths starting with /hold, and reports each
// connection the proxy closes.
type closeWatch struct {
	*rawUpstream
	arrived chan struct{} // one per /hold request received
	hold    chan struct{}
	closed  chan int32 // the number of each connection closed by the proxy
}

func newCloseWatch(t *testing.T) *closeWatch {
	u := &closeWatch{arrived: make(chan struct{}, 64), hold: make(chan struct{}), closed: make(chan int32, 64)}
	u.rawUpstream = newRawUpstream(t, func(n int32, c net.Conn, br *bufio.Reader) {
		for {
			r, ok := readRequest(br)
			if !ok {
				u.closed <- n
				return
			}
			if strings.HasPrefix(r.URL.Path, "/hold") {
				u.arrived <- struct{}{}
				<-u.hold
			}
			io.WriteString(c, okAnswer)
		}
	})
	return u
}

// TestUpstreamIdleTimeout: a kept-alive connection unused for the idle
// timeout is closed by the proxy on its own, and the next request gets a
// new one.
func TestUpstreamIdleTimeout(t *testing.T) {
	iss := newIssuer(t)
	up := newCloseWatch(t)
	close(up.hold)
	srv := startProxy(t, up.url(), defaultConfig(t, iss), proxy.UpstreamOptions{IdleConnTimeout: 20 * time.Millisecond})
	token := withScope(t, iss, "api")
	for i := range 2 {
		if resp, body := do(t, srv, request{path: "/x", token: token}); resp.StatusCode != 200 || body != "fresh" {
			t.Fatalf("request %d: status %d body %q", i+1, resp.StatusCode, body)
		}
		if n := within(t, up.closed, "the idle connection being closed"); n != int32(i+1) {
			t.Fatalf("connection %d closed, want %d", n, i+1)
		}
	}
}

// TestUpstreamIdleBound: of the connections an answer ends, no more than
// MaxIdleConns are kept; the rest are closed, and the kept ones serve the
// next requests.
func TestUpstreamIdleBound(t *testing.T) {
	iss := newIssuer(t)
	up := newCloseWatch(t)
	srv := startProxy(t, up.url(), defaultConfig(t, iss), proxy.UpstreamOptions{MaxIdleConns: 2})
	token := withScope(t, iss, "api")

	// concurrently sends n requests that the upstream holds until all
	// arrived, so each needs a connection of its own.
	concurrently := func(n int, release bool) {
		t.Helper()
		errs := make(chan string, n)
		for range n {
			go func() {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/hold", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := srv.Client().Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				errs <- fmt.Sprintf("%d %s", resp.StatusCode, body)
			}()
		}
		for range n {
			within(t, up.arrived, "a held request reaching the upstream")
		}
		if release {
			close(up.hold)
		}
		for range n {
			if got := within(t, errs, "a held request's answer"); got != "200 fresh" {
				t.Errorf("held request: %s", got)
			}
		}
	}
	concurrently(4, true)
	for range 2 {
		within(t, up.closed, "a connection beyond the bound being closed")
	}
	if n := up.conns.Load(); n != 4 {
		t.Fatalf("%d connections, want 4", n)
	}
	// The two kept connections carry two concurrent requests.
	concurrently(2, false)
	if n := up.conns.Load(); n != 4 {
		t.Errorf("%d connections after reusing the kept ones, want 4", n)
	}
	select {
	case n := <-up.closed:
		t.Errorf("connection %d closed too; only two beyond the bound should be", n)
	default:
	}
}

// TestUpstreamHalfReadBody: a client that leaves in the middle of a body ends
// the upstream connection carrying it; the next request does not read the
// rest of that body as its answer.
func TestUpstreamHalfReadBody(t *testing.T) {
	iss := newIssuer(t)
	closed := make(chan struct{}, 1)
	up := newRawUpstream(t, func(n int32, c net.Conn, br *bufio.Reader) {
		for {
			r, ok := readRequest(br)
			if !ok {
				return
			}
			if r.URL.Path != "/endless" {
				io.WriteString(c, okAnswer)
				continue
			}
			// A body longer than any buffer between here and the client,
			// written until the proxy closes the connection.
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\n\r\n")
			chunk := strings.Repeat("x", 64<<10)
			for {
				if _, err := io.WriteString(c, chunk); err != nil {
					closed <- struct{}{}
					return
				}
			}
		}
	})
	srv := startProxy(t, up.url(), defaultConfig(t, iss), proxy.UpstreamOptions{})
	token := withScope(t, iss, "api")

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/endless", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1<<10)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // unread: the client closes its connection
	within(t, closed, "the upstream connection being closed")
	if resp, body := do(t, srv, request{path: "/next", token: token}); resp.StatusCode != 200 || body != "fresh" {
		t.Fatalf("next request: status %d body %q", resp.StatusCode, body)
	}
	if n := up.conns.Load(); n != 2 {
		t.Errorf("%d upstream connections, want 2", n)
	}
}

// TestUpstreamStandardTransport: StandardTransport sends every request
// through net/http's Transport, which reports the connection it got to the
// request's ClientTrace; the lean path does not.
func TestUpstreamStandardTransport(t *testing.T) {
	iss := newIssuer(t)
	up := newUpstream(t)
	token := withScope(t, iss, "api")
	for _, standard := range []bool{false, true} {
		p, err := proxy.New(up.URL, defaultConfig(t, iss), proxy.UpstreamOptions{StandardTransport: standard})
		if err != nil {
			t.Fatal(err)
		}
		var gotConn atomic.Bool
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) }})
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/x", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Body.String() != "upstream" {
			t.Fatalf("standard %v: status %d body %q", standard, rec.Code, rec.Body)
		}
		up.last(t)
		if gotConn.Load() != standard {
			t.Errorf("StandardTransport %v: net/http's Transport used: %v", standard, gotConn.Load())
		}
	}
}

// TestUpstreamOptionsNegative: a negative idle timeout or bound is a
// configuration error, not a silent default.
func TestUpstreamOptionsNegative(t *testing.T) {
	iss := newIssuer(t)
	for _, opts := range []proxy.UpstreamOptions{{IdleConnTimeout: -time.Second}, {MaxIdleConns: -1}} {
		if _, err := proxy.New("http://127.0.0.1:1", defaultConfig(t, iss), opts); err == nil {
			t.Errorf("New with %+v succeeded", opts)
		}
	}
}
