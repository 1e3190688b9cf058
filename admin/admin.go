package admin

import (
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
// nothing to wait for: /readyz answers 200.
func NewHandler(gatherer prometheus.Gatherer, keys *jwks.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		type issuer struct {
			Issuer      string     `json:"issuer"`
			Loaded      bool       `json:"loaded"`
			Keys        int        `json:"keys"`
			LastRefresh *time.Time `json:"last_refresh,omitempty"`
			LastError   string     `json:"last_error,omitempty"`
		}
		var body struct {
			Ready   bool     `json:"ready"`
			Issuers []issuer `json:"issuers"`
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
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !body.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(body)
	})
	return mux
}
