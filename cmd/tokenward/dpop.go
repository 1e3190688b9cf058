package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/tokenward/tokenward/dpop"
	"github.com/tokenward/tokenward/middleware"
	"github.com/tokenward/tokenward/proxy"
)

// dpopConfig is the DPoP configuration as checkDPoP derived it: the
// options without the replay store, which newGateway opens (a network
// store is not dialled by a configuration check).
type dpopConfig struct {
	opts middleware.DPoPOptions
	// redisURL is TOKENWARD_DPOP_REPLAY_STORE when it names Redis; ""
	// for the memory store.
	redisURL string
}

// checkDPoP checks the TOKENWARD_DPOP* variables and TOKENWARD_PUBLIC_URL,
// and reads the nonce secret file. No message quotes the secret or the
// store URL's password.
func (c *Config) checkDPoP() []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	ok := func(key string) bool { return !c.unreadable[key] }

	mode, err := middleware.ParseDPoPMode(c.DPoP)
	if err != nil {
		add("TOKENWARD_DPOP: %q is not allowed (the default), disabled or required", c.DPoP)
	}
	o := middleware.DPoPOptions{Mode: mode, PublicURL: strings.TrimSuffix(c.PublicURL, "/")}

	c.DPoPAlgorithms = list(c.DPoPAlgorithms)
	if len(c.DPoPAlgorithms) == 0 {
		add("TOKENWARD_DPOP_ALGORITHMS is empty: name at least one of %s", strings.Join(dpop.Algorithms, ", "))
	}
	for _, a := range c.DPoPAlgorithms {
		switch {
		case slices.Contains(dpop.Algorithms, a):
		case strings.EqualFold(a, "none") || strings.HasPrefix(strings.ToUpper(a), "HS"):
			add("TOKENWARD_DPOP_ALGORITHMS: %q is never accepted: a proof is signed with the client's private key (supported: %s)", a, strings.Join(dpop.Algorithms, ", "))
		default:
			add("TOKENWARD_DPOP_ALGORITHMS: %q is not supported (supported: %s; names are case-sensitive)", a, strings.Join(dpop.Algorithms, ", "))
		}
	}
	o.Algorithms = c.DPoPAlgorithms

	if c.DPoPMaxAge <= 0 && ok("TOKENWARD_DPOP_MAX_AGE") {
		add("TOKENWARD_DPOP_MAX_AGE: %s must be positive: a proof is accepted for a bounded time", c.DPoPMaxAge)
	}
	o.MaxAge = c.DPoPMaxAge

	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
			add("TOKENWARD_PUBLIC_URL: %q must be the scheme and host clients use, like https://api.example.com (no path, query or user info)", redactPair(c.PublicURL))
		}
	}

	switch {
	case c.DPoPNonce && c.DPoPNonceSecretFile == "":
		add("TOKENWARD_DPOP_NONCE_SECRET_FILE is not set: server nonces are authenticated with a secret of at least %d bytes read from a file (every replica mounts the same one), like: head -c 32 /dev/urandom > nonce.key", dpop.MinNonceSecret)
	case c.DPoPNonce:
		secret, err := dpop.ReadSecretFile(c.DPoPNonceSecretFile)
		if err != nil {
			add("TOKENWARD_DPOP_NONCE_SECRET_FILE: %s", strings.TrimPrefix(err.Error(), "dpop: "))
			break
		}
		if o.Nonces, err = dpop.NewNonces(secret, dpop.NonceOptions{}); err != nil {
			add("TOKENWARD_DPOP_NONCE_SECRET_FILE: %s", strings.TrimPrefix(err.Error(), "dpop: "))
		}
		clear(secret)
	case c.DPoPNonceSecretFile != "":
		c.ignored = append(c.ignored, "TOKENWARD_DPOP_NONCE_SECRET_FILE is ignored without TOKENWARD_DPOP_NONCE=true")
	}

	if c.DPoPReplayTimeout <= 0 && ok("TOKENWARD_DPOP_REPLAY_TIMEOUT") {
		add("TOKENWARD_DPOP_REPLAY_TIMEOUT: %s must be positive: a call to the store always has a deadline", c.DPoPReplayTimeout)
	}
	switch u, err := url.Parse(c.DPoPReplayStore); {
	case c.DPoPReplayStore == "" || c.DPoPReplayStore == "memory":
		for _, v := range []struct{ name, value string }{
			{"TOKENWARD_DPOP_REPLAY_PASSWORD_FILE", c.DPoPReplayPasswordFile},
			{"TOKENWARD_DPOP_REPLAY_CA_FILE", c.DPoPReplayCAFile},
		} {
			if v.value != "" {
				c.ignored = append(c.ignored, v.name+" is ignored without a Redis TOKENWARD_DPOP_REPLAY_STORE")
			}
		}
	case err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "":
		add("TOKENWARD_DPOP_REPLAY_STORE: %s is not memory (the default), redis://host:port[/db] or rediss://host:port[/db]", redactStoreURL(c.DPoPReplayStore))
	default:
		c.dpop.redisURL = c.DPoPReplayStore
		if c.DPoPReplayCAFile != "" && u.Scheme != "rediss" {
			add("TOKENWARD_DPOP_REPLAY_CA_FILE: only used with a rediss:// (TLS) TOKENWARD_DPOP_REPLAY_STORE")
		}
	}

	if c.TokenTypeHeader != "" {
		// The same rules as claim headers, and not one of them.
		if _, err := proxy.ParseClaimHeaders("token_type=" + c.TokenTypeHeader); err != nil {
			add("TOKENWARD_TOKEN_TYPE_HEADER: %v", err)
		}
		for _, h := range c.claimHeaders {
			if strings.EqualFold(h.Header, c.TokenTypeHeader) {
				add("TOKENWARD_TOKEN_TYPE_HEADER: %q is also in TOKENWARD_CLAIM_HEADERS", c.TokenTypeHeader)
			}
		}
		if strings.EqualFold(c.ScopesHeader, c.TokenTypeHeader) {
			add("TOKENWARD_TOKEN_TYPE_HEADER: %q is also TOKENWARD_SCOPES_HEADER", c.TokenTypeHeader)
		}
	}

	if mode == middleware.DPoPDisabled {
		for _, v := range []struct {
			name string
			set  bool
		}{
			{"TOKENWARD_DPOP_NONCE", c.DPoPNonce},
			{"TOKENWARD_DPOP_REPLAY_STORE", c.DPoPReplayStore != ""},
			{"TOKENWARD_FORWARD_DPOP_PROOF", c.ForwardDPoPProof},
		} {
			if v.set {
				c.ignored = append(c.ignored, v.name+" is ignored with TOKENWARD_DPOP=disabled")
			}
		}
	}
	if len(problems) == 0 {
		// The net: anything the guard would refuse, reported here.
		for _, e := range unjoin(middleware.CheckDPoPOptions(o)) {
			add("TOKENWARD_DPOP: %s", strings.TrimPrefix(e.Error(), "tokenward: "))
		}
	}
	c.dpop.opts = o
	return problems
}

// redactStoreURL shows a store URL without its password.
func redactStoreURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(raw, "@") {
			return "(a value with user info, not shown)"
		}
		return fmt.Sprintf("%q", raw)
	}
	return fmt.Sprintf("%q", u.Redacted())
}

// storeUp is the replay store's state for /readyz and the
// tokenward_dpop_replay_store_up gauge: a store that cannot be pinged
// (memory) is always up.
func storeUp(ctx context.Context, s dpop.Store) error {
	p, ok := s.(dpop.Pinger)
	if !ok {
		return nil
	}
	return p.Ping(ctx)
}

// replayStoreName is the store for the start log: "memory", or the Redis
// URL without its password.
func replayStoreName(c *Config) string {
	if c.dpop.redisURL == "" {
		return "memory"
	}
	return strings.Trim(redactStoreURL(c.dpop.redisURL), `"`)
}
