package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// holdConn opens a keep-alive connection to addr and has one request
// answered on it, so that the server has surely accepted it.
func holdConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(c, "GET /api/contacts HTTP/1.1\r\nHost: tokenward\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("held connection: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("held connection: status %d, want 401", resp.StatusCode)
	}
	c.SetDeadline(time.Time{})
	return c
}

// openFDs counts the descriptors of process pid.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	return len(ents)
}

// TestConnectionBound: with TOKENWARD_MAX_CONNECTIONS held, the next
// connection is answered 503 and closed at once (counted in /metrics);
// releasing one admits a new one; once all are closed, the process is back
// to the descriptors and goroutines it had.
func TestConnectionBound(t *testing.T) {
	t.Parallel()
	const bound = 8
	iss := newIssuer(t)
	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":         iss.URL(),
		"TOKENWARD_AUDIENCES":       audience,
		"TOKENWARD_UPSTREAM":        echoUpstream(t).URL,
		"TOKENWARD_MAX_CONNECTIONS": fmt.Sprint(bound),
	})
	addr := strings.TrimPrefix(srv.url, "http://")
	pid := srv.cmd.Process.Pid
	// The admin connection of srv.client is open from here on.
	goroutines, _ := metric(t, srv, "go_goroutines")
	fds := openFDs(t, pid)

	held := make([]net.Conn, bound)
	for i := range held {
		held[i] = holdConn(t, addr)
	}
	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetDeadline(time.Now().Add(waitTimeout))
	answer, err := io.ReadAll(over) // until the server closes it
	if err != nil {
		t.Fatalf("connection over the bound: %v after %q", err, answer)
	}
	if !strings.HasPrefix(string(answer), "HTTP/1.1 503 ") || !strings.Contains(string(answer), "Connection: close\r\n") {
		t.Fatalf("connection over the bound got %q, want a 503 with Connection: close", answer)
	}
	if v, _ := metric(t, srv, `tokenward_connections_refused_total{listener="main"}`); v != 1 {
		t.Errorf("refused connections %v, want 1", v)
	}
	if v, _ := metric(t, srv, `tokenward_connections_open{listener="main"}`); v != bound {
		t.Errorf("open connections %v, want %d", v, bound)
	}

	// Once the server has seen one close, a new connection is admitted.
	held[0].Close()
	deadline := time.Now().Add(waitTimeout)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(waitTimeout))
		io.WriteString(c, "GET /api/contacts HTTP/1.1\r\nHost: tokenward\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err == nil && resp.StatusCode == http.StatusUnauthorized {
			break
		}
		if err == nil && resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d after a release, want 401 (or 503 until the release is seen)", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection admitted after one was released: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling the server, which has no signal to wait on
	}

	for _, c := range held {
		c.Close()
	}
	waitMetric(t, srv, `tokenward_connections_open{listener="main"}`, func(v float64) bool { return v == 0 })
	waitMetric(t, srv, "go_goroutines", func(v float64) bool { return v <= goroutines })
	for deadline := time.Now().Add(waitTimeout); openFDs(t, pid) > fds; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open, %d before the connections", openFDs(t, pid), fds)
		}
	}
}

// TestConnectionBoundTLS: over the bound, a TLS listener closes the
// connection without a handshake; within it, TLS clients are served.
func TestConnectionBoundTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "tokenward test CA")
	leaf := ca.issue(t, "server", false)
	env := tlsEnv(t, "TOKENWARD_TLS_CERT_FILE", writeFile(t, "tls.crt", string(leaf.certPEM)),
		"TOKENWARD_TLS_KEY_FILE", writeFile(t, "tls.key", string(leaf.keyPEM)))
	env["TOKENWARD_MAX_CONNECTIONS"] = "2"
	srv := serveTLSBinary(t, env, ca.pool)
	addr := strings.TrimPrefix(srv.url, "https://")
	for range 2 {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetDeadline(time.Now().Add(waitTimeout))
	if answer, err := io.ReadAll(over); len(answer) != 0 || isTimeout(err) {
		t.Fatalf("connection over the bound: %q, %v; want closed without a byte", answer, err)
	}
	if v, _ := metric(t, srv, `tokenward_connections_refused_total{listener="main"}`); v != 1 {
		t.Errorf("refused connections %v, want 1", v)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestSlowClientsAreCut: a client that stops sending its headers or its
// body, or stops reading its answer, has its connection closed by the
// server after the configured timeout (300 ms here; the waits below allow
// 5 to 20 s, so only a timeout that is not applied fails).
func TestSlowClientsAreCut(t *testing.T) {
	t.Parallel()
	iss := newIssuer(t)
	token := mint(t, iss, nil)
	// An answer far larger than the socket buffers; the upstream reports
	// when tokenward stops taking it.
	stopped := make(chan error, 1)
	up := echoUpstream(t)
	big := http.NewServeMux()
	big.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 1<<20)
		for range 4 << 10 { // 4 GiB: never all taken
			if _, err := w.Write(chunk); err != nil {
				stopped <- err
				return
			}
		}
		stopped <- nil
	})
	big.Handle("/", up.Config.Handler)
	bigUp := &http.Server{Handler: big}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go bigUp.Serve(ln)
	t.Cleanup(func() { bigUp.Close() })

	srv := serveBinary(t, map[string]string{
		"TOKENWARD_ISSUERS":             iss.URL(),
		"TOKENWARD_AUDIENCES":           audience,
		"TOKENWARD_UPSTREAM":            "http://" + ln.Addr().String(),
		"TOKENWARD_READ_HEADER_TIMEOUT": "300ms",
		"TOKENWARD_BODY_READ_TIMEOUT":   "300ms",
		"TOKENWARD_SEND_TIMEOUT":        "300ms",
	})
	addr := strings.TrimPrefix(srv.url, "http://")
	dial := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(waitTimeout))
		return c
	}
	// closedByServer reads until the server closes c.
	closedByServer := func(t *testing.T, c net.Conn) string {
		t.Helper()
		got, err := io.ReadAll(c)
		if isTimeout(err) {
			t.Fatalf("the server did not close the connection (read %q)", got)
		}
		return string(got)
	}

	t.Run("headers trickled", func(t *testing.T) {
		c := dial(t)
		io.WriteString(c, "GET /api/contacts HTTP/1.1\r\nHost: tokenward\r\n")
		// One header line every 50 ms, faster than the timeout, never the
		// end of the headers.
		go func() {
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(c, "X-Slow-%d: a\r\n", i); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		// Sooner than the 10 s tokenward used to allow, still 16 times
		// the timeout configured.
		c.SetDeadline(time.Now().Add(5 * time.Second))
		closedByServer(t, c)
	})
	for _, tc := range []struct {
		name  string
		token string
		want  string
	}{
		// 408, or the proxy's 499 when net/http has seen the read fail
		// and ended the request's context first.
		{"body stalled, forwarded", token, "HTTP/1.1 4"},
		{"body stalled, refused", "", "HTTP/1.1 401 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t)
			auth := ""
			if tc.token != "" {
				auth = "Authorization: Bearer " + tc.token + "\r\n"
			}
			// 10 of the 1000 bytes announced, then nothing.
			io.WriteString(c, "POST /api/contacts HTTP/1.1\r\nHost: tokenward\r\n"+auth+"Content-Length: 1000\r\n\r\n0123456789")
			if got := closedByServer(t, c); !strings.HasPrefix(got, tc.want) {
				t.Errorf("answer %q, want %q…", got, tc.want)
			}
		})
	}
	t.Run("answer not read", func(t *testing.T) {
		c := dial(t)
		io.WriteString(c, "GET /big HTTP/1.1\r\nHost: tokenward\r\nAuthorization: Bearer "+token+"\r\n\r\n")
		// Not a byte read until the upstream sees tokenward give up.
		select {
		case err := <-stopped:
			if err == nil {
				t.Fatal("the whole answer was taken")
			}
		case <-time.After(waitTimeout):
			t.Fatalf("tokenward still takes the answer after %s", waitTimeout)
		}
		got := closedByServer(t, c)
		if !strings.HasPrefix(got, "HTTP/1.1 200 ") || len(got) >= 4<<30 {
			t.Errorf("read %d bytes, want the start of a 200 cut short", len(got))
		}
	})
}
