package jwks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of [RemoteOptions].
const (
	DefaultRefreshInterval    = 5 * time.Minute
	DefaultMinRefreshInterval = 10 * time.Second
	DefaultTimeout            = 10 * time.Second
	DefaultMaxBodyBytes       = 1 << 20
)

// RemoteOptions tunes a [Remote]. The zero value is a sound default.
type RemoteOptions struct {
	// Client makes the requests. Nil means a client of its own. Either way
	// its transport is wrapped with the body size limit and redirects are
	// followed only to https (or loopback http) URLs.
	Client *http.Client
	// RefreshInterval is how often the set is fetched in the background. A
	// Cache-Control max-age from the issuer shortens it, down to
	// MinRefreshInterval. Zero means [DefaultRefreshInterval].
	RefreshInterval time.Duration
	// MinRefreshInterval is the least time between two fetches: an unknown
	// key ID, or a failing issuer, causes at most one fetch per interval.
	// Zero means [DefaultMinRefreshInterval].
	MinRefreshInterval time.Duration
	// Timeout bounds one fetch, discovery included. Zero means [DefaultTimeout].
	Timeout time.Duration
	// MaxBodyBytes bounds a discovery document or key set. Zero means
	// [DefaultMaxBodyBytes].
	MaxBodyBytes int64
	// Logger receives refresh failures and dropped keys. Nil discards.
	Logger *slog.Logger
	// OnRefresh, if set, is called after every fetch attempt. It must not
	// block. Metrics need not use it: [Remote.Status] counts the fetches.
	OnRefresh func(RefreshEvent)
}

// RefreshEvent reports one fetch attempt.
type RefreshEvent struct {
	URL      string        // key set URL, or the issuer while discovery is failing
	Err      error         // nil on success
	Keys     int           // keys loaded (after success) or kept (after failure)
	Duration time.Duration // time the attempt took
	// Dropped says why each key of the fetched set that is not used was
	// dropped (also logged), for a metric; never key material.
	Dropped []string
}

// Status is a readiness view of one key set.
type Status struct {
	URL         string    // key set URL ("" while discovery has not succeeded)
	Loaded      bool      // keys have been loaded at least once
	Keys        int       // keys in the current set
	LastRefresh time.Time // last successful fetch (zero if none)
	LastAttempt time.Time // last fetch attempt (zero if none)
	LastError   string    // error of the last attempt, "" if it succeeded
	Failures    int       // consecutive failed attempts

	// Counts since the set was created, for metrics read at scrape time
	// (a collector needs no event hook, and misses no early fetch). A fetch
	// cut short by Close is not counted.
	FetchesOK     uint64 // successful fetches
	FetchesFailed uint64 // failed fetch attempts (discovery included)
	Dropped       int    // keys the last successful fetch did not use (logged with the reason)
}

// Remote is a key set fetched from an issuer and kept fresh. It is safe for
// concurrent use. Create it with [NewRemote] or [NewDiscovered]; stop its
// background refresh with [Remote.Close].
type Remote struct {
	issuer   string // set when the key set URL comes from discovery
	opts     RemoteOptions
	client   *http.Client
	keys     atomic.Pointer[keys]
	stop     context.CancelFunc
	baseCtx  context.Context
	wg       sync.WaitGroup
	closeOne sync.Once

	mu sync.Mutex // guards the fields below
	// inflight is the fetch under way, which every caller that needs one joins.
	inflight *fetch
	status   Status
	// nextAge is the max-age of the last successful answer.
	nextAge time.Duration
}

// fetch is one attempt shared by everyone waiting for it.
type fetch struct {
	done chan struct{}
}

// NewRemote returns a key set fetched from jwksURL, which must be https (or
// http on a loopback host). The first fetch starts at once in the background.
func NewRemote(jwksURL string, opts RemoteOptions) (*Remote, error) {
	if err := CheckURL(jwksURL); err != nil {
		return nil, err
	}
	r := newRemote(opts)
	r.status.URL = jwksURL
	r.start()
	return r, nil
}

// NewDiscovered returns a key set whose URL is found by OpenID Connect
// discovery of issuer (its /.well-known/openid-configuration, whose "issuer"
// must equal issuer exactly). Discovery is retried until it succeeds.
func NewDiscovered(issuer string, opts RemoteOptions) (*Remote, error) {
	if err := CheckURL(issuer); err != nil {
		return nil, err
	}
	r := newRemote(opts)
	r.issuer = issuer
	r.start()
	return r, nil
}

func newRemote(opts RemoteOptions) *Remote {
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.MinRefreshInterval <= 0 {
		opts.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if opts.MinRefreshInterval > opts.RefreshInterval {
		opts.MinRefreshInterval = opts.RefreshInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Remote{opts: opts, client: newClient(opts.Client, opts.Timeout, opts.MaxBodyBytes)}
	r.baseCtx, r.stop = context.WithCancel(context.Background())
	return r
}

// start runs the background refresh loop, owned by r and ended by Close.
func (r *Remote) start() {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			f, ok := r.join(true)
			if !ok {
				return // closed between the timer firing and join
			}
			select {
			case <-f.done:
			case <-r.baseCtx.Done():
				return
			}
			t := time.NewTimer(r.nextRefresh())
			select {
			case <-t.C:
			case <-r.baseCtx.Done():
				t.Stop()
				return
			}
		}
	}()
}

// Close stops the background refresh and waits for a fetch under way to end.
// Lookups still answer from the last keys.
func (r *Remote) Close() {
	r.closeOne.Do(func() {
		r.stop()
		r.wg.Wait()
	})
}

// Key returns the key with the given ID. A cached key is returned at once. An
// unknown ID waits for a fetch — one under way, or a new one if the last
// attempt is older than MinRefreshInterval — and otherwise fails with
// [ErrKeyNotFound] at once. [ErrUnavailable] means no keys were ever loaded.
func (r *Remote) Key(ctx context.Context, kid string) (Key, error) {
	if k := r.keys.Load(); k != nil {
		if key, ok := k.lookup(kid); ok {
			return key, nil
		}
	}
	f, ok := r.join(false)
	if ok {
		select {
		case <-f.done:
		case <-ctx.Done():
		}
	}
	k := r.keys.Load()
	if k == nil {
		return Key{}, ErrUnavailable
	}
	if key, ok := k.lookup(kid); ok {
		return key, nil
	}
	return Key{}, ErrKeyNotFound
}

// Status reports the state of the set.
func (r *Remote) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	if k := r.keys.Load(); k != nil {
		s.Loaded, s.Keys = true, k.len()
	}
	return s
}

// join returns the fetch under way, or starts one. Unless scheduled (the
// background loop), it starts one only if the last attempt is older than
// MinRefreshInterval; ok is false when there is nothing to wait for.
func (r *Remote) join(scheduled bool) (f *fetch, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight != nil {
		return r.inflight, true
	}
	if r.baseCtx.Err() != nil {
		return nil, false
	}
	if !scheduled && !r.status.LastAttempt.IsZero() && time.Since(r.status.LastAttempt) < r.opts.MinRefreshInterval {
		return nil, false
	}
	f = &fetch{done: make(chan struct{})}
	r.inflight = f
	r.status.LastAttempt = time.Now()
	r.wg.Add(1)
	// The fetch runs on r's own context, not a request's, so one waiter
	// giving up does not cancel it for the others.
	go func() {
		defer r.wg.Done()
		r.refresh()
		r.mu.Lock()
		r.inflight = nil
		r.mu.Unlock()
		close(f.done)
	}()
	return f, true
}

// refresh fetches the set once and records the outcome. It never holds r.mu
// across network I/O.
func (r *Remote) refresh() {
	start := time.Now()
	ctx, cancel := context.WithTimeout(r.baseCtx, r.opts.Timeout)
	defer cancel()

	r.mu.Lock()
	jwksURL := r.status.URL
	r.mu.Unlock()

	var err error
	if jwksURL == "" {
		jwksURL, err = discover(ctx, r.client, r.issuer)
		if err == nil {
			r.mu.Lock()
			r.status.URL = jwksURL
			r.mu.Unlock()
		}
	}
	var (
		k       *keys
		dropped []string
		age     time.Duration
	)
	if err == nil {
		k, dropped, age, err = fetchSet(ctx, r.client, jwksURL)
	}
	for _, d := range dropped {
		r.opts.Logger.Warn("jwks: key dropped", "url", jwksURL, "reason", d)
	}
	event := RefreshEvent{URL: jwksURL, Err: err, Duration: time.Since(start), Dropped: dropped}
	if event.URL == "" {
		event.URL = r.issuer
	}

	closing := err != nil && errors.Is(err, context.Canceled) && r.baseCtx.Err() != nil
	r.mu.Lock()
	if err != nil {
		r.status.LastError = err.Error()
		r.status.Failures++
		r.nextAge = 0
		if !closing {
			r.status.FetchesFailed++
		}
	} else {
		r.keys.Store(k)
		r.status.LastRefresh = time.Now()
		r.status.LastError = ""
		r.status.Failures = 0
		r.status.FetchesOK++
		r.status.Dropped = len(dropped)
		r.nextAge = age
	}
	if cur := r.keys.Load(); cur != nil {
		event.Keys = cur.len()
	}
	failures := r.status.Failures
	r.mu.Unlock()

	if err != nil {
		if closing {
			return
		}
		r.opts.Logger.Warn("jwks: refresh failed; keeping the last good keys",
			"url", event.URL, "error", err.Error(), "consecutive_failures", failures, "keys_kept", event.Keys)
	}
	if r.opts.OnRefresh != nil {
		r.opts.OnRefresh(event)
	}
}

// nextRefresh is the delay before the next background fetch: the issuer's
// max-age within [MinRefreshInterval, RefreshInterval] after a success,
// MinRefreshInterval after a failure so that recovery is noticed quickly.
func (r *Remote) nextRefresh() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status.Failures > 0 {
		return r.opts.MinRefreshInterval
	}
	d := r.opts.RefreshInterval
	if r.nextAge > 0 {
		d = min(max(r.nextAge, r.opts.MinRefreshInterval), r.opts.RefreshInterval)
	}
	return d
}

// String names the set for logs.
func (r *Remote) String() string {
	s := r.Status()
	if s.URL != "" {
		return fmt.Sprintf("jwks.Remote(%s)", s.URL)
	}
	return fmt.Sprintf("jwks.Remote(discovery of %s)", r.issuer)
}
