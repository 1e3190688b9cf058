package admin_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenward/tokenward/admin"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
)

// *Metrics is the proxy's Observer.
var _ proxy.Observer = (*admin.Metrics)(nil)

// What the proxy reports through Observer moves the metrics of the README's
// table; an unknown upstream error kind becomes no new label value.
func TestObserver(t *testing.T) {
	reg := prometheus.NewRegistry()
	var obs proxy.Observer = admin.NewMetrics(reg, nil)
	obs.ObserveAllowed(false)
	obs.ObserveAllowed(true)
	obs.ObserveAllowed(true)
	obs.ObserveDenied(middleware.ReasonExpired)
	obs.ObserveValidation(time.Millisecond)
	obs.ObserveUpstream(time.Millisecond)
	obs.ObserveUpstreamError("timeout")
	obs.ObserveUpstreamError("/some/path")

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	series := map[string]int{}
	for _, f := range families {
		series[f.GetName()] = len(f.GetMetric())
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	if series["tokenward_upstream_errors_total"] != 3 {
		t.Errorf("tokenward_upstream_errors_total has %d series, want the 3 kinds", series["tokenward_upstream_errors_total"])
	}
	for key, want := range map[string]float64{
		"tokenward_requests_total,outcome=allowed,reason=":       1,
		"tokenward_requests_total,outcome=public,reason=":        2,
		"tokenward_requests_total,outcome=denied,reason=expired": 1,
		"tokenward_upstream_errors_total,kind=timeout":           1,
		"tokenward_upstream_errors_total,kind=unreachable":       1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}

// A nil *Metrics records nothing and does not panic: a proxy.Config holding
// one is as good as none.
func TestNilMetrics(t *testing.T) {
	var m *admin.Metrics
	m.ObserveAllowed(true)
	m.ObserveDenied(middleware.ReasonExpired)
	m.ObserveValidation(time.Second)
	m.ObserveUpstream(time.Second)
	m.ObserveUpstreamError("timeout")
	m.ObserveOpaque("active", true)
}

// The rules metrics are read from the status function at each scrape; the
// timestamp is absent until rules have loaded.
func TestRegisterRules(t *testing.T) {
	reg := prometheus.NewRegistry()
	var st admin.RulesStatus
	admin.RegisterRules(reg, func() admin.RulesStatus { return st })
	gather := func() map[string]float64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				got[f.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		return got
	}
	if got := gather(); len(got) != 2 || got["tokenward_rules_reload_errors_total"] != 0 || got["tokenward_rules_reload_failing"] != 0 {
		t.Errorf("before a load: %v", got)
	}
	st = admin.RulesStatus{LastReload: time.Unix(1_800_000_000, 0), ReloadErrors: 2, Failing: true}
	got := gather()
	for name, want := range map[string]float64{
		"tokenward_rules_last_reload_timestamp_seconds": 1_800_000_000,
		"tokenward_rules_reload_errors_total":           2,
		"tokenward_rules_reload_failing":                1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}

// The TLS metrics are read from the status function at each scrape; the
// timestamps are absent while unknown.
func TestRegisterTLS(t *testing.T) {
	reg := prometheus.NewRegistry()
	var st admin.TLSStatus
	admin.RegisterTLS(reg, func() admin.TLSStatus { return st })
	gather := func() map[string]float64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				got[f.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		return got
	}
	if got := gather(); len(got) != 2 || got["tokenward_tls_reload_errors_total"] != 0 || got["tokenward_tls_reload_failing"] != 0 {
		t.Errorf("before a load: %v", got)
	}
	st = admin.TLSStatus{LastReload: time.Unix(1_800_000_000, 0), ReloadErrors: 3, Failing: true, NotAfter: time.Unix(1_900_000_000, 0)}
	got := gather()
	for name, want := range map[string]float64{
		"tokenward_tls_last_reload_timestamp_seconds":        1_800_000_000,
		"tokenward_tls_reload_errors_total":                  3,
		"tokenward_tls_reload_failing":                       1,
		"tokenward_tls_certificate_expiry_timestamp_seconds": 1_900_000_000,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}
