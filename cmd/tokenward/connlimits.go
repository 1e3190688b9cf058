package main

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenward/tokenward/proxy"
)

// ConnLimits are what a client may hold of the main listener: connections,
// and time to send its request or take its answer (README, "Memory"). In
// the environment 0 means no bound; proxy's options take -1 for that.
type ConnLimits struct {
	MaxConnections    int           `env:"TOKENWARD_MAX_CONNECTIONS" envDefault:"10000"`
	ReadHeaderTimeout time.Duration `env:"TOKENWARD_READ_HEADER_TIMEOUT" envDefault:"10s"`
	BodyReadTimeout   time.Duration `env:"TOKENWARD_BODY_READ_TIMEOUT" envDefault:"60s"`
	SendTimeout       time.Duration `env:"TOKENWARD_SEND_TIMEOUT" envDefault:"60s"`
	IdleTimeout       time.Duration `env:"TOKENWARD_IDLE_TIMEOUT" envDefault:"120s"`
}

// adminMaxConnections bounds the admin listener's connections: scrapers and
// probes need a few, and a flood there must not take the memory of the main
// listener.
const adminMaxConnections = 256

func (c ConnLimits) check() []string {
	var problems []string
	if c.MaxConnections < 0 {
		problems = append(problems, fmt.Sprintf("TOKENWARD_MAX_CONNECTIONS: %d is negative; use 0 for no bound", c.MaxConnections))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"TOKENWARD_READ_HEADER_TIMEOUT", c.ReadHeaderTimeout},
		{"TOKENWARD_BODY_READ_TIMEOUT", c.BodyReadTimeout},
		{"TOKENWARD_SEND_TIMEOUT", c.SendTimeout},
		{"TOKENWARD_IDLE_TIMEOUT", c.IdleTimeout},
	} {
		if d.v < 0 {
			problems = append(problems, fmt.Sprintf("%s: %s is negative; use 0 for none", d.name, d.v))
		}
	}
	return problems
}

// none maps the environment's 0 (no bound) to proxy's negative.
func none[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

func (c ConnLimits) serverOptions() proxy.ServerOptions {
	return proxy.ServerOptions{
		ReadHeaderTimeout: none(c.ReadHeaderTimeout),
		BodyReadTimeout:   none(c.BodyReadTimeout),
		IdleTimeout:       none(c.IdleTimeout),
	}
}

// listenerOptions bound the main listener. Plain HTTP gets a 503 over the
// bound; TLS a close, without the handshake.
func (c ConnLimits) listenerOptions(tls bool) proxy.ListenerOptions {
	return proxy.ListenerOptions{
		MaxConnections: none(c.MaxConnections),
		Answer503:      !tls,
		SendTimeout:    none(c.SendTimeout),
	}
}

// registerConnMetrics exports the open and refused connections of each
// bounded listener, by its name (main, admin).
func registerConnMetrics(reg prometheus.Registerer, listeners map[string]*proxy.Listener) {
	for name, l := range listeners {
		labels := prometheus.Labels{"listener": name}
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "tokenward_connections_open", ConstLabels: labels,
				Help: "Client connections open now.",
			}, func() float64 { return float64(l.Open()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "tokenward_connections_refused_total", ConstLabels: labels,
				Help: "Client connections refused at once for being over the listener's bound (TOKENWARD_MAX_CONNECTIONS for main).",
			}, func() float64 { return float64(l.Refused()) }),
		)
	}
}
