package proxy

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
	refreshes      *prometheus.CounterVec
}

// reasons lists every reason so that each counter exists from the start.
var reasons = []middleware.Reason{
	middleware.ReasonNoToken, middleware.ReasonInvalidRequest, middleware.ReasonTooLarge,
	middleware.ReasonMalformed, middleware.ReasonOpaque, middleware.ReasonAlgorithm,
	middleware.ReasonType, middleware.ReasonUnsupported, middleware.ReasonIssuer,
	middleware.ReasonUnknownKey, middleware.ReasonKeysUnavailable, middleware.ReasonSignature,
	middleware.ReasonExpired, middleware.ReasonNotYetValid, middleware.ReasonIssuedInFuture,
	middleware.ReasonAudience, middleware.ReasonRevoked, middleware.ReasonInsufficientScope,
	middleware.ReasonInactive, middleware.ReasonIssuerUnavailable,
}

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
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenward_jwks_refreshes_total",
			Help: "Key set fetches by issuer and result (success, failure).",
		}, []string{"issuer", "result"}),
		deniedBy: make(map[middleware.Reason]prometheus.Counter, len(reasons)),
	}
	m.allowed = m.requests.WithLabelValues("allowed", "")
	m.public = m.requests.WithLabelValues("public", "")
	for _, r := range reasons {
		m.deniedBy[r] = m.requests.WithLabelValues("denied", string(r))
	}
	for _, k := range []string{"unreachable", "timeout", "client_gone"} {
		m.upstreamErrors.WithLabelValues(k)
	}
	reg.MustRegister(m.requests, m.validation, m.upstream, m.upstreamErrors, m.refreshes)
	if keys != nil {
		for _, iss := range keys.Issuers() {
			m.refreshes.WithLabelValues(iss, "success")
			m.refreshes.WithLabelValues(iss, "failure")
		}
		reg.MustRegister(keySetCollector{keys})
	}
	return m
}

func (m *Metrics) denied(r middleware.Reason) {
	if c, ok := m.deniedBy[r]; ok {
		c.Inc()
		return
	}
	m.requests.WithLabelValues("denied", string(r)).Inc()
}

// ObserveRefresh records a key set fetch; pass it as
// jwks.RegistryOptions.OnRefresh.
func (m *Metrics) ObserveRefresh(issuers []string, e jwks.RefreshEvent) {
	result := "success"
	if e.Err != nil {
		result = "failure"
	}
	for _, iss := range issuers {
		m.refreshes.WithLabelValues(iss, result).Inc()
	}
}

var (
	keysDesc = prometheus.NewDesc("tokenward_jwks_keys",
		"Keys loaded per issuer.", []string{"issuer"}, nil)
	ageDesc = prometheus.NewDesc("tokenward_jwks_last_success_age_seconds",
		"Seconds since the last successful key set fetch per issuer (absent until the first).", []string{"issuer"}, nil)
	loadedDesc = prometheus.NewDesc("tokenward_jwks_loaded",
		"1 when the issuer's keys have been loaded.", []string{"issuer"}, nil)
)

// keySetCollector reads the registry's status at scrape time.
type keySetCollector struct{ keys *jwks.Registry }

func (keySetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- keysDesc
	ch <- ageDesc
	ch <- loadedDesc
}

func (c keySetCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.keys.Status() {
		ch <- prometheus.MustNewConstMetric(keysDesc, prometheus.GaugeValue, float64(s.Keys), s.Issuer)
		loaded := 0.0
		if s.Loaded {
			loaded = 1
		}
		ch <- prometheus.MustNewConstMetric(loadedDesc, prometheus.GaugeValue, loaded, s.Issuer)
		if !s.LastRefresh.IsZero() {
			ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, time.Since(s.LastRefresh).Seconds(), s.Issuer)
		}
	}
}

// timedTransport records the upstream's latency.
type timedTransport struct {
	base http.RoundTripper
	m    *Metrics
}

func (t timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(r)
	if err == nil {
		t.m.upstream.Observe(time.Since(start).Seconds())
	}
	return resp, err
}
