package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// MaxHeaderBytes bounds a request's headers; Go's server answers 431 beyond.
const MaxHeaderBytes = 64 << 10

// Defaults of [ServerOptions]: nginx's client_body_timeout for the body,
// and the header and idle timeouts tokenward has always had.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyReadTimeout   = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

// ServerOptions are the timeouts of [NewServerWith]. The zero value is the
// defaults; a negative duration means none.
type ServerOptions struct {
	// ReadHeaderTimeout is how long a client has to send a request's
	// headers (against slowloris). Zero means DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// BodyReadTimeout is the longest one read of a request body may wait
	// for the client's next bytes: a body trickled slower is cut (the
	// request fails, the connection is closed), an upload that keeps
	// moving lasts as long as it needs. Zero means DefaultBodyReadTimeout.
	BodyReadTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request. Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// NewServer is [NewServerWith] with the default options.
func NewServer(addr string, h http.Handler) *http.Server {
	return NewServerWith(addr, h, ServerOptions{})
}

// NewServerWith returns an http.Server with the limits a server facing
// clients needs: a header size limit, the timeouts of opts against clients
// that trickle their headers or body, and an idle timeout. No ReadTimeout or
// WriteTimeout, which bound a whole request or answer: long uploads,
// streamed bodies and server-sent events are not cut off while they move. A
// client that stops reading its answer is cut by the [Listener]'s
// SendTimeout.
func NewServerWith(addr string, h http.Handler, opts ServerOptions) *http.Server {
	orDefault := func(d, def time.Duration) time.Duration {
		switch {
		case d == 0:
			return def
		case d < 0:
			return 0 // none, for net/http
		}
		return d
	}
	if body := orDefault(opts.BodyReadTimeout, DefaultBodyReadTimeout); body > 0 {
		h = bodyTimeout(h, body)
	}
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: orDefault(opts.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		IdleTimeout:       orDefault(opts.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    MaxHeaderBytes - 4096, // net/http allows 4096 bytes of slack on top
	}
}

// bodyTimeout gives each read of a request body d to complete. Requests
// without a body (http.NoBody) are left alone, so they keep the upstream's
// lean path.
func bodyTimeout(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		s := &stallReader{ReadCloser: r.Body, rc: http.NewResponseController(w), d: d}
		r.Body = s
		// net/http reads a body the handler left unread before it answers
		// (to reuse the connection), with no deadline of its own: these
		// bound it, whenever it happens. A deadline that passes before
		// a read of the handler is harmless: each read moves it first.
		s.arm()
		h.ServeHTTP(w, r)
		if !s.done.Load() {
			s.arm()
		}
	})
}

// stallReader moves the connection's read deadline d ahead of each read.
// net/http clears it once the body is read (its background read) and sets
// its own before the next request's headers.
type stallReader struct {
	io.ReadCloser
	rc *http.ResponseController
	d  time.Duration
	// done: the body has ended, and a deadline now would cut net/http's
	// background read. Atomic: the upstream transport may still be reading
	// the body in its own goroutine when the handler returns.
	done atomic.Bool
}

func (s *stallReader) Read(p []byte) (int, error) {
	if s.done.Load() {
		return s.ReadCloser.Read(p)
	}
	s.arm()
	n, err := s.ReadCloser.Read(p)
	if err != nil {
		s.done.Store(true)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		err = fmt.Errorf("%w: %w", errBodyStalled, err)
	}
	return n, err
}

// errBodyStalled is a read of a request body cut by BodyReadTimeout: the
// proxy answers it 408, not as an upstream failure.
var errBodyStalled = errors.New("proxy: the client sent nothing of its body for BodyReadTimeout")

// arm sets the connection's read deadline d from now. An error means the
// connection cannot take one (a test recorder): reads go on without it.
func (s *stallReader) arm() { _ = s.rc.SetReadDeadline(time.Now().Add(s.d)) }
