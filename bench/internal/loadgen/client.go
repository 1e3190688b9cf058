package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// Conn is a minimal HTTP/1.1 client on one kept-alive connection: it writes
// a request prepared in advance and reads the answer, discarding the body.
// It costs a fraction of net/http's client, so that the generator's core is
// not what limits the rate. It understands Content-Length and chunked bodies
// and redials after an error or a "Connection: close".
type Conn struct {
	addr    string
	timeout time.Duration
	c       net.Conn
	br      *bufio.Reader
}

// NewConn makes a client for addr (host:port); it dials on first use. timeout
// bounds each exchange.
func NewConn(addr string, timeout time.Duration) *Conn {
	return &Conn{addr: addr, timeout: timeout}
}

// Response is what the generator keeps of an answer.
type Response struct {
	Status     int
	Challenge  bool // a WWW-Authenticate header was present
	RetryAfter bool // a Retry-After header was present
	BodyBytes  int64
}

// Close closes the connection.
func (c *Conn) Close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// Do sends req (a whole HTTP/1.1 request: request line, headers, blank line)
// and reads the answer. After an error the connection is closed; the next Do
// dials again.
func (c *Conn) Do(req []byte) (Response, error) {
	resp, err := c.do(req)
	if err != nil {
		c.Close()
	}
	return resp, err
}

func (c *Conn) do(req []byte) (Response, error) {
	var resp Response
	if c.c == nil {
		nc, err := net.DialTimeout("tcp", c.addr, c.timeout)
		if err != nil {
			return resp, err
		}
		c.c = nc
		if c.br == nil {
			c.br = bufio.NewReaderSize(nc, 16<<10)
		} else {
			c.br.Reset(nc)
		}
	}
	if c.timeout > 0 {
		c.c.SetDeadline(time.Now().Add(c.timeout))
	}
	if _, err := c.c.Write(req); err != nil {
		return resp, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return resp, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return resp, fmt.Errorf("loadgen: bad status line %q", line)
	}
	resp.Status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return resp, fmt.Errorf("loadgen: bad status line %q", line)
	}
	length := int64(-1)
	chunked, closing := false, false
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return resp, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return resp, fmt.Errorf("loadgen: bad header line %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, err = strconv.ParseInt(string(value), 10, 64)
			if err != nil {
				return resp, fmt.Errorf("loadgen: bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte("WWW-Authenticate")):
			resp.Challenge = true
		case bytes.EqualFold(name, []byte("Retry-After")):
			resp.RetryAfter = true
		}
	}
	switch {
	case chunked:
		resp.BodyBytes, err = c.readChunked()
	case length >= 0:
		resp.BodyBytes, err = io.CopyN(io.Discard, c.br, length)
	case resp.Status == 204 || resp.Status == 304:
	default: // read to the end of the connection
		resp.BodyBytes, err = io.Copy(io.Discard, c.br)
		closing = true
	}
	if err != nil {
		return resp, err
	}
	if closing {
		c.Close()
	}
	return resp, nil
}

var errChunk = errors.New("loadgen: bad chunked body")

func (c *Conn) readChunked() (int64, error) {
	var n int64
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return n, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || size < 0 {
			return n, errChunk
		}
		if size == 0 {
			// Trailers, then the blank line.
			for {
				t, err := c.br.ReadSlice('\n')
				if err != nil {
					return n, err
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return n, nil
				}
			}
		}
		m, err := io.CopyN(io.Discard, c.br, size+2) // the chunk and its CRLF
		n += max(m-2, 0)
		if err != nil {
			return n, err
		}
	}
}

// Request formats a GET request for path on host with the given extra header
// lines (each "Name: value", without CRLF).
func Request(host, path string, headers ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tokenward-loadgen\r\n", path, host)
	for _, h := range headers {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}
