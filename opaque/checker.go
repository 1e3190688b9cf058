package opaque

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/tokenward/tokenward/internal/httpfetch"
	"github.com/tokenward/tokenward/middleware"
)

// Defaults for the zero values of [IntrospectorOptions] and
// [UserInfoOptions].
const (
	DefaultTimeout       = 5 * time.Second
	DefaultCacheTTL      = 5 * time.Minute
	DefaultNegativeTTL   = 10 * time.Second
	DefaultMaxEntries    = 100000
	DefaultCacheMaxBytes = 64 << 20
	// DefaultMaxConcurrency bounds the calls to the issuer in progress at
	// once: enough for a burst of new users against an issuer answering in
	// 100 ms (about 300 checks a second), few enough that a flood of
	// made-up tokens cannot open hundreds of connections to it.
	DefaultMaxConcurrency = 32
)

// The results an [IntrospectorOptions.OnCheck] hook is called with: a small
// fixed set, safe as a metric label.
const (
	ResultActive   = "active"   // the issuer vouches for the token
	ResultInactive = "inactive" // the issuer does not, or its answer is refused
	ResultError    = "error"    // the issuer could not be asked, or was not (too many calls in progress)
)

// maxBody bounds an answer of the issuer: introspection answers and
// profiles are a few hundred bytes.
const maxBody = 1 << 20

// maxToken bounds the token sent to the issuer. The validator's own limit
// ([middleware.ValidatorOptions.MaxTokenBytes]) is usually far lower.
const maxToken = 64 << 10

// Stats counts what a checker did, for metrics.
type Stats struct {
	Calls   uint64 // requests made to the issuer
	Hits    uint64 // checks answered from the cache
	Misses  uint64 // checks that needed the issuer (shared calls, Busy and Stale included)
	Errors  uint64 // calls that failed: the issuer could not be asked, or its answer was unusable
	Busy    uint64 // checks refused without a call: MaxConcurrency calls were in progress
	Stale   uint64 // checks Busy would count, answered with an active answer past CacheTTL (StaleIfBusy)
	Entries int    // answers cached now, expired ones not yet evicted included
}

// settings are the options the two checkers share: as given to
// [newSettings], then with the defaults applied.
type settings struct {
	issuer      string
	timeout     time.Duration
	ttl, negTTL time.Duration // <= 0: that kind of answer is not cached
	staleIfBusy time.Duration // after ttl, while no slot is free; <= 0: never
	maxEntries  int
	maxBytes    int64
	concurrency int // calls to the issuer in progress at once, at most
	client      *http.Client
	log         *slog.Logger
	onCheck     func(result string, cached bool)
	now         func() time.Time
}

// newSettings checks the shared options and applies their defaults. It
// returns every problem.
func newSettings(what, endpoint string, s settings) (settings, []error) {
	var errs []error
	if err := httpfetch.CheckURL(endpoint); err != nil {
		errs = append(errs, fmt.Errorf("opaque: %s endpoint: %w", what, err))
	}
	if s.issuer == "" {
		errs = append(errs, fmt.Errorf("opaque: %s: no issuer", what))
	} else if err := httpfetch.CheckURL(s.issuer); err != nil {
		errs = append(errs, fmt.Errorf("opaque: %s issuer: %w", what, err))
	}
	if s.timeout < 0 {
		errs = append(errs, fmt.Errorf("opaque: %s: negative timeout", what))
	}
	if s.maxEntries < 0 || s.maxBytes < 0 {
		errs = append(errs, fmt.Errorf("opaque: %s: negative cache bound", what))
	}
	if s.concurrency < 0 {
		errs = append(errs, fmt.Errorf("opaque: %s: negative MaxConcurrency", what))
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.ttl == 0 {
		s.ttl = DefaultCacheTTL
	}
	if s.negTTL == 0 {
		s.negTTL = DefaultNegativeTTL
	}
	if s.staleIfBusy == 0 {
		s.staleIfBusy = s.ttl // the revocation delay doubles, at most, and only while no slot is free
	}
	if s.maxEntries == 0 {
		s.maxEntries = DefaultMaxEntries
	}
	if s.maxBytes == 0 {
		s.maxBytes = DefaultCacheMaxBytes
	}
	if s.concurrency == 0 {
		s.concurrency = DefaultMaxConcurrency
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.client == nil {
		s.client = &http.Client{Transport: boundedTransport(s.concurrency)}
	}
	// A redirect is not followed (nil policy): the request carries a token
	// or the client's credentials, and an issuer's endpoints do not move.
	s.client = httpfetch.Client(s.client, maxBody, nil)
	return s, errs
}

// boundedTransport is http.DefaultTransport's setup with at most n
// connections to a host, all of which may stay idle for reuse. The
// semaphore already bounds the calls; this bounds the connections too, which
// a cancelled call can otherwise leave dialling past its end.
func boundedTransport(n int) *http.Transport {
	var t *http.Transport
	if d, ok := http.DefaultTransport.(*http.Transport); ok {
		t = d.Clone()
	} else {
		t = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true,
			IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second}
	}
	t.MaxConnsPerHost = n
	t.MaxIdleConnsPerHost = n
	return t
}

// fetchFunc asks the issuer about a token. It returns the claims it vouches
// for and the size of its answer, or an error: reason issuer_unavailable when
// the issuer could not be asked or its answer is unusable (not cached), any
// other reason for a refusal (cached as a negative answer).
type fetchFunc func(ctx context.Context, token string) (*middleware.Claims, int64, *middleware.Error)

// core is what both checkers are made of: the cache, the single-flight, the
// counters, and the call to the issuer.
type core struct {
	settings
	what     string // "introspection" or "userinfo", for logs
	endpoint string
	fetch    fetchFunc
	cache    *cache
	flight   flight

	calls, hits, misses, errors, busy, stale atomic.Uint64
	busyLogged                               atomic.Int64 // unix nanoseconds of the last busy warning
	failLogged                               atomic.Int64 // unix nanoseconds (by now) of the last failure warning; 0: none yet
}

func newCore(what, endpoint string, s settings, fetch fetchFunc) *core {
	return &core{
		settings: s,
		what:     what,
		endpoint: endpoint,
		fetch:    fetch,
		cache:    newCache(s.maxEntries, s.maxBytes, s.now),
		flight:   flight{slots: make(chan struct{}, s.concurrency)},
	}
}

// check answers from the cache, or asks the issuer once for all the
// concurrent checks of the same token. The claims returned are a copy; their
// slices are shared and must not be modified.
func (c *core) check(ctx context.Context, token string) (*middleware.Claims, error) {
	if !plausible(token) {
		c.report(ResultInactive, false)
		return nil, &middleware.Error{Reason: middleware.ReasonInactive, Detail: "token has characters or a size no access token has; the issuer was not asked"}
	}
	k := tokenKey(token)
	if e := c.cache.get(&k, c.now()); e != nil {
		c.hits.Add(1)
		return c.answer(e)
	}
	return c.miss(ctx, token, k)
}

// answer returns a cached answer.
func (c *core) answer(e *entry) (*middleware.Claims, error) {
	if e.claims == nil {
		c.report(ResultInactive, true)
		return nil, e.err
	}
	c.report(ResultActive, true)
	cp := *e.claims
	return &cp, nil
}

// miss asks the issuer, through the single-flight. It is apart from check so
// that only a miss moves the key to the heap (the closure captures it).
func (c *core) miss(ctx context.Context, token string, k key) (*middleware.Claims, error) {
	c.misses.Add(1)
	claims, err := c.flight.do(ctx, &k, c.timeout, func(ctx context.Context) (*middleware.Claims, error) {
		return c.call(ctx, token, &k)
	})
	if err != nil {
		if errors.Is(err, middleware.ErrIssuerBusy) {
			// The cache is read again, not the entry check saw: an answer
			// stored since (a refusal, say) prevails over a stale one.
			e, fresh := c.cache.lookup(&k, c.now())
			switch {
			case e == nil:
				c.busy.Add(1)
			case !fresh:
				c.stale.Add(1)
			}
			c.warnBusy(ctx)
			if e != nil {
				return c.answer(e)
			}
			c.report(ResultError, false)
		} else if errors.Is(err, middleware.ErrIssuerUnavailable) {
			c.report(ResultError, false)
		} else {
			c.report(ResultInactive, false)
		}
		return nil, err
	}
	c.report(ResultActive, false)
	cp := *claims
	return &cp, nil
}

// call asks the issuer and caches its answer. It runs once per flight.
func (c *core) call(ctx context.Context, token string, k *key) (*middleware.Claims, error) {
	c.calls.Add(1)
	claims, size, err := c.fetch(ctx, token)
	now := c.now()
	switch {
	case err == nil:
		until := now.Add(c.ttl)
		exp := claims.ExpiresAt
		if !exp.IsZero() && exp.Before(until) {
			until = exp
		}
		var stale time.Time // never
		if !until.After(now) {
			// Already expired: the validator refuses it. Remember that
			// as briefly as a negative answer.
			until = now.Add(c.negTTL)
		} else if c.staleIfBusy > 0 {
			stale = until.Add(c.staleIfBusy)
			if !exp.IsZero() && exp.Before(stale) {
				stale = exp
			}
		}
		if c.ttl > 0 && until.After(now) {
			c.cache.put(k, &entry{claims: claims, staleUntil: stale, size: size + entryOverhead}, until)
		}
		return claims, nil
	case err.Reason == middleware.ReasonIssuerUnavailable:
		n := c.errors.Add(1)
		c.warnFailed(ctx, now, err, n)
		return nil, err
	default:
		if c.negTTL > 0 {
			c.cache.put(k, &entry{err: err}, now.Add(c.negTTL))
		}
		return nil, err
	}
}

// failLogEvery spaces the warnings that the issuer could not be asked: an
// issuer outage under a flood of made-up tokens (each a new call) would
// otherwise log one line per token.
const failLogEvery = time.Minute

// warnFailed logs a failed call to the issuer: the first one at once, then
// at most once per failLogEvery, with the count of failures so far.
func (c *core) warnFailed(ctx context.Context, now time.Time, err error, failures uint64) {
	ns := now.UnixNano()
	last := c.failLogged.Load()
	if last != 0 && ns-last < int64(failLogEvery) || !c.failLogged.CompareAndSwap(last, ns) {
		return
	}
	c.log.LogAttrs(ctx, slog.LevelWarn, "opaque: issuer check failed",
		slog.String("check", c.what), slog.String("endpoint", c.endpoint), slog.String("error", err.Error()),
		slog.Uint64("failures_so_far", failures), slog.Duration("next_warning_after", failLogEvery))
}

// busyLogEvery spaces the warnings that the bound on calls is reached: a
// flood of made-up tokens would otherwise log one line per request.
const busyLogEvery = time.Minute

// warnBusy logs that a check was refused because MaxConcurrency calls were in
// progress, at most once per busyLogEvery.
func (c *core) warnBusy(ctx context.Context) {
	now := time.Now().UnixNano()
	last := c.busyLogged.Load()
	if now-last < int64(busyLogEvery) || !c.busyLogged.CompareAndSwap(last, now) {
		return
	}
	c.log.LogAttrs(ctx, slog.LevelWarn, "opaque: the most calls allowed to the issuer are in progress; tokens not cached get 503 until one ends, active answers past their TTL are used meanwhile (a flood of unknown tokens, or a slow issuer)",
		slog.String("check", c.what), slog.String("endpoint", c.endpoint),
		slog.Int("max_concurrency", cap(c.flight.slots)), slog.Uint64("refused_so_far", c.busy.Load()), slog.Uint64("stale_so_far", c.stale.Load()))
}

func (c *core) report(result string, cached bool) {
	if c.onCheck != nil {
		c.onCheck(result, cached)
	}
}

func (c *core) stats() Stats {
	return Stats{
		Calls:   c.calls.Load(),
		Hits:    c.hits.Load(),
		Misses:  c.misses.Load(),
		Errors:  c.errors.Load(),
		Busy:    c.busy.Load(),
		Stale:   c.stale.Load(),
		Entries: c.cache.len(),
	}
}

// plausible reports whether token could be an access token at all: not too
// large, and an RFC 6750 b64token (so it cannot break the header or the form
// it is sent in). Others are refused without asking the issuer.
func plausible(token string) bool {
	if token == "" || len(token) > maxToken {
		return false
	}
	i := 0
	for ; i < len(token); i++ {
		ch := token[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' ||
			ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '+' || ch == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(token); i++ {
		if token[i] != '=' {
			return false
		}
	}
	return true
}

// do sends req and reads the answer, which the client limits to maxBody.
func (c *core) do(req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, body, nil
}

// unavailable is the error for an issuer that could not be asked, or whose
// answer cannot be used.
func unavailable(detail string, err error) *middleware.Error {
	return &middleware.Error{Reason: middleware.ReasonIssuerUnavailable, Detail: detail, Err: err}
}

// safeError shortens a transport error for the log.
func safeError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("timed out")
	}
	if errors.Is(err, context.Canceled) {
		return errors.New("cancelled")
	}
	return err
}
