package opaque

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tokenward/tokenward/middleware"
)

// flight makes concurrent checks of one token share one call to the issuer.
//
// The call runs in its own goroutine, under a context that keeps the first
// caller's values but not its cancellation, bounded by the timeout: a waiter
// that gives up (its client went away) leaves the others waiting for the
// answer, and only when every waiter has given up is the call cancelled. A
// call always ends by the timeout, so its goroutine never outlives it by
// more.
//
// slots bounds the calls in progress: a check that would start one more is
// refused at once (issuer_busy) rather than queued, so a flood of made-up
// tokens holds at most cap(slots) goroutines and connections to the issuer,
// and a check that joins a call in progress needs no slot.
type flight struct {
	mu    sync.Mutex // guards calls and every call's waiters
	calls map[key]*call
	slots chan struct{} // one element per call in progress
}

// call is one request to the issuer in progress. claims and err are written
// before done is closed and only read after.
type call struct {
	done    chan struct{}
	claims  *middleware.Claims // shared by the waiters: never modified
	err     error
	waiters int // guarded by flight.mu
	cancel  context.CancelFunc
}

// do returns the result of fn for k, starting fn unless a call for k is in
// progress, in which case it waits for that one. fn gets a context that ends
// after timeout, or when every waiter is gone. If ctx ends first, do returns
// an issuer_unavailable error wrapping ctx.Err(). If fn would be started but
// every slot is taken, do returns an issuer_busy error at once.
func (f *flight) do(ctx context.Context, k *key, timeout time.Duration, fn func(context.Context) (*middleware.Claims, error)) (*middleware.Claims, error) {
	if err := ctx.Err(); err != nil {
		return nil, &middleware.Error{Reason: middleware.ReasonIssuerUnavailable, Detail: "request ended before the issuer was asked", Err: err}
	}
	f.mu.Lock()
	if f.calls == nil {
		f.calls = make(map[key]*call)
	}
	c, ok := f.calls[*k]
	if !ok {
		select {
		case f.slots <- struct{}{}: // released by run
		default:
			f.mu.Unlock()
			return nil, &middleware.Error{Reason: middleware.ReasonIssuerBusy,
				Detail: fmt.Sprintf("%d calls to the issuer in progress, the most allowed; the issuer was not asked", cap(f.slots))}
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		c = &call{done: make(chan struct{}), cancel: cancel}
		f.calls[*k] = c
		go f.run(cctx, *k, c, fn)
	}
	c.waiters++
	f.mu.Unlock()

	select {
	case <-c.done:
		return c.claims, c.err
	case <-ctx.Done():
		f.mu.Lock()
		c.waiters--
		if c.waiters == 0 {
			// Nobody wants the answer any more. Forget the call at once, so
			// that a check arriving now starts a fresh one rather than
			// joining a cancelled one.
			c.cancel()
			if f.calls[*k] == c {
				delete(f.calls, *k)
			}
		}
		f.mu.Unlock()
		return nil, &middleware.Error{Reason: middleware.ReasonIssuerUnavailable, Detail: "request ended while waiting for the issuer", Err: ctx.Err()}
	}
}

// run makes the call. fn stores a usable answer in the cache before the call
// is forgotten here, so a check arriving in between either joins this call
// or finds the answer cached: never a second call.
func (f *flight) run(ctx context.Context, k key, c *call, fn func(context.Context) (*middleware.Claims, error)) {
	defer c.cancel()
	c.claims, c.err = fn(ctx)
	<-f.slots
	f.mu.Lock()
	if f.calls[k] == c {
		delete(f.calls, k)
	}
	f.mu.Unlock()
	close(c.done)
}
