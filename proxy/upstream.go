package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"
)

// leanTransport carries the common proxied request — no body, no upgrade,
// plain HTTP/1.1 — to the upstream on the request's own goroutine, over
// kept-alive connections it pools. net/http's Transport gives every
// connection a reader and a writer goroutine and hands each request and
// response across them; beside one local upstream that hand-off is about a
// quarter of a proxy's CPU per request (BENCHMARKS.md). Anything else —
// bodies, upgrades — goes to the full Transport.
//
// net/http still writes the request (Request.Write) and parses the response
// (ReadResponse), as inside its Transport; what is ours is the pool, the
// bounds and when a connection may be reused.
type leanTransport struct {
	dial                  func(ctx context.Context) (net.Conn, error)
	fallback              http.RoundTripper
	responseHeaderTimeout time.Duration
	idleTimeout           time.Duration
	maxIdle               int

	mu     sync.Mutex
	idle   []*leanConn // the most recently used last
	reaper *time.Timer // closes connections idle too long; nil when idle is empty
}

const (
	// maxResponseHeaderBytes bounds an upstream's status line and headers.
	maxResponseHeaderBytes = 1 << 20
	// max1xxResponses bounds the informational answers before the final one.
	max1xxResponses = 5
)

// leanConn is a pooled connection to the upstream.
type leanConn struct {
	conn   net.Conn
	br     *bufio.Reader // reads through Read, within limit
	bw     *bufio.Writer
	limit  int64     // bytes br may still read; bounds the response header
	idleAt time.Time // when it was put back in the pool
}

// Read is where br reads from: the connection, within limit.
func (pc *leanConn) Read(p []byte) (int, error) {
	if pc.limit <= 0 {
		return 0, errors.New("proxy: upstream response header too large")
	}
	if int64(len(p)) > pc.limit {
		p = p[:pc.limit]
	}
	n, err := pc.conn.Read(p)
	pc.limit -= int64(n)
	return n, err
}

func newLeanConn(c net.Conn) *leanConn {
	pc := &leanConn{conn: c, bw: bufio.NewWriterSize(c, 4<<10)}
	pc.br = bufio.NewReaderSize(pc, 4<<10)
	return pc
}

// errNoAnswer wraps a failure before the upstream sent any byte of an answer:
// on a pooled connection, the upstream most likely closed it while idle.
type errNoAnswer struct{ err error }

func (e errNoAnswer) Error() string { return e.err.Error() }
func (e errNoAnswer) Unwrap() error { return e.err }

func (t *leanTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !leanEligible(req) {
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	pooled := true
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pc, reused, err := t.conn(ctx, pooled)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(ctx, pc, req)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A pooled connection the upstream closed just after it was checked
		// fails before any answer; a request that is safe to send again gets
		// one new connection, as net/http's Transport would retry it.
		var na errNoAnswer
		if reused && pooled && errors.As(err, &na) && !isTimeout(err) && replayable(req) {
			pooled = false
			continue
		}
		return nil, err
	}
}

// leanEligible reports whether the lean path can carry r: a request without
// a body (its write cannot race the upstream's early answer) and without an
// upgrade (whose connection becomes the client's).
func leanEligible(r *http.Request) bool {
	return r.URL.Scheme == "http" && (r.Body == nil || r.Body == http.NoBody) && r.ContentLength == 0 &&
		len(r.TransferEncoding) == 0 && len(r.Header["Upgrade"]) == 0
}

// replayable reports whether r may be sent again after a pooled connection
// failed before any answer: net/http's rule (Request.isReplayable) — GET,
// HEAD, OPTIONS, TRACE, or any method with an Idempotency-Key or
// X-Idempotency-Key header, and no body that could not be sent again. Not
// PUT or DELETE: idempotent by RFC 9110, but an upstream may not implement
// them so, and the first copy may have been carried out. (net/http also
// retries any request of which not one byte was written; the lean path
// does not, and answers 502 in that rare race instead.)
func replayable(r *http.Request) bool {
	if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
		return false
	}
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, key := r.Header["Idempotency-Key"]
	_, xkey := r.Header["X-Idempotency-Key"]
	return key || xkey
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// conn returns a pooled connection (reused) or a new one. A pooled one is
// used only if the upstream has neither closed it nor sent anything on it
// while it was idle: bytes nobody asked for would be read as the answer to
// another client's request.
func (t *leanTransport) conn(ctx context.Context, pooled bool) (pc *leanConn, reused bool, err error) {
	if pooled {
		var now time.Time
		t.mu.Lock()
		for n := len(t.idle); n > 0; n = len(t.idle) {
			pc = t.idle[n-1]
			t.idle[n-1] = nil
			t.idle = t.idle[:n-1]
			t.mu.Unlock()
			if now.IsZero() {
				now = time.Now()
			}
			if now.Sub(pc.idleAt) < t.idleTimeout && stillOpen(pc.conn) {
				return pc, true, nil
			}
			pc.conn.Close()
			t.mu.Lock()
		}
		t.mu.Unlock()
	}
	c, err := t.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	return newLeanConn(c), false, nil
}

// exchange sends req on pc and reads the answer's header. The body is read
// by the caller through the returned response; pc goes back to the pool, or
// is closed, when it is done.
func (t *leanTransport) exchange(ctx context.Context, pc *leanConn, req *http.Request) (*http.Response, error) {
	// A request whose client went away must not wait on the upstream: a
	// past deadline fails the read or write in progress.
	stop := context.AfterFunc(ctx, func() { pc.conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		pc.conn.Close()
		return nil, err
	}
	if err := req.Write(pc.bw); err != nil {
		return fail(errNoAnswer{err})
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(errNoAnswer{err})
	}
	if t.responseHeaderTimeout > 0 {
		pc.conn.SetReadDeadline(time.Now().Add(t.responseHeaderTimeout))
	}
	pc.limit = maxResponseHeaderBytes
	if _, err := pc.br.Peek(1); err != nil {
		return fail(errNoAnswer{err})
	}
	var resp *http.Response
	for n := 0; ; n++ {
		var err error
		if resp, err = http.ReadResponse(pc.br, req); err != nil {
			return fail(err)
		}
		code := resp.StatusCode
		if code >= 200 {
			break
		}
		if code == http.StatusSwitchingProtocols {
			return fail(errors.New("proxy: upstream switched protocols without an upgrade request"))
		}
		if n == max1xxResponses {
			return fail(fmt.Errorf("proxy: upstream sent more than %d informational responses", max1xxResponses))
		}
		// ReverseProxy forwards 1xx answers (103 Early Hints) through this hook.
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(err)
			}
		}
	}
	pc.limit = math.MaxInt64
	if t.responseHeaderTimeout > 0 {
		pc.conn.SetReadDeadline(time.Time{})
		if err := ctx.Err(); err != nil {
			return fail(err) // the deadline set on cancellation may just have been cleared
		}
	}
	// An answer that must not have a body (to HEAD, 204, 304) ends the
	// connection's use: an upstream that sends one anyway may send it after
	// the peek in conn has looked, and it would be read as the answer to the
	// next request, which may be another client's.
	reusable := !resp.Close && !req.Close && !bodiless(req.Method, resp.StatusCode)
	if resp.Body == http.NoBody {
		t.release(pc, reusable, stop)
		return resp, nil
	}
	resp.Body = &leanBody{body: resp.Body, pc: pc, t: t, stop: stop, reusable: reusable}
	return resp, nil
}

// bodiless reports whether the answer to a request of method with status
// code has no body by definition (RFC 9112 §6.3), whatever its headers say.
func bodiless(method string, code int) bool {
	return method == http.MethodHead || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified
}

// release ends an exchange: pc goes back to the pool when its answer was read
// whole, may be reused, and nothing is left unread; otherwise it is closed.
func (t *leanTransport) release(pc *leanConn, reuse bool, stop func() bool) {
	if !stop() {
		reuse = false // the context ended: pc's deadline is spoilt
	}
	if !reuse || pc.br.Buffered() != 0 {
		pc.conn.Close()
		return
	}
	pc.idleAt = time.Now()
	t.mu.Lock()
	if len(t.idle) >= t.maxIdle {
		t.mu.Unlock()
		pc.conn.Close()
		return
	}
	t.idle = append(t.idle, pc)
	if t.reaper == nil {
		t.reaper = time.AfterFunc(t.idleTimeout, t.reap)
	}
	t.mu.Unlock()
}

// reap closes the connections idle longer than the idle timeout, the oldest
// first in the pool, and runs again while any remain.
func (t *leanTransport) reap() {
	now := time.Now()
	var expired []*leanConn
	t.mu.Lock()
	n := 0
	for n < len(t.idle) && now.Sub(t.idle[n].idleAt) >= t.idleTimeout {
		n++
	}
	expired = append(expired, t.idle[:n]...)
	t.idle = append(t.idle[:0], t.idle[n:]...)
	clear(t.idle[len(t.idle):cap(t.idle)])
	t.reaper = nil
	if len(t.idle) > 0 {
		t.reaper = time.AfterFunc(t.idleTimeout-now.Sub(t.idle[0].idleAt), t.reap)
	}
	t.mu.Unlock()
	for _, pc := range expired {
		pc.conn.Close()
	}
}

// leanBody is a response body on the lean path: at its end the connection is
// released.
type leanBody struct {
	body     io.Reader // net/http's reader of the body, which stops at its end
	pc       *leanConn
	t        *leanTransport
	stop     func() bool
	reusable bool

	mu   sync.Mutex // guards done: Close may come from another goroutine
	done bool
}

func (b *leanBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
	}
	return n, err
}

// Close closes the connection unless the body was read to its end. It does
// not close net/http's reader, which would read the rest of the body first.
func (b *leanBody) Close() error {
	b.finish(false)
	return nil
}

func (b *leanBody) finish(whole bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	b.t.release(b.pc, whole && b.reusable, b.stop)
}
