package jwkstest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestHoldReleasedWhenClientGone calls the handler directly, so it can see
// the answer end, and write nothing, once the client's context is done.
func TestHoldReleasedWhenClientGone(t *testing.T) {
	iss := NewIssuerWithOptions(Options{Algorithm: "ES256"})
	defer iss.Close()
	iss.SetDelay(time.Hour)

	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, iss.JWKSURL(), nil)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		iss.srv.Handler.ServeHTTP(rec, req)
	}()
	if err := iss.WaitJWKSRequests(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("handler still holding the answer 10s after its client went away")
	}
	if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
		t.Errorf("abandoned answer wrote %v %q", rec.Header(), rec.Body)
	}
}
