package admin

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenward/tokenward/denylist"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/middleware"
)

// Metrics are tokenward's Prometheus metrics. Labels are bounded: outcome,
// reason and the configured issuers — never a path, a subject or a token.
type Metrics struct {
	requests       *prometheus.CounterVec
	allowed        prometheus.Counter // pre-resolved: the hot path does no label lookup
	public         prometheus.Counter
	deniedBy       map[middleware.Reason]prometheus.Counter
	validation     prometheus.Histogram
	upstream       prometheus.Histogram
	upstreamErrors *prometheus.CounterVec
	upstreamBy     map[string]prometheus.Counter // pre-resolved, by kind
	opaqueChecks   *prometheus.CounterVec
	opaqueBy       [len(opaqueResults)][2]prometheus.Counter // [result][cached]: pre-resolved
}

// opaqueResults are the results an opaque-token check reports: the values of
// opaque.ResultActive, ResultInactive and ResultError (not imported, so
// that proxy does not depend on the opaque package). "error" is last.
var opaqueResults = [...]string{"active", "inactive", "error"}

// reasons lists every reason (the DPoP ones included) so that each counter
// exists from the start.
var reasons = middleware.Reasons()

// NewMetrics registers the metrics with reg. keys, if not nil, is read at
// each scrape for the key-set gauges.
func NewMetrics(reg prometheus.Registerer, keys *jwks.Registry) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenward_requests_total",
			Help: "Requests by outcome (allowed, public, denied) and reason of denial.",
		}, []string{"outcome", "reason"}),
		validation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tokenward_validation_duration_seconds",
			Help:    "Time to extract and validate a token.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .01, .1, 1},
		}),
		upstream: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tokenward_upstream_duration_seconds",
			Help:    "Time until the upstream's response headers arrived.",
			Buckets: prometheus.DefBuckets,
		}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenward_upstream_errors_total",
			Help: "Failed upstream requests by kind (unreachable, timeout, client_gone).",
		}, []string{"kind"}),
		opaqueChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenward_opaque_checks_total",
			Help: "Opaque-token checks by result (active, inactive, error) and whether the cache answered (hit, miss).",
		}, []string{"result", "cache"}),
		deniedBy: make(map[middleware.Reason]prometheus.Counter, len(reasons)),
	}
	m.allowed = m.requests.WithLabelValues("allowed", "")
	m.public = m.requests.WithLabelValues("public", "")
	for _, r := range reasons {
		m.deniedBy[r] = m.requests.WithLabelValues("denied", string(r))
	}
	m.upstreamBy = make(map[string]prometheus.Counter, 3)
	for _, k := range []string{"unreachable", "timeout", "client_gone"} {
		m.upstreamBy[k] = m.upstreamErrors.WithLabelValues(k)
	}
	for i, r := range opaqueResults {
		m.opaqueBy[i][0] = m.opaqueChecks.WithLabelValues(r, "miss")
		m.opaqueBy[i][1] = m.opaqueChecks.WithLabelValues(r, "hit")
	}
	reg.MustRegister(m.requests, m.validation, m.upstream, m.upstreamErrors, m.opaqueChecks)
	if keys != nil {
		reg.MustRegister(keySetCollector{keys})
	}
	return m
}

// The methods below implement proxy.Observer (not imported: admin does not
// depend on proxy). Each is safe on a nil *Metrics, which records nothing,
// and does not allocate for the reasons and kinds declared above.

// ObserveValidation records the time taken to extract and validate a token.
func (m *Metrics) ObserveValidation(d time.Duration) {
	if m != nil {
		m.validation.Observe(d.Seconds())
	}
}

// ObserveAllowed counts a request let through: on a public route, or with a
// valid token.
func (m *Metrics) ObserveAllowed(public bool) {
	switch {
	case m == nil:
	case public:
		m.public.Inc()
	default:
		m.allowed.Inc()
	}
}

// ObserveUpstream records the time until the upstream's response headers
// arrived.
func (m *Metrics) ObserveUpstream(d time.Duration) {
	if m != nil {
		m.upstream.Observe(d.Seconds())
	}
}

// ObserveUpstreamError counts a failed upstream request by kind:
// "unreachable", "timeout" or "client_gone".
func (m *Metrics) ObserveUpstreamError(kind string) {
	if m == nil {
		return
	}
	if c, ok := m.upstreamBy[kind]; ok {
		c.Inc()
		return
	}
	m.upstreamErrors.WithLabelValues("unreachable").Inc() // no label from an unknown string
}

// ObserveDenied counts a refused request by reason.
func (m *Metrics) ObserveDenied(r middleware.Reason) {
	if m == nil {
		return
	}
	if c, ok := m.deniedBy[r]; ok {
		c.Inc()
		return
	}
	m.requests.WithLabelValues("denied", string(r)).Inc()
}

// ObserveRefresh does nothing. It is kept for code written against
// proxy.Metrics.
//
// Deprecated: key set fetches are counted by the key sets themselves
// (jwks.Status) and read at each scrape from the registry given to
// [NewMetrics]; counting events too would count each fetch twice.
func (m *Metrics) ObserveRefresh(issuers []string, e jwks.RefreshEvent) {}

// ObserveOpaque records an opaque-token check: its result ("active",
// "inactive" or "error") and whether the cache answered. Pass it as
// opaque.IntrospectorOptions.OnCheck (or UserInfoOptions.OnCheck). It does
// not allocate for the three known results.
func (m *Metrics) ObserveOpaque(result string, cached bool) {
	if m == nil {
		return
	}
	c := 0
	if cached {
		c = 1
	}
	for i, r := range opaqueResults {
		if r == result {
			m.opaqueBy[i][c].Inc()
			return
		}
	}
	// Not a result the opaque package reports: count it as an error rather
	// than create a label value from an unknown string.
	m.opaqueBy[len(opaqueResults)-1][c].Inc()
}

var (
	keysDesc = prometheus.NewDesc("tokenward_jwks_keys",
		"Keys loaded per issuer.", []string{"issuer"}, nil)
	ageDesc = prometheus.NewDesc("tokenward_jwks_last_success_age_seconds",
		"Seconds since the last successful key set fetch per issuer (absent until the first).", []string{"issuer"}, nil)
	loadedDesc = prometheus.NewDesc("tokenward_jwks_loaded",
		"1 when the issuer's keys have been loaded.", []string{"issuer"}, nil)
	refreshesDesc = prometheus.NewDesc("tokenward_jwks_refreshes_total",
		"Key set fetches by issuer and result (success, failure).", []string{"issuer", "result"}, nil)
)

// keySetCollector reads the registry's status at scrape time, fetch counts
// included: issuers that share a key set URL share its counts, as they share
// its fetches.
type keySetCollector struct{ keys *jwks.Registry }

func (keySetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- keysDesc
	ch <- ageDesc
	ch <- loadedDesc
	ch <- refreshesDesc
}

func (c keySetCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.keys.Status() {
		ch <- prometheus.MustNewConstMetric(keysDesc, prometheus.GaugeValue, float64(s.Keys), s.Issuer)
		loaded := 0.0
		if s.Loaded {
			loaded = 1
		}
		ch <- prometheus.MustNewConstMetric(loadedDesc, prometheus.GaugeValue, loaded, s.Issuer)
		ch <- prometheus.MustNewConstMetric(refreshesDesc, prometheus.CounterValue, float64(s.FetchesOK), s.Issuer, "success")
		ch <- prometheus.MustNewConstMetric(refreshesDesc, prometheus.CounterValue, float64(s.FetchesFailed), s.Issuer, "failure")
		if !s.LastRefresh.IsZero() {
			ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, time.Since(s.LastRefresh).Seconds(), s.Issuer)
		}
	}
}

var (
	denyEntriesDesc = prometheus.NewDesc("tokenward_denylist_entries",
		"Entries of the deny list in force (revoked jti values plus revoked subjects).", nil, nil)
	denyReloadDesc = prometheus.NewDesc("tokenward_denylist_last_reload_timestamp_seconds",
		"Unix time when the deny list in force was loaded (absent until the first load).", nil, nil)
	denyCheckDesc = prometheus.NewDesc("tokenward_denylist_last_check_timestamp_seconds",
		"Unix time when the deny list's source was last read successfully, changed or not (absent until then).", nil, nil)
	denyErrorsDesc = prometheus.NewDesc("tokenward_denylist_reload_errors_total",
		"Failed reloads of the deny list (the list in force stays).", nil, nil)
)

// RegisterDenyList registers the deny list's metrics with reg; they are read
// from list.Status at each scrape.
func RegisterDenyList(reg prometheus.Registerer, list *denylist.List) {
	reg.MustRegister(denyListCollector{list})
}

type denyListCollector struct{ list *denylist.List }

func (denyListCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- denyEntriesDesc
	ch <- denyReloadDesc
	ch <- denyCheckDesc
	ch <- denyErrorsDesc
}

func (c denyListCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.list.Status()
	ch <- prometheus.MustNewConstMetric(denyEntriesDesc, prometheus.GaugeValue, float64(s.Entries()))
	ch <- prometheus.MustNewConstMetric(denyErrorsDesc, prometheus.CounterValue, float64(s.ReloadErrors))
	if !s.LastReload.IsZero() {
		ch <- prometheus.MustNewConstMetric(denyReloadDesc, prometheus.GaugeValue, unixSeconds(s.LastReload))
	}
	if !s.LastCheck.IsZero() {
		ch <- prometheus.MustNewConstMetric(denyCheckDesc, prometheus.GaugeValue, unixSeconds(s.LastCheck))
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

var (
	cacheHitsDesc = prometheus.NewDesc("tokenward_token_cache_hits_total",
		"Validations answered from the verified-token cache.", nil, nil)
	cacheMissesDesc = prometheus.NewDesc("tokenward_token_cache_misses_total",
		"Validations that verified the token (not in the verified-token cache).", nil, nil)
	cacheEvictionsDesc = prometheus.NewDesc("tokenward_token_cache_evictions_total",
		"Entries dropped to keep the verified-token cache within its bounds.", nil, nil)
	cacheEntriesDesc = prometheus.NewDesc("tokenward_token_cache_entries",
		"Tokens in the verified-token cache.", nil, nil)
	cacheBytesDesc = prometheus.NewDesc("tokenward_token_cache_bytes",
		"Estimated memory of the verified-token cache.", nil, nil)
)

// RegisterTokenCache registers the metrics of v's verified-token cache with
// reg; they are read from v.CacheStats at each scrape (all zero without a
// cache).
func RegisterTokenCache(reg prometheus.Registerer, v *middleware.Validator) {
	reg.MustRegister(tokenCacheCollector{v})
}

type tokenCacheCollector struct{ v *middleware.Validator }

func (tokenCacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheHitsDesc
	ch <- cacheMissesDesc
	ch <- cacheEvictionsDesc
	ch <- cacheEntriesDesc
	ch <- cacheBytesDesc
}

func (c tokenCacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.v.CacheStats() // one pass over the shards for all five
	ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(cacheMissesDesc, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(cacheEvictionsDesc, prometheus.CounterValue, float64(s.Evictions))
	ch <- prometheus.MustNewConstMetric(cacheEntriesDesc, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(cacheBytesDesc, prometheus.GaugeValue, float64(s.Bytes))
}

var (
	rulesReloadDesc = prometheus.NewDesc("tokenward_rules_last_reload_timestamp_seconds",
		"Unix time when the route rules in force were loaded from the rules file (at start, or by a reload).", nil, nil)
	rulesErrorsDesc = prometheus.NewDesc("tokenward_rules_reload_errors_total",
		"Failed reloads of the rules file, one per failure (a new bad version, the file becoming unreadable); the rules in force stay.", nil, nil)
	rulesFailingDesc = prometheus.NewDesc("tokenward_rules_reload_failing",
		"1 while the rules file cannot be loaded (unreadable, or its content invalid) and older rules stay in force; else 0.", nil, nil)
)

// RulesStatus is the state of the reloaded route rules, read by the
// collector of [RegisterRules] at each scrape.
type RulesStatus struct {
	LastReload   time.Time // when the rules in force were loaded
	ReloadErrors uint64    // failed reloads since the start
	Failing      bool      // the last check failed: the file is not what is in force
}

// RegisterRules registers the metrics of route rules reloaded from a file
// with reg; status is called at each scrape and must not block.
func RegisterRules(reg prometheus.Registerer, status func() RulesStatus) {
	reg.MustRegister(rulesCollector(status))
}

type rulesCollector func() RulesStatus

func (rulesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rulesReloadDesc
	ch <- rulesErrorsDesc
	ch <- rulesFailingDesc
}

func (c rulesCollector) Collect(ch chan<- prometheus.Metric) {
	s := c()
	failing := 0.0
	if s.Failing {
		failing = 1
	}
	ch <- prometheus.MustNewConstMetric(rulesErrorsDesc, prometheus.CounterValue, float64(s.ReloadErrors))
	ch <- prometheus.MustNewConstMetric(rulesFailingDesc, prometheus.GaugeValue, failing)
	if !s.LastReload.IsZero() {
		ch <- prometheus.MustNewConstMetric(rulesReloadDesc, prometheus.GaugeValue, unixSeconds(s.LastReload))
	}
}

var (
	tlsReloadDesc = prometheus.NewDesc("tokenward_tls_last_reload_timestamp_seconds",
		"Unix time when the listener's certificate (and client CA) in force were loaded, at start or by a reload.", nil, nil)
	tlsErrorsDesc = prometheus.NewDesc("tokenward_tls_reload_errors_total",
		"Failed reloads of the listener's certificate, key or client CA file, one per failure (a new bad version, a file becoming unreadable); the pair in force stays.", nil, nil)
	tlsFailingDesc = prometheus.NewDesc("tokenward_tls_reload_failing",
		"1 while the certificate, key or client CA files cannot be loaded and older ones stay in force; else 0.", nil, nil)
	tlsExpiryDesc = prometheus.NewDesc("tokenward_tls_certificate_expiry_timestamp_seconds",
		"Unix time when the listener's certificate in force expires (its NotAfter).", nil, nil)
)

// TLSStatus is the state of the listener's reloaded certificate, read by
// the collector of [RegisterTLS] at each scrape.
type TLSStatus struct {
	LastReload   time.Time // when the pair (and client CA) in force were loaded
	ReloadErrors uint64    // failed reloads since the start
	Failing      bool      // the last check failed: the files are not what is in force
	NotAfter     time.Time // expiry of the certificate in force
}

// RegisterTLS registers the metrics of the listener's certificate, reloaded
// from files, with reg; status is called at each scrape and must not block.
func RegisterTLS(reg prometheus.Registerer, status func() TLSStatus) {
	reg.MustRegister(tlsCollector(status))
}

type tlsCollector func() TLSStatus

func (tlsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tlsReloadDesc
	ch <- tlsErrorsDesc
	ch <- tlsFailingDesc
	ch <- tlsExpiryDesc
}

func (c tlsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c()
	failing := 0.0
	if s.Failing {
		failing = 1
	}
	ch <- prometheus.MustNewConstMetric(tlsErrorsDesc, prometheus.CounterValue, float64(s.ReloadErrors))
	ch <- prometheus.MustNewConstMetric(tlsFailingDesc, prometheus.GaugeValue, failing)
	if !s.LastReload.IsZero() {
		ch <- prometheus.MustNewConstMetric(tlsReloadDesc, prometheus.GaugeValue, unixSeconds(s.LastReload))
	}
	if !s.NotAfter.IsZero() {
		ch <- prometheus.MustNewConstMetric(tlsExpiryDesc, prometheus.GaugeValue, float64(s.NotAfter.Unix()))
	}
}

var dpopStoreUpDesc = prometheus.NewDesc("tokenward_dpop_replay_store_up",
	"1 while the shared DPoP replay store answers a ping, else 0 (DPoP requests are then refused with 503). Always 1 for the in-memory store.", nil, nil)

// RegisterDPoPReplayStore adds the tokenward_dpop_replay_store_up gauge,
// read by calling ping at each scrape (it returns by the scrape's deadline:
// the store's own timeout).
func RegisterDPoPReplayStore(reg prometheus.Registerer, ping func(ctx context.Context) error) {
	reg.MustRegister(storeCollector{ping})
}

// RegisterDPoPMemoryStore adds tokenward_dpop_replay_forgotten_early_total,
// read from forgottenEarly (dpop.MemoryStore.ForgottenEarly) at each scrape.
func RegisterDPoPMemoryStore(reg prometheus.Registerer, forgottenEarly func() uint64) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tokenward_dpop_replay_forgotten_early_total",
		Help: "Proof ids the in-memory DPoP replay store forgot before their window ended because it was full. After each, proofs as old as the one forgotten are refused as replays (dpop_replay): a rising count means older valid proofs are being refused; share a Redis store or raise the bound.",
	}, func() float64 { return float64(forgottenEarly()) }))
}

type storeCollector struct{ ping func(context.Context) error }

func (storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- dpopStoreUpDesc }

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	up := 1.0
	if c.ping(context.Background()) != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(dpopStoreUpDesc, prometheus.GaugeValue, up)
}
