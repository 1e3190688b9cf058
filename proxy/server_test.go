package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenward/tokenward/proxy"
)

// TestNewServerHeaderLimit: headers up to the limit are served, a 1 MiB
// header gets 431 without reaching the handler.
func TestNewServerHeaderLimit(t *testing.T) {
	t.Parallel() // net/http lingers 500 ms closing after the 431
	reached := make(chan int, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- len(r.Header.Get("X-Big"))
	})
	ts := httptest.NewUnstartedServer(h)
	ts.Config = proxy.NewServer("127.0.0.1:0", h)
	ts.Start()
	t.Cleanup(ts.Close)

	for _, tc := range []struct {
		name string
		size int
		want int
	}{
		{"60 KiB", 60 << 10, 200},
		{"1 MiB", 1 << 20, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", hostOf(ts))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			// Write from another goroutine: the server answers 431 before
			// it has read the whole header, and may stop reading.
			go func() {
				io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", tc.size)+"\r\n\r\n")
			}()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 200 {
				if n := within(t, reached, "the handler"); n != tc.size {
					t.Errorf("handler saw %d bytes of header, want %d", n, tc.size)
				}
			} else if len(reached) > 0 {
				t.Error("the handler was reached")
			}
		})
	}
	srv := proxy.NewServer(":8080", h)
	if srv.ReadHeaderTimeout == 0 || srv.IdleTimeout == 0 || srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		t.Errorf("NewServer timeouts: read header %v, idle %v, read %v, write %v", srv.ReadHeaderTimeout, srv.IdleTimeout, srv.ReadTimeout, srv.WriteTimeout)
	}
}
