package main

import (
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenward/tokenward/proxy"
)

// ConnLimits are what a client may hold of the main listener: connections,
// and time to send its request or take its answer (README, "Memory"). In
// the environment 0 means no bound; proxy's options take -1 for that.
type ConnLimits struct {
	MaxConnections    *int          `env:"TOKENWARD_MAX_CONNECTIONS"` // nil: maxConnections' default
	ReadHeaderTimeout time.Duration `env:"TOKENWARD_READ_HEADER_TIMEOUT" envDefault:"10s"`
	BodyReadTimeout   time.Duration `env:"TOKENWARD_BODY_READ_TIMEOUT" envDefault:"60s"`
	SendTimeout       time.Duration `env:"TOKENWARD_SEND_TIMEOUT" envDefault:"60s"`
	IdleTimeout       time.Duration `env:"TOKENWARD_IDLE_TIMEOUT" envDefault:"120s"`
	// GRPCMaxConnections bounds the gRPC ext_authz listener apart: its
	// clients are gateways (Envoy opens a few HTTP/2 connections per
	// worker thread), and an HTTP/2 connection holds more than an
	// HTTP/1.1 one.
	GRPCMaxConnections int `env:"TOKENWARD_GRPC_MAX_CONNECTIONS" envDefault:"1024"`
}

// adminMaxConnections bounds the admin listener's connections: scrapers and
// probes need a few, and a flood there must not take the memory of the main
// listener.
const adminMaxConnections = 256

func (c ConnLimits) check() []string {
	var problems []string
	if c.MaxConnections != nil && *c.MaxConnections < 0 {
		problems = append(problems, fmt.Sprintf("TOKENWARD_MAX_CONNECTIONS: %d is negative; use 0 for no bound", *c.MaxConnections))
	}
	if c.GRPCMaxConnections < 0 {
		problems = append(problems, fmt.Sprintf("TOKENWARD_GRPC_MAX_CONNECTIONS: %d is negative; use 0 for no bound", c.GRPCMaxConnections))
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

// connectionBytes is what an idle keep-alive connection holds: 18.8 KiB of
// RSS measured with 10,000 of them (BENCHMARKS.md, "Connections"), rounded
// up. A connection with a request in flight holds more, for that time.
const connectionBytes = 20 << 10

// descriptorsReserved are the descriptors the default connection bound
// leaves for everything but client connections: the admin and gRPC
// listeners' bounds, files, the issuer's connections.
const descriptorsReserved = 512

// maxConnections is TOKENWARD_MAX_CONNECTIONS (0: no bound), or by default
// proxy.DefaultMaxConnections, fewer in a container whose memory limit
// cannot hold that many idle connections on top of what the soft memory
// limit (memlimit.go) gives the caches (at least the limit's allowance for
// the rest, when the container's limit caps it), so that a flood of
// connections meets the bound before the kernel's OOM killer; and fewer
// where the descriptor limit (nofile, 0: unknown) cannot hold them, half
// of what is left beyond descriptorsReserved (a proxied request needs a
// connection to the upstream too), so that the flood meets the bound
// before accept fails for the listeners and the upstream dials. from says
// which.
func (c ConnLimits) maxConnections(caches, container int64, nofile uint64) (n int, from string) {
	if c.MaxConnections != nil {
		return *c.MaxConnections, "TOKENWARD_MAX_CONNECTIONS"
	}
	n, from = proxy.DefaultMaxConnections, "default"
	if container > 0 {
		limit, _ := softMemoryLimit(caches, container)
		room := container/100*containerPercent - (limit - otherMemory)
		if m := room / connectionBytes; m < int64(n) {
			n, from = int(m), "container memory limit"
		}
	}
	if nofile > 0 {
		m := int64(1) // one connection at least, whatever the limit
		if nofile > 2*descriptorsReserved {
			m = int64((nofile - descriptorsReserved) / 2)
		}
		if m < int64(n) {
			n, from = int(m), "descriptor limit (ulimit -n)"
		}
	}
	return n, from
}

// listenerOptions bound the main listener to max connections (0: none).
// Plain HTTP gets a 503 over the bound; TLS a close, without the handshake.
func (c ConnLimits) listenerOptions(max int, tls bool) proxy.ListenerOptions {
	return proxy.ListenerOptions{
		MaxConnections: none(max),
		Answer503:      !tls,
		SendTimeout:    none(c.SendTimeout),
	}
}

// grpcListenerOptions bound the gRPC listener: over the bound a connection
// is closed before its HTTP/2 preface (a gateway retries, or reports the
// call failed: a deny, with failure_mode_allow false). No send timeout:
// HTTP/2 flow control and gRPC's keepalive govern a stalled peer there.
func (c ConnLimits) grpcListenerOptions() proxy.ListenerOptions {
	return proxy.ListenerOptions{MaxConnections: none(c.GRPCMaxConnections), SendTimeout: -1}
}

// registerConnMetrics exports the open and refused connections of each
// bounded listener, by its name (main, admin, grpc).
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
				Help: "Client connections refused at once for being over the listener's bound (TOKENWARD_MAX_CONNECTIONS for main, TOKENWARD_GRPC_MAX_CONNECTIONS for grpc, 256 for admin).",
			}, func() float64 { return float64(l.Refused()) }),
		)
	}
}

// The soft memory limit (memlimit.go) allows 16 MiB for everything but the
// caches; 10,000 idle connections hold 190 MiB. Past the limit the collector
// runs every few hundred kilobytes of allocation, and each cycle scans every
// connection's goroutine: 20 collections in 2,000 requests, p99 latency ×7
// (BENCHMARKS.md, "Connections"). So the limit follows the connections open,
// connectionBytes each, up to the container's share (memlimit.go).

// connectionStep is how many connections open or closed move the limit, so
// that it is not set at every connection.
const connectionStep = 256

// limitWithConnections is the soft limit for base (without connections) and
// open connections, at most ceiling.
func limitWithConnections(base, ceiling, open int64) int64 {
	return min(ceiling, add(base, open/connectionStep*connectionStep*connectionBytes))
}

// followConnections raises (and lowers) the soft memory limit that
// setMemoryLimit set with the connections open, checked every interval,
// until stop is called. It does nothing when the operator set GOMEMLIMIT.
func followConnections(getenv func(string) string, readFile func(string) ([]byte, error), open func() int64, interval time.Duration) (stop func()) {
	if getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	base := debug.SetMemoryLimit(-1) // reads it
	ceiling := int64(math.MaxInt64)
	if container := containerMemoryLimit(readFile); container > 0 {
		ceiling = max(base, container/100*containerPercent)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		last := base
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if l := limitWithConnections(base, ceiling, open()); l != last {
					debug.SetMemoryLimit(l)
					last = l
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
