package httpfetch_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tokenward/tokenward/internal/httpfetch"
)

func TestClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/small", http.StatusFound)
		case "/chunked":
			w.Write([]byte(strings.Repeat("x", 50)))
			w.(http.Flusher).Flush()
			w.Write([]byte(strings.Repeat("x", 50)))
		case "/large":
			w.Write([]byte(strings.Repeat("x", 100)))
		default:
			w.Write([]byte("ok"))
		}
	}))
	defer srv.Close()
	get := func(c *http.Client, path string) (int, error) {
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return resp.StatusCode, err
	}
	limited := httpfetch.Client(nil, 64, func(*url.URL) error { return nil })
	for _, path := range []string{"/large", "/chunked"} {
		if _, err := get(limited, path); !errors.Is(err, httpfetch.ErrTooLarge) {
			t.Errorf("%s: %v, want ErrTooLarge", path, err)
		}
	}
	if status, err := get(limited, "/moved"); err != nil || status != http.StatusOK {
		t.Errorf("redirect allowed: %d %v", status, err)
	}
	refused := errors.New("refused")
	if _, err := get(httpfetch.Client(nil, 64, func(*url.URL) error { return refused }), "/moved"); !errors.Is(err, refused) {
		t.Errorf("redirect refused: %v", err)
	}
	if status, err := get(httpfetch.Client(nil, 64, nil), "/moved"); err != nil || status != http.StatusFound {
		t.Errorf("no redirect policy: %d %v, want the 302 itself", status, err)
	}
}

func TestDiscover(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "secret body", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	_, err := httpfetch.Discover(context.Background(), httpfetch.Client(nil, 1<<10, nil), srv.URL+"/")
	if err == nil || !strings.Contains(err.Error(), "status 503") || strings.Contains(err.Error(), "secret body") {
		t.Errorf("got %v, want status 503 without the body", err)
	}
}
