package denylist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/tokenward/tokenward/internal/filewatch"
	"github.com/tokenward/tokenward/internal/httpfetch"
)

// source is where a list comes from.
type source interface {
	// read returns the list's bytes, or nil when the source is known not
	// to have changed since the last read.
	read(ctx context.Context) ([]byte, error)
	// String names the source for logs.
	String() string
}

// fileSource reads a file when its stat says it may have changed
// (filewatch.File, shared with the binary's rules file). The content hash,
// compared by the List, decides whether it did.
type fileSource struct{ f *filewatch.File }

func (f fileSource) String() string { return f.f.Path() }

func (f fileSource) read(context.Context) ([]byte, error) {
	data, err := f.f.Read()
	if err != nil {
		return nil, fmt.Errorf("denylist: %w", err)
	}
	return data, nil
}

// urlSource fetches the list over HTTP, conditionally on its ETag.
type urlSource struct {
	url     string
	display string // url without its query, which may hold a credential
	client  *http.Client
	timeout time.Duration

	etag string // of the last 200 answer; only touched by read
}

func newURLSource(raw string, base *http.Client, timeout time.Duration, max int64) (*urlSource, error) {
	if err := httpfetch.CheckSourceURL(raw); err != nil {
		return nil, fmt.Errorf("denylist: URL: %w", err)
	}
	u, _ := url.Parse(raw) // checked above
	// The query may carry an access key: never shown.
	display := *u
	display.RawQuery, display.Fragment = "", ""
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	c := httpfetch.Client(base, max, func(r *url.URL) error {
		if !secure(r) {
			return errors.New("redirect to a URL that is not https")
		}
		return nil
	})
	return &urlSource{url: raw, display: display.String(), client: c, timeout: timeout}, nil
}

// secure reports whether u is https, or http on a loopback host. Unlike
// [httpfetch.CheckURL] it allows a query, which may carry an access key.
func secure(u *url.URL) bool {
	return u.Scheme == "https" || u.Scheme == "http" && httpfetch.IsLoopback(u.Hostname())
}

func (u *urlSource) String() string { return u.display }

func (u *urlSource) read(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, u.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.url, nil)
	if err != nil {
		return nil, fmt.Errorf("denylist: fetching %s: %w", u.display, err)
	}
	req.Header.Set("Accept", "application/json")
	if u.etag != "" {
		req.Header.Set("If-None-Match", u.etag)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("denylist: fetching %s: timed out after %v", u.display, u.timeout)
		}
		// Not the *url.Error itself: it quotes the whole URL, query included.
		inner := errors.Unwrap(err)
		if inner == nil {
			inner = err
		}
		return nil, fmt.Errorf("denylist: fetching %s: %w", u.display, inner)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && u.etag != "":
		return nil, nil
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("denylist: fetching %s: status %d", u.display, resp.StatusCode)
	}
	data, err := io.ReadAll(resp.Body) // limited to max by the client
	if err != nil {
		return nil, fmt.Errorf("denylist: fetching %s: %w", u.display, err)
	}
	u.etag = resp.Header.Get("ETag")
	return data, nil
}
