package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokenward/tokenward/denylist"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/opaque"
)

// What the binary needs from the network before it serves (the opaque-token
// endpoint by discovery, a deny list from a URL) is tried startAttempts times,
// startBackoff apart at first, doubling: enough to ride out a pod whose
// network or DNS is not ready for its first seconds, short enough that a
// real outage or mistake ends the start with its error, for the orchestrator
// to retry with its own backoff. Variables so that tests can shorten them.
var (
	startAttempts = 4
	startBackoff  = 500 * time.Millisecond
)

// retryAtStart calls f until it succeeds, attempts times at most, or ctx
// ends. It returns f's last error.
func retryAtStart(ctx context.Context, log *slog.Logger, what string, attempts int, f func(context.Context) error) error {
	wait := startBackoff
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil || attempt >= attempts || ctx.Err() != nil {
			return err
		}
		log.Warn(what+" failed; retrying",
			"attempt", attempt, "attempts", attempts, "retry_in", wait.String(), "error", err.Error())
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		wait *= 2
	}
}

// newOpaqueChecker returns the checker TOKENWARD_OPAQUE_TOKENS asks for (nil
// for reject) and the endpoint it calls. Without a configured endpoint it is
// found in the issuer's discovery document, retried at start; if that fails
// the binary does not start (see the README: an explicit endpoint removes the
// dependency on discovery). onCheck receives every check's result.
func newOpaqueChecker(ctx context.Context, cfg *Config, log *slog.Logger, onCheck func(string, bool)) (middleware.OpaqueChecker, string, error) {
	if cfg.OpaqueTokens == opaqueReject {
		return nil, "", nil
	}
	endpoint, variable, field := cfg.IntrospectionURL, "TOKENWARD_INTROSPECTION_URL", "introspection_endpoint"
	if cfg.OpaqueTokens == opaqueUserInfo {
		endpoint, variable, field = cfg.UserInfoURL, "TOKENWARD_USERINFO_URL", "userinfo_endpoint"
	}
	if endpoint == "" {
		var userinfo, introspection string
		err := retryAtStart(ctx, log, "opaque: discovery", startAttempts, func(ctx context.Context) error {
			dctx, cancel := context.WithTimeout(ctx, cfg.OpaqueTimeout)
			defer cancel()
			var err error
			userinfo, introspection, err = opaque.Discover(dctx, nil, cfg.opaqueIssuer)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", fmt.Errorf("interrupted during start: %w", ctx.Err())
			}
			return nil, "", fmt.Errorf("TOKENWARD_OPAQUE_TOKENS=%s: the %s of %s could not be discovered (%d attempts): %w; set %s to start without discovery",
				cfg.OpaqueTokens, field, cfg.opaqueIssuer, startAttempts, err, variable)
		}
		endpoint = introspection
		if cfg.OpaqueTokens == opaqueUserInfo {
			endpoint = userinfo
		}
		if endpoint == "" {
			return nil, "", &configError{problems: []string{fmt.Sprintf(
				"%s is not set, and the discovery document of %s lists no %s: set %s", variable, cfg.opaqueIssuer, field, variable)}}
		}
		log.Info("opaque: endpoint discovered", "check", cfg.OpaqueTokens, "issuer", cfg.opaqueIssuer, "endpoint", endpoint)
	}

	ttl, negativeTTL, entries := cfg.opaqueCache()
	var (
		checker middleware.OpaqueChecker
		err     error
	)
	switch cfg.OpaqueTokens {
	case opaqueIntrospection:
		checker, err = opaque.NewIntrospector(endpoint, opaque.IntrospectorOptions{
			ClientID:       cfg.IntrospectionClientID,
			ClientSecret:   cfg.clientSecret,
			Issuer:         cfg.opaqueIssuer,
			Timeout:        cfg.OpaqueTimeout,
			CacheTTL:       ttl,
			NegativeTTL:    negativeTTL,
			MaxEntries:     entries,
			MaxConcurrency: cfg.OpaqueMaxConcurrency,
			StaleIfBusy:    cfg.opaqueStaleIfBusy(),
			Logger:         log,
			OnCheck:        onCheck,
		})
	default:
		checker, err = opaque.NewUserInfo(endpoint, opaque.UserInfoOptions{
			Issuer:         cfg.opaqueIssuer,
			Timeout:        cfg.OpaqueTimeout,
			CacheTTL:       ttl,
			NegativeTTL:    negativeTTL,
			MaxEntries:     entries,
			MaxConcurrency: cfg.OpaqueMaxConcurrency,
			StaleIfBusy:    cfg.opaqueStaleIfBusy(),
			Logger:         log,
			OnCheck:        onCheck,
		})
	}
	if err != nil {
		return nil, "", asConfigError(err) // loadConfig checked the same: a net
	}
	return checker, endpoint, nil
}

// startDenyList loads the deny list, if one is configured, and keeps it up
// to date until close. Until a list has loaded nothing is revoked, so a first
// load that fails (after retries, for a URL) stops the start: a file that is
// missing or malformed is a configuration error (exit 2), a URL that cannot
// be fetched is not (exit 1).
func startDenyList(ctx context.Context, cfg *Config, log *slog.Logger) (*denylist.List, error) {
	if cfg.DenyListFile == "" && cfg.DenyListURL == "" {
		return nil, nil
	}
	list, err := denylist.New(denylist.Options{
		File:     cfg.DenyListFile,
		URL:      cfg.DenyListURL,
		Interval: cfg.DenyListInterval,
		Logger:   log,
	})
	if err != nil {
		return nil, asConfigError(err) // loadConfig checked the same: a net
	}
	// The list is polled until close, not until ctx ends: requests still in
	// flight during the shutdown grace are checked against a current list.
	started := false
	load := func(ctx context.Context) error {
		if !started {
			started = true
			return list.Start(context.WithoutCancel(ctx))
		}
		return list.Reload(ctx)
	}
	if cfg.DenyListFile != "" {
		if err := load(ctx); err != nil {
			list.Close()
			return nil, &configError{problems: []string{fmt.Sprintf(
				"TOKENWARD_DENYLIST_FILE: %s; until a deny list loads nothing would be revoked, so tokenward does not start",
				problem(err))}}
		}
		return list, nil
	}
	if err := retryAtStart(ctx, log, "denylist: first load", startAttempts, load); err != nil {
		list.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted during start: %w", ctx.Err())
		}
		return nil, fmt.Errorf("TOKENWARD_DENYLIST_URL: the first load failed (%d attempts): %s; until a deny list loads nothing would be revoked, so tokenward does not start",
			startAttempts, problem(err))
	}
	return list, nil
}
