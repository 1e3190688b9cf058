package denylist

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenward/tokenward/internal/filewatch"
	"github.com/tokenward/tokenward/middleware"
)

// Defaults for the zero values of [Options].
const (
	DefaultInterval    = 5 * time.Second  // a file source
	DefaultURLInterval = 30 * time.Second // a URL source
	DefaultTimeout     = 10 * time.Second
	DefaultMaxBytes    = 16 << 20
	DefaultMaxEntries  = 1_000_000
)

// Options configures a [List]. Exactly one of File and URL is required; for
// the others the zero value is the default.
type Options struct {
	// File is the path of the list, re-read when it changes (its
	// modification time, size or content), which is checked every
	// Interval. A symbolic link is followed on every check, so a
	// Kubernetes ConfigMap update (which swaps a link) is seen.
	File string
	// URL is where the list is fetched from every Interval: https, or http
	// on a loopback host. The answer's ETag is sent back in If-None-Match,
	// so an unchanged list costs a 304.
	URL string
	// Interval is how often the source is checked. Zero means
	// [DefaultInterval] for a file and [DefaultURLInterval] for a URL (to
	// which ±10% jitter is added, so that replicas do not poll in step).
	Interval time.Duration
	// Timeout bounds one fetch of a URL. Zero means [DefaultTimeout].
	Timeout time.Duration
	// HTTPClient fetches the URL; redirects are followed only to https (or
	// loopback http) URLs. Nil means a client with http.DefaultTransport.
	HTTPClient *http.Client
	// MaxBytes bounds the list's size. Zero means [DefaultMaxBytes].
	MaxBytes int64
	// MaxEntries bounds the list's entries (jti and sub together). Zero
	// means [DefaultMaxEntries].
	MaxEntries int
	// Logger receives loads and reload failures. Nil means no logging.
	Logger *slog.Logger
	// OnReload, if set, is called after every reload that loaded a new list
	// (with nil) or failed (with the error); not when the source is
	// unchanged. It must not block. Tests wait on it; metrics can count
	// with it.
	OnReload func(err error)
}

// Status describes the list, for metrics and health checks.
type Status struct {
	Source       string    // the file, or the URL without its query
	Loaded       bool      // a list has been loaded at least once
	JTIs         int       // revoked token IDs in force
	Subjects     int       // revoked subjects in force
	LastReload   time.Time // when the list in force was loaded; zero before
	LastCheck    time.Time // when the source was last read successfully, changed or not
	LastError    error     // the last reload's error; nil once the source reads well again
	ReloadErrors uint64    // failed reloads since the start
}

// Entries is JTIs + Subjects.
func (s Status) Entries() int { return s.JTIs + s.Subjects }

// List is a deny list of access tokens, by "jti" and by subject, kept up to
// date from a file or a URL. [List.Revoked] is what
// [middleware.ValidatorOptions.Revoked] calls. It is safe for concurrent use.
type List struct {
	src        source
	interval   time.Duration
	jitter     bool
	maxBytes   int64
	maxEntries int
	log        *slog.Logger
	onReload   func(error)

	snap atomic.Pointer[snapshot] // the list in force; never nil

	// reloading serialises reloads (a polled one and one a test calls): a
	// one-slot semaphore, taken with a context, held across the read of the
	// source. It guards lastHash and lastBad. The request path never takes
	// it.
	reloading chan struct{}
	lastHash  [sha256.Size]byte // of the content last parsed, good or bad
	lastBad   bool              // that content did not parse

	mu      sync.Mutex // guards status, started, stop and done
	status  Status
	started bool
	stop    context.CancelFunc
	done    chan struct{} // closed when the polling goroutine has returned
}

// New returns a deny list reading from opts.File or opts.URL. Nothing is
// read until [List.Start] or [List.Reload]; until a list is loaded, nothing
// is revoked. Every configuration problem is reported at once.
func New(opts Options) (*List, error) {
	var errs []error
	switch {
	case opts.File == "" && opts.URL == "":
		errs = append(errs, errors.New("denylist: no source: set File or URL"))
	case opts.File != "" && opts.URL != "":
		errs = append(errs, errors.New("denylist: both File and URL set: choose one"))
	}
	if opts.Interval < 0 || opts.Timeout < 0 || opts.MaxBytes < 0 || opts.MaxEntries < 0 {
		errs = append(errs, errors.New("denylist: negative interval, timeout or limit"))
	}
	l := &List{
		interval:   opts.Interval,
		maxBytes:   opts.MaxBytes,
		maxEntries: opts.MaxEntries,
		log:        opts.Logger,
		onReload:   opts.OnReload,
		reloading:  make(chan struct{}, 1),
	}
	if l.maxBytes == 0 {
		l.maxBytes = DefaultMaxBytes
	}
	if l.maxEntries == 0 {
		l.maxEntries = DefaultMaxEntries
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case opts.File != "":
		l.src = fileSource{filewatch.New(opts.File, l.maxBytes)}
		l.status.Source = opts.File
		if l.interval == 0 {
			l.interval = DefaultInterval
		}
	case opts.URL != "":
		u, err := newURLSource(opts.URL, opts.HTTPClient, opts.Timeout, l.maxBytes)
		if err != nil {
			errs = append(errs, err)
		} else {
			l.src = u
			l.status.Source = u.display
		}
		if l.interval == 0 {
			l.interval, l.jitter = DefaultURLInterval, true
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	l.snap.Store(empty)
	return l, nil
}

// Revoked reports whether the token is on the list: its "jti" is listed, or
// its subject is listed with a before-time and the token was issued before
// it (or has no "iat"). It reads the list in force without a lock and does
// not allocate.
func (l *List) Revoked(c *middleware.Claims) bool {
	return l.snap.Load().revoked(c)
}

// Start loads the list, then checks the source every interval in a
// goroutine until ctx is done or [List.Close] is called. It returns the
// first load's error; polling goes on either way, so a source that comes
// back is picked up. A caller that must not run without the list (the safe
// choice: until it loads, nothing is revoked) stops on that error and calls
// Close. Start may be called once.
func (l *List) Start(ctx context.Context) error {
	l.mu.Lock()
	if l.started {
		l.mu.Unlock()
		return errors.New("denylist: already started")
	}
	l.started = true
	pctx, cancel := context.WithCancel(ctx)
	l.stop, l.done = cancel, make(chan struct{})
	l.mu.Unlock()

	err := l.Reload(pctx)
	go l.poll(pctx)
	return err
}

func (l *List) poll(ctx context.Context) {
	defer close(l.done)
	t := time.NewTimer(l.next())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.Reload(ctx) // logged and counted inside
			t.Reset(l.next())
		}
	}
}

// next is the wait before the next check: the interval, with ±10% jitter
// for a URL.
func (l *List) next() time.Duration {
	if !l.jitter {
		return l.interval
	}
	j := int64(l.interval / 10)
	return l.interval + time.Duration(rand.Int64N(2*j+1)-j)
}

// Close stops the polling goroutine and waits for it. The list in force
// stays in force. Close may be called more than once, and before Start.
func (l *List) Close() {
	l.mu.Lock()
	stop, done := l.stop, l.done
	l.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	<-done
}

// Reload reads the source now and, if it changed, loads the new list. A
// list that cannot be read or parsed leaves the list in force in place (before
// the first load there is none, and nothing is revoked, which the log says);
// the error, a [*LoadError], is returned, logged and counted ([Status.ReloadErrors]). Polling
// calls it; tests may too.
func (l *List) Reload(ctx context.Context) error {
	select {
	case l.reloading <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.reloading }()

	data, err := l.src.read(ctx)
	now := time.Now()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // stopped, not failed
		}
		return l.failed(loadError(l.src.String(), err))
	}
	if data == nil {
		l.unchanged(now)
		return nil
	}
	h := sha256.Sum256(data)
	if h == l.lastHash {
		l.unchanged(now)
		return nil
	}
	l.lastHash = h
	s, err := parse(data, l.maxEntries)
	if err != nil {
		l.lastBad = true
		return l.failed(loadError(l.src.String(), fmt.Errorf("%w (in %s)", err, l.src)))
	}
	l.lastBad = false
	l.snap.Store(s)

	l.mu.Lock()
	l.status.Loaded = true
	l.status.JTIs, l.status.Subjects = len(s.jti), len(s.sub)
	l.status.LastReload, l.status.LastCheck = now, now
	recovered := l.status.LastError != nil
	l.status.LastError = nil
	l.mu.Unlock()

	l.log.LogAttrs(ctx, slog.LevelInfo, "denylist: loaded", slog.String("source", l.src.String()),
		slog.Int("jti", len(s.jti)), slog.Int("sub", len(s.sub)), slog.Bool("recovered", recovered))
	if l.onReload != nil {
		l.onReload(nil)
	}
	return nil
}

// unchanged records a successful read of an unchanged source.
func (l *List) unchanged(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status.LastCheck = now
	if !l.lastBad && l.status.LastError != nil {
		l.status.LastError = nil
		l.log.Info("denylist: source readable again; the list in force is current", "source", l.src.String())
	}
}

// failed records a failed reload. The error is logged when it differs from
// the previous one, so a source that stays down does not flood the log; it
// is counted every time.
func (l *List) failed(err error) error {
	l.mu.Lock()
	prev := l.status.LastError
	l.status.LastError = err
	l.status.ReloadErrors++
	loaded := l.status.Loaded
	l.mu.Unlock()
	if prev == nil || prev.Error() != err.Error() {
		if loaded {
			l.log.Warn("denylist: reload failed; the list in force stays", "source", l.src.String(), "error", err.Error(), "loaded", loaded)
		} else {
			// Nothing to fall back on: say so, rather than promise a list.
			l.log.Warn("denylist: load failed; no list has loaded yet, so nothing is revoked", "source", l.src.String(), "error", err.Error(), "loaded", loaded)
		}
	}
	if l.onReload != nil {
		l.onReload(err)
	}
	return err
}

// Status returns the list's state.
func (l *List) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.status
}
