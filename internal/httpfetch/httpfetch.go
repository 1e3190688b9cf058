// Package httpfetch holds what jwks, middleware, opaque and denylist share to
// read from an issuer or another server: the URL policy ([CheckURL],
// [CheckSourceURL]), an HTTP client whose response bodies are read through a
// size limit and whose redirects follow a policy, and OpenID Connect
// discovery through go-oidc on such a client.
//
// # Security
//
// Every URL tokenward fetches from, or trusts as an issuer, is https, or
// http only on a loopback host (127.0.0.0/8, [::1], localhost); a URL with
// user info is refused, and an issuer URL also with a query or fragment. A
// refused URL's error ([URLError]) never shows its user info, nor the query
// of a deny list URL: either may be a credential.
//
// A body larger than the limit fails with [ErrTooLarge], whether its
// Content-Length says so or it turns out so while read, so no caller (go-oidc
// included, which reads the discovery document whole) can be made to use
// unbounded memory. A redirect is followed only if the caller's policy
// accepts its URL, at most five times.
package httpfetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/coreos/go-oidc/v3/oidc"
)

// ErrTooLarge is the error of a response body larger than the limit.
var ErrTooLarge = errors.New("response body exceeds the size limit")

// Client returns a copy of base (nil means a client with
// http.DefaultTransport) whose response bodies are limited to maxBody bytes.
// redirect decides whether a redirect to a URL is followed; nil means none
// is: the redirect answer itself is returned.
func Client(base *http.Client, maxBody int64, redirect func(*url.URL) error) *http.Client {
	c := &http.Client{}
	if base != nil {
		*c = *base
	}
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = limitTransport{base: rt, max: maxBody}
	if redirect == nil {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	} else {
		c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return redirect(req.URL)
		}
	}
	return c
}

// limitTransport caps every response body.
type limitTransport struct {
	base http.RoundTripper
	max  int64
}

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, ErrTooLarge
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// At the limit: one more byte means the body is too large.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, ErrTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// Discover reads issuer's OpenID Connect discovery document with client
// (which should come from [Client]). go-oidc checks that the document's
// "issuer" equals issuer exactly. An answer other than 200 fails with
// "status N", without its body. The errors do not name a package: the caller
// prefixes its own.
func Discover(ctx context.Context, client *http.Client, issuer string) (*oidc.Provider, error) {
	c := *client
	c.Transport = statusTransport{c.Transport}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, &c), issuer)
	if err == nil {
		return p, nil
	}
	var mismatch *oidc.IssuerMismatchError
	switch {
	case errors.As(err, &mismatch):
		return nil, fmt.Errorf("discovery document names issuer %.200q, not %q", mismatch.Discovered, issuer)
	}
	return nil, fmt.Errorf("discovery for %s failed: %s", issuer, SafeError(err))
}

// statusTransport turns an answer that is neither 200 nor a redirect into the
// error "status N": go-oidc's own error would quote the answer's body.
type statusTransport struct{ base http.RoundTripper }

func (t statusTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rt := t.base
	if rt == nil {
		rt = http.DefaultTransport
	}
	resp, err := rt.RoundTrip(req)
	if err != nil || resp.StatusCode == http.StatusOK || resp.StatusCode/100 == 3 {
		return resp, err
	}
	resp.Body.Close()
	return nil, fmt.Errorf("status %d", resp.StatusCode)
}

// SafeError shortens an error for logs: transport errors can quote whole
// response bodies (go-oidc includes the body of a non-200 answer).
func SafeError(err error) string {
	switch {
	case errors.Is(err, ErrTooLarge):
		return ErrTooLarge.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
