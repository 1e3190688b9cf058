package proxy

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxConnections is [ListenerOptions.MaxConnections] when zero: an
// idle keep-alive connection of tokenward holds about 19 KiB (goroutine
// stack, buffers; BENCHMARKS.md, "Connections"), so 10,000 of them about
// 190 MiB, and need 10,000 descriptors, under the limit Go raises itself to
// (the hard limit, usually 2^20 in a container).
const DefaultMaxConnections = 10000

// DefaultSendTimeout is [ListenerOptions.SendTimeout] when zero, nginx's
// send_timeout.
const DefaultSendTimeout = 60 * time.Second

// ListenerOptions bound what the clients of a [Listener] can hold. The zero
// value is the defaults.
type ListenerOptions struct {
	// MaxConnections is how many connections may be open at once. One
	// accepted beyond it is refused at once (see Answer503), never queued,
	// so that a flood of connections costs a descriptor for an instant,
	// not memory. Zero means DefaultMaxConnections; negative, no bound.
	MaxConnections int
	// Answer503 makes a refused connection get a minimal HTTP/1.1 503 with
	// Connection: close before it is closed, for a listener serving plain
	// HTTP. False closes it without a word: right for TLS, where a
	// handshake would cost what the bound is there to save.
	Answer503 bool
	// SendTimeout is the longest one write to a connection may wait for
	// the client to take the bytes (a client that reads nothing of its
	// answer, or of a stream): then the connection is closed. It bounds a
	// stalled write, not an answer or a stream, which may last as long as
	// data keeps moving. Zero means DefaultSendTimeout; negative, none.
	SendTimeout time.Duration
}

// Listener is a net.Listener that bounds its open connections and the time
// a write to one may stall. See [NewListener].
type Listener struct {
	net.Listener
	max         int64 // <= 0: no bound
	answer503   bool
	sendTimeout time.Duration // <= 0: none

	open    atomic.Int64
	refused atomic.Uint64
}

// NewListener wraps ln with the bounds of opts. Wrap the TCP listener, under
// any TLS: the bound counts connections, handshakes or not.
func NewListener(ln net.Listener, opts ListenerOptions) *Listener {
	l := &Listener{Listener: ln, max: int64(opts.MaxConnections), answer503: opts.Answer503, sendTimeout: opts.SendTimeout}
	if opts.MaxConnections == 0 {
		l.max = DefaultMaxConnections
	}
	if opts.SendTimeout == 0 {
		l.sendTimeout = DefaultSendTimeout
	}
	return l
}

// overBoundAnswer is the whole answer to a connection over the bound.
const overBoundAnswer = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n"

// Accept returns the next connection within the bound, refusing (and
// counting) those beyond it on the way.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.open.Add(1); l.max > 0 && n > l.max {
			l.open.Add(-1)
			l.refused.Add(1)
			l.refuse(c)
			continue
		}
		return &conn{Conn: c, l: l}, nil
	}
}

// refuse answers and closes c on the accepting goroutine: a few bytes into
// an empty socket buffer do not block, and the deadline makes sure of it.
// A client that has already sent its request may see a reset rather than
// the answer (the kernel resets a connection closed with unread data).
func (l *Listener) refuse(c net.Conn) {
	if l.answer503 {
		c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
		c.Write([]byte(overBoundAnswer))
	}
	c.Close()
}

// Open returns the connections open now.
func (l *Listener) Open() int64 { return l.open.Load() }

// Refused returns the connections refused for being over the bound.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// conn is an accepted connection: it frees its place on Close, and gives
// each write SendTimeout to complete.
type conn struct {
	net.Conn
	l      *Listener
	closed sync.Once
}

func (c *conn) Write(p []byte) (int, error) {
	if c.l.sendTimeout > 0 {
		// net/http sets no write deadline of its own without a
		// WriteTimeout, which NewServer leaves unset.
		c.Conn.SetWriteDeadline(time.Now().Add(c.l.sendTimeout))
	}
	return c.Conn.Write(p)
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.closed.Do(func() { c.l.open.Add(-1) })
	return err
}
