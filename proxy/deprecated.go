package proxy

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenward/tokenward/admin"
	"github.com/tokenward/tokenward/denylist"
	"github.com/tokenward/tokenward/jwks"
	"github.com/tokenward/tokenward/middleware"
)

// The metrics and the admin server moved to package admin. These names are
// kept so that code written against them still builds; with them gone, proxy
// will no longer import Prometheus.

// Metrics is [admin.Metrics].
//
// Deprecated: use [admin.Metrics].
type Metrics = admin.Metrics

// NewMetrics is [admin.NewMetrics].
//
// Deprecated: use [admin.NewMetrics].
func NewMetrics(reg prometheus.Registerer, keys *jwks.Registry) *Metrics {
	return admin.NewMetrics(reg, keys)
}

// NewAdmin is [admin.NewHandler].
//
// Deprecated: use [admin.NewHandler].
func NewAdmin(gatherer prometheus.Gatherer, keys *jwks.Registry) http.Handler {
	return admin.NewHandler(gatherer, keys)
}

// RegisterDenyList is [admin.RegisterDenyList].
//
// Deprecated: use [admin.RegisterDenyList].
func RegisterDenyList(reg prometheus.Registerer, list *denylist.List) {
	admin.RegisterDenyList(reg, list)
}

// RegisterTokenCache is [admin.RegisterTokenCache].
//
// Deprecated: use [admin.RegisterTokenCache].
func RegisterTokenCache(reg prometheus.Registerer, v *middleware.Validator) {
	admin.RegisterTokenCache(reg, v)
}
