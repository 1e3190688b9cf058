package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokenward/tokenward/jwks"
)

// NewHandler returns the admin handler: /metrics (Prometheus), /healthz (the
// process is alive) and /readyz (every issuer's keys are loaded; the body
// lists each issuer's state, never key material). keys nil means there is
// nothing to wait for: /readyz answers 200. Each of deps is listed as up or
// down in the body, and does not make the pod unready (see [Dependency]).
func NewHandler(gatherer prometheus.Gatherer, keys *jwks.Registry, deps ...Dependency) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		type issuer struct {
			Issuer      string     `json:"issuer"`
			Loaded      bool       `json:"loaded"`
			Keys        int        `json:"keys"`
			LastRefresh *time.Time `json:"last_refresh,omitempty"`
			LastError   string     `json:"last_error,omitempty"`
		}
		type dependency struct {
			Name  string `json:"name"`
			Up    bool   `json:"up"`
			Error string `json:"error,omitempty"`
		}
		var body struct {
			Ready        bool         `json:"ready"`
			Issuers      []issuer     `json:"issuers"`
			Dependencies []dependency `json:"dependencies,omitempty"`
		}
		body.Ready = true
		if keys != nil {
			for _, s := range keys.Status() {
				is := issuer{Issuer: s.Issuer, Loaded: s.Loaded, Keys: s.Keys, LastError: s.LastError}
				if !s.LastRefresh.IsZero() {
					t := s.LastRefresh
					is.LastRefresh = &t
				}
				body.Issuers = append(body.Issuers, is)
				body.Ready = body.Ready && s.Loaded
			}
		}
		for _, d := range deps {
			dep := dependency{Name: d.Name, Up: true}
			if err := d.Check(r.Context()); err != nil {
				dep.Up, dep.Error = false, d.Problem
			}
			body.Dependencies = append(body.Dependencies, dep)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !body.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(body)
	})
	return mux
}

// Dependency is something some requests need besides the issuers' keys,
// checked by /readyz on each call and listed in its body. Its being down does
// not make /readyz 503: a dependency every replica shares (the DPoP replay
// store) is down for all of them at once, so taking them all out of the
// Service would turn the requests that do not need it (bearer tokens, public
// routes) into failures too, and the ones that do from tokenward's 503 with
// Retry-After into the load balancer's bare one.
type Dependency struct {
	// Name names it in /readyz's body ("dpop_replay_store").
	Name string
	// Check reports whether it answers; it returns by ctx's deadline.
	Check func(ctx context.Context) error
	// Problem is what /readyz says when Check fails: fixed, since an
	// error's text may quote an address or a credential.
	Problem string
}
