package proxy_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"

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
// connection to the upstream, HEAD included, until the upstream says
// Connection: close.
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

	for i := range 10 {
		method := http.MethodGet
		if i%3 == 1 {
			method = http.MethodHead
		}
		resp, body := do(t, srv, request{method: method, path: "/x", token: token})
		if resp.StatusCode != 200 || method == http.MethodGet && body != "upstream" {
			t.Fatalf("%s: status %d body %q", method, resp.StatusCode, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("10 requests opened %d upstream connections, want 1", n)
	}
	do(t, srv, request{path: "/close", token: token})
	if resp, body := do(t, srv, request{path: "/after", token: token}); resp.StatusCode != 200 || body != "upstream" {
		t.Fatalf("after Connection: close: status %d body %q", resp.StatusCode, body)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("after the upstream's Connection: close, %d connections in all, want 2", n)
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
