package proxy

import (
	"net/http"
	"time"

	"github.com/tokenward/tokenward/middleware"
)

// Observer records what the proxy and forward-auth handlers decide, for
// metrics. *admin.Metrics implements it with Prometheus; proxy itself
// depends on no metrics library. Its methods are called on the request path:
// they must be fast and must not block.
type Observer interface {
	// ObserveValidation records the time taken to extract and validate a
	// token (not called for public routes).
	ObserveValidation(time.Duration)
	// ObserveAllowed counts a request let through: on a public route, or
	// with a valid token and the route's scopes.
	ObserveAllowed(public bool)
	// ObserveDenied counts a refused request by reason.
	ObserveDenied(middleware.Reason)
	// ObserveUpstream records the time until the upstream's response
	// headers arrived (proxy mode).
	ObserveUpstream(time.Duration)
	// ObserveUpstreamError counts a failed upstream request by kind:
	// "unreachable", "timeout" or "client_gone".
	ObserveUpstreamError(kind string)
}

// timedTransport records the upstream's latency.
type timedTransport struct {
	base http.RoundTripper
	obs  Observer
}

func (t timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(r)
	if err == nil {
		t.obs.ObserveUpstream(time.Since(start))
	}
	return resp, err
}
