package redisstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/tokenward/tokenward/dpop"
)

// Defaults of [Options].
const (
	DefaultTimeout   = 250 * time.Millisecond
	DefaultKeyPrefix = "tokenward:dpop:"
)

// Options configure [Open]. The zero value is usable: no password beyond the
// URL's, a 250 ms timeout, keys under "tokenward:dpop:", the system roots
// for rediss://, 10 connections per GOMAXPROCS.
type Options struct {
	// PasswordFile names a file holding the password (its content, less a
	// trailing newline). "" = the URL's password, if any. Giving both is an
	// error: a file meant to replace a password left in the URL, or the
	// reverse, would otherwise be ignored without a word.
	PasswordFile string

	// Timeout bounds every call (Seen, Ping) from start to answer:
	// waiting for a free connection, dialing, TLS, AUTH and the round trip.
	// 0 = [DefaultTimeout]. Negative is an error.
	Timeout time.Duration

	// KeyPrefix is put before every key, to share a Redis with other uses
	// or between APIs whose proofs must not collide. "" = [DefaultKeyPrefix].
	KeyPrefix string

	// TLSConfig is used for a rediss:// URL (a copy of it; ServerName
	// defaults to the URL's host, MinVersion to TLS 1.2), e.g. to present a
	// client certificate. nil = verify the server against the system roots
	// or RootCAsFile. Setting it with a redis:// URL is an error.
	TLSConfig *tls.Config

	// RootCAsFile names a PEM file of CA certificates to verify the server
	// with instead of the system roots (a private CA). rediss:// only; an
	// error together with a TLSConfig that has RootCAs.
	RootCAsFile string

	// PoolSize bounds the connections open to Redis at once; a call that
	// finds them all busy waits for one within Timeout. 0 = 10 per
	// GOMAXPROCS. Negative is an error.
	PoolSize int
}

// Store is a [dpop.Store] in Redis. It is safe for concurrent use. Close it
// when done.
type Store struct {
	client   *redis.Client
	prefix   string
	timeout  time.Duration
	password string // scrubbed from errors
}

var (
	_ dpop.Store  = (*Store)(nil)
	_ dpop.Pinger = (*Store)(nil)
)

// Open returns a store in the Redis named by rawURL:
//
//	redis://[[username]:password@]host[:port][/db]
//	rediss://[[username]:password@]host[:port][/db]   (TLS)
//
// The port defaults to 6379 and the database to 0; the username and the
// password are percent-decoded. The URL takes no query parameters: the
// options are in opts. Open reports every configuration problem at once; it
// does not connect (a Redis still starting does not stop the caller from
// starting): call [Store.Ping] to check the store is reachable.
func Open(rawURL string, opts Options) (*Store, error) {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("redisstore: "+format, args...))
	}

	ro := &redis.Options{
		Network: "tcp",
		// One round trip per call: a retried SET NX whose first reply was
		// lost would find its own key and report a replay.
		MaxRetries:    -1,
		DialerRetries: 1,
		// Every phase bounded, and the context's deadline (Timeout) too.
		ContextTimeoutEnabled: true,
		ClientName:            "tokenward",
		// No CLIENT SETINFO nor CLIENT MAINT_NOTIFICATIONS on connect:
		// fewer round trips before the first command after an outage.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}

	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Parse's error quotes the URL, and what it names a host or
		// port may be a password typed without its "@".
		fail("the replay store URL does not parse (not shown: it may hold a password)")
		u = nil
	}
	var host string
	if u != nil {
		switch u.Scheme {
		case "redis", "rediss":
		default:
			fail("the replay store URL's scheme is %q: want redis:// or rediss://", u.Scheme)
		}
		host = u.Hostname()
		switch {
		case u.Opaque != "":
			fail("the replay store URL has no host: want redis://host[:port][/db]")
		case host == "":
			fail("the replay store URL has no host")
		}
		port := u.Port()
		if port == "" {
			port = "6379"
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			fail("the replay store URL's port %q is not a TCP port", port)
		}
		ro.Addr = net.JoinHostPort(host, port)
		if db := strings.TrimPrefix(u.Path, "/"); db != "" {
			n, err := strconv.Atoi(db)
			if err != nil || n < 0 || strings.HasPrefix(db, "+") {
				fail("the replay store URL's path %q is not a database number", u.Path)
			}
			ro.DB = n
		}
		if u.RawQuery != "" || u.ForceQuery {
			fail("the replay store URL has a query: its options are not supported, use redisstore.Options")
		}
		if u.Fragment != "" {
			fail("the replay store URL has a fragment")
		}
		if u.User != nil {
			ro.Username = u.User.Username()
			ro.Password, _ = u.User.Password()
		}
	}

	if opts.PasswordFile != "" {
		b, err := os.ReadFile(opts.PasswordFile)
		switch {
		case err != nil:
			fail("the replay store password file: %w", err)
		case ro.Password != "":
			fail("the replay store has a password in its URL and a password file: give one")
		default:
			ro.Password = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			if ro.Password == "" {
				fail("the replay store password file %s is empty", opts.PasswordFile)
			}
		}
	}
	if ro.Username != "" && ro.Password == "" && opts.PasswordFile == "" {
		// Not echoed: a password typed without its ":" lands here.
		fail("the replay store URL has a username and no password")
	}

	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0:
		fail("the replay store timeout %v is negative", timeout)
	}
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout, ro.PoolTimeout = timeout, timeout, timeout, timeout

	pool := opts.PoolSize
	switch {
	case pool == 0:
		pool = 10 * runtime.GOMAXPROCS(0)
	case pool < 0:
		fail("the replay store pool size %d is negative", pool)
	}
	// PoolSize alone lets go-redis open more connections under load;
	// MaxActiveConns makes it the bound.
	ro.PoolSize, ro.MaxActiveConns = pool, pool

	tlsWanted := opts.TLSConfig != nil || opts.RootCAsFile != ""
	if u != nil && u.Scheme == "rediss" {
		conf := &tls.Config{}
		if opts.TLSConfig != nil {
			conf = opts.TLSConfig.Clone()
		}
		if conf.ServerName == "" {
			conf.ServerName = host
		}
		if conf.MinVersion < tls.VersionTLS12 {
			conf.MinVersion = tls.VersionTLS12
		}
		if opts.RootCAsFile != "" {
			if conf.RootCAs != nil {
				fail("the replay store has a RootCAsFile and a TLSConfig with RootCAs: give one")
			} else if pool, err := readRoots(opts.RootCAsFile); err != nil {
				errs = append(errs, err)
			} else {
				conf.RootCAs = pool
			}
		}
		ro.TLSConfig = conf
	} else if u != nil && tlsWanted {
		// Never a silent fallback to plaintext.
		fail("the replay store has TLS options but a %s:// URL: use rediss://", u.Scheme)
	}

	if len(errs) > 0 {
		return nil, redact(errors.Join(errs...), ro.Password)
	}
	prefix := opts.KeyPrefix
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	return &Store{
		client:   redis.NewClient(ro),
		prefix:   prefix,
		timeout:  timeout,
		password: ro.Password,
	}, nil
}

func readRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("redisstore: the replay store CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("redisstore: the replay store CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// Seen implements [dpop.Store] with one SET key 1 NX PX ttl: the key was
// absent (false, a new proof) if Redis set it, present (true, a replay) if
// not. A ttl below 1 ms is stored for 1 ms, Redis's smallest expiry; a
// fraction of a millisecond is rounded up. Any error (unreachable, timed
// out, refused) means the proof must be refused.
func (s *Store) Seen(ctx context.Context, id [32]byte, ttl time.Duration) (replay bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := redis.NewBoolCmd(ctx, "set", s.key(id), "1", "nx", "px", millis(ttl))
	if err := s.client.Process(ctx, cmd); err != nil {
		return false, s.wrap("seen", err)
	}
	return !cmd.Val(), nil
}

// key is the prefix and the base64url of id: printable, fixed length.
func (s *Store) key(id [32]byte) string {
	var enc [43]byte // base64.RawURLEncoding.EncodedLen(32)
	base64.RawURLEncoding.Encode(enc[:], id[:])
	return s.prefix + string(enc[:])
}

// millis is ttl in whole milliseconds, rounded up, at least 1.
func millis(ttl time.Duration) int64 {
	if ttl < time.Millisecond {
		return 1
	}
	return int64((ttl + time.Millisecond - 1) / time.Millisecond)
}

// Ping implements [dpop.Pinger]: nil if Redis answered PING within the
// timeout (with the configured password and TLS).
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		return s.wrap("ping", err)
	}
	return nil
}

// Close closes the connections. Seen and Ping fail afterwards.
func (s *Store) Close() error {
	if err := s.client.Close(); err != nil {
		return s.wrap("close", err)
	}
	return nil
}

func (s *Store) wrap(op string, err error) error {
	return redact(&opError{op: op, err: err}, s.password)
}

type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return "redisstore: " + e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// redact returns err with every occurrence of password in its text
// replaced. go-redis's errors name the address, not the password; this
// holds even if a server or a future client version echoes it.
func redact(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return &redacted{err: err, text: strings.ReplaceAll(err.Error(), password, "[redacted]")}
}

// redacted keeps the chain for errors.Is (context.DeadlineExceeded) and
// errors.As, with a scrubbed text.
type redacted struct {
	err  error
	text string
}

func (e *redacted) Error() string { return e.text }
func (e *redacted) Unwrap() error { return e.err }
