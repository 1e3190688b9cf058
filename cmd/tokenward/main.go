// Command tokenward validates OAuth 2.0 bearer access tokens in front of an
// API: as a sidecar reverse proxy, or as a forward-auth service for NGINX
// auth_request, Traefik ForwardAuth and Envoy ext_authz. It is configured by
// TOKENWARD_* environment variables, listed in the README.
//
// Usage:
//
//	tokenward                  serve, as configured by the environment
//	tokenward demo             a self-contained demo with curl commands to try
//	tokenward inspect [token]  decode a token and say whether it would be accepted
//	tokenward version          print the version
//	tokenward help             print the usage
//
// Signals: SIGTERM and SIGINT shut down gracefully; SIGHUP reloads
// TOKENWARD_RULES_FILE at once (it is also checked every
// TOKENWARD_RULES_RELOAD_INTERVAL). A new version replaces the rules in
// force atomically, and only once validated whole: a bad, empty, missing or
// unreadable file keeps the rules in force (logged, and counted in
// tokenward_rules_reload_errors_total), so a reload never weakens them.
// SIGHUP also reloads the listener's TLS files (TOKENWARD_TLS_*, checked
// every TOKENWARD_TLS_RELOAD_INTERVAL): a new certificate, key or client CA
// bundle is served from the next handshake once parsed whole; a bad one keeps
// the version in force (logged, counted in tokenward_tls_reload_errors_total),
// and open connections are never closed by a reload. SIGHUP also checks the
// deny list at once (TOKENWARD_DENYLIST_*), so a revocation need not wait for
// its interval.
//
// # Security
//
// The listener's TLS (tls.go) is TLS 1.2 at least with Go's default cipher
// suites. A client CA file without TOKENWARD_TLS_CLIENT_AUTH requires client
// certificates (fail closed); none with a CA file is a configuration error.
// A PEM file cut while being written is refused, not served in part. The
// admin listener stays plain HTTP: probes and scrapes inside the cluster,
// no tokens.
//
// Exit status: 0 on success (and after a graceful shutdown on SIGTERM or
// SIGINT), 2 for a configuration error (nothing was started), 1 otherwise
// (inspect: the token would be refused).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling, so that a
		// second one ends the process at once, mid-shutdown.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}
