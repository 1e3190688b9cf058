package redisstore_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenward/tokenward/dpop/redisstore"
	"github.com/tokenward/tokenward/internal/processtest"
	"github.com/tokenward/tokenward/internal/redistest"
)

// All tests run against a real redis-server (internal/redistest), except
// TestSilentServer's fake that never answers.

func open(t testing.TB, rawURL string, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(rawURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func id(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func key(prefix string, id [32]byte) string {
	return prefix + base64.RawURLEncoding.EncodeToString(id[:])
}

// hangGuard runs f and fails the test if it has not returned after a
// generous bound: a call that should be cut by the store's timeout but
// hangs would otherwise stall the run until go test's own timeout. It is
// not a speed assertion.
func hangGuard(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not return: the timeout does not bound it", what)
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		<-tick.C
	}
}

func TestSeen(t *testing.T) {
	srv := redistest.New(t, redistest.Options{})
	s := open(t, srv.URL(), redisstore.Options{})
	rc := srv.Client()
	ctx := context.Background()

	a, b := id("a"), id("b")
	for i, c := range []struct {
		id   [32]byte
		want bool
	}{{a, false}, {a, true}, {b, false}, {a, true}, {b, true}} {
		replay, err := s.Seen(ctx, c.id, time.Minute)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if replay != c.want {
			t.Fatalf("call %d: replay = %v, want %v", i, replay, c.want)
		}
	}

	// What Redis holds: prefix + base64url(id) → "1", expiring.
	k := key(redisstore.DefaultKeyPrefix, a)
	v, err := rc.Get(ctx, k).Result()
	if err != nil || v != "1" {
		t.Fatalf("GET %s = %q, %v; want \"1\"", k, v, err)
	}
	ttl, err := rc.PTTL(ctx, k).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("PTTL %s = %v, %v; want in (0, 1m]", k, ttl, err)
	}
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil || len(keys) != 2 {
		t.Fatalf("KEYS * = %q, %v; want the two ids only", keys, err)
	}
}

// TestSeenOneRoundTrip reads the server's own command log (SLOWLOG with a
// zero threshold records every command with its arguments): each Seen is
// exactly one SET key 1 NX PX ms, the ttl in whole milliseconds, rounded
// up, at least 1 — never EX, never a second command.
func TestSeenOneRoundTrip(t *testing.T) {
	srv := redistest.New(t, redistest.Options{})
	rc := srv.Client()
	ctx := context.Background()
	s := open(t, srv.URL(), redisstore.Options{KeyPrefix: "p:"})
	if err := s.Ping(ctx); err != nil { // connect (HELLO) before the log starts
		t.Fatal(err)
	}
	if err := rc.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.SlowLogReset(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		ttl  time.Duration
		want string
	}{
		{time.Minute, "60000"},
		{time.Second, "1000"}, // go-redis's SetNX would send EX 1
		{1500 * time.Microsecond, "2"},
		{time.Nanosecond, "1"},
		{0, "1"},
		{-time.Second, "1"},
	}
	for i, c := range cases {
		if _, err := s.Seen(ctx, id(fmt.Sprint(i)), c.ttl); err != nil {
			t.Fatal(err)
		}
	}

	entries, err := rc.Do(ctx, "slowlog", "get", "128").Slice()
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for i := len(entries) - 1; i >= 0; i-- { // newest first in the log
		e := entries[i].([]any)
		var args []string
		for _, a := range e[3].([]any) {
			args = append(args, a.(string))
		}
		if name, _ := e[5].(string); name != "tokenward" {
			continue // the test's own client
		}
		got = append(got, args)
	}
	if len(got) != len(cases) {
		t.Fatalf("the store sent %d commands for %d Seen calls: %q", len(got), len(cases), got)
	}
	for i, c := range cases {
		want := []string{"set", key("p:", id(fmt.Sprint(i))), "1", "nx", "px", c.want}
		if strings.Join(got[i], " ") != strings.Join(want, " ") {
			t.Errorf("ttl %v: sent %q, want %q", c.ttl, got[i], want)
		}
	}
}

// TestSeenExpires: once Redis has expired the key, the id is new again.
// The test waits for the key to be gone, as Redis reports it.
func TestSeenExpires(t *testing.T) {
	srv := redistest.New(t, redistest.Options{})
	rc := srv.Client()
	ctx := context.Background()
	s := open(t, srv.URL(), redisstore.Options{})
	x := id("x")
	if replay, err := s.Seen(ctx, x, 100*time.Millisecond); err != nil || replay {
		t.Fatalf("first Seen = %v, %v", replay, err)
	}
	if replay, err := s.Seen(ctx, x, time.Minute); err != nil || !replay {
		t.Fatalf("Seen before expiry = %v, %v; want a replay", replay, err)
	}
	waitFor(t, "the key expires", func() bool {
		n, err := rc.Exists(ctx, key(redisstore.DefaultKeyPrefix, x)).Result()
		return err == nil && n == 0
	})
	if replay, err := s.Seen(ctx, x, time.Minute); err != nil || replay {
		t.Fatalf("Seen after expiry = %v, %v; want new", replay, err)
	}
	if replay, err := s.Seen(ctx, x, time.Minute); err != nil || !replay {
		t.Fatalf("Seen again = %v, %v; want a replay", replay, err)
	}
}

// TestSeenConcurrent: the same id asked at once by many goroutines through
// two stores (two replicas sharing one Redis) is new for exactly one.
func TestSeenConcurrent(t *testing.T) {
	srv := redistest.New(t, redistest.Options{})
	stores := []*redisstore.Store{
		open(t, srv.URL(), redisstore.Options{Timeout: 10 * time.Second}),
		open(t, srv.URL(), redisstore.Options{Timeout: 10 * time.Second}),
	}
	const n = 64
	for round := range 5 {
		x := id(fmt.Sprint("concurrent", round))
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex // guards fresh, errs
		fresh := 0
		var errs []error
		for i := range n {
			wg.Go(func() {
				<-start
				replay, err := stores[i%2].Seen(context.Background(), x, time.Minute)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else if !replay {
					fresh++
				}
			})
		}
		close(start)
		wg.Wait()
		if len(errs) > 0 {
			t.Fatal(errors.Join(errs...))
		}
		if fresh != 1 {
			t.Fatalf("round %d: %d of %d concurrent calls were told the id is new, want exactly 1", round, fresh, n)
		}
	}
}

// TestPoolBounded: many concurrent calls share at most PoolSize connections.
func TestPoolBounded(t *testing.T) {
	srv := redistest.New(t, redistest.Options{})
	rc := srv.Client()
	s := open(t, srv.URL(), redisstore.Options{PoolSize: 3, Timeout: 10 * time.Second})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			if _, err := s.Seen(context.Background(), id(fmt.Sprint("pool", i)), time.Minute); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	list, err := rc.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(list, " name=tokenward "); got < 1 || got > 3 {
		t.Fatalf("the store holds %d connections, want 1 to 3 (PoolSize):\n%s", got, list)
	}
}

func TestKeyPrefixAndDatabase(t *testing.T) {
	srv := redistest.New(t, redistest.Options{})
	ctx := context.Background()
	s := open(t, srv.URL()+"/3", redisstore.Options{KeyPrefix: "api-one:"})
	x := id("x")
	if _, err := s.Seen(ctx, x, time.Minute); err != nil {
		t.Fatal(err)
	}
	db3 := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: 3})
	defer db3.Close()
	if n, err := db3.Exists(ctx, key("api-one:", x)).Result(); err != nil || n != 1 {
		t.Fatalf("EXISTS in db 3 = %d, %v; want the key there", n, err)
	}
	if n, err := srv.Client().DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE of db 0 = %d, %v; want 0", n, err)
	}
	// Another prefix is another store: the same id is new there.
	other := open(t, srv.URL()+"/3", redisstore.Options{KeyPrefix: "api-two:"})
	if replay, err := other.Seen(ctx, x, time.Minute); err != nil || replay {
		t.Fatalf("Seen under another prefix = %v, %v; want new", replay, err)
	}
}

func TestPassword(t *testing.T) {
	const password = "pw-Redis-8c1f e/@:"
	const wrong = "wrong-Pa55-4b2d"
	srv := redistest.New(t, redistest.Options{Password: password})
	ctx := context.Background()
	dir := t.TempDir()
	file := func(content string) string {
		p := filepath.Join(dir, fmt.Sprint(len(content), "pw"))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	works := func(t *testing.T, s *redisstore.Store) {
		t.Helper()
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		if replay, err := s.Seen(ctx, id(t.Name()), time.Minute); err != nil || replay {
			t.Fatalf("Seen = %v, %v", replay, err)
		}
	}
	refused := func(t *testing.T, s *redisstore.Store) {
		t.Helper()
		errPing := s.Ping(ctx)
		_, errSeen := s.Seen(ctx, id(t.Name()), time.Minute)
		for _, err := range []error{errPing, errSeen} {
			if err == nil {
				t.Fatal("a call succeeded with a wrong or missing password")
			}
			for _, secret := range []string{password, wrong} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("the error shows a password: %v", err)
				}
			}
		}
	}

	t.Run("url", func(t *testing.T) {
		works(t, open(t, srv.URL(), redisstore.Options{}))
	})
	t.Run("url-username", func(t *testing.T) {
		u := "redis://default:" + strings.TrimPrefix(srv.URL(), "redis://:")
		works(t, open(t, u, redisstore.Options{}))
	})
	t.Run("file", func(t *testing.T) {
		works(t, open(t, "redis://"+srv.Addr, redisstore.Options{PasswordFile: file(password + "\n")}))
	})
	t.Run("file-username", func(t *testing.T) {
		works(t, open(t, "redis://default@"+srv.Addr, redisstore.Options{PasswordFile: file(password + "\r\n")}))
	})
	t.Run("wrong-url", func(t *testing.T) {
		refused(t, open(t, "redis://:"+wrong+"@"+srv.Addr, redisstore.Options{}))
	})
	t.Run("wrong-file", func(t *testing.T) {
		refused(t, open(t, "redis://"+srv.Addr, redisstore.Options{PasswordFile: file(wrong)}))
	})
	t.Run("none", func(t *testing.T) {
		refused(t, open(t, "redis://"+srv.Addr, redisstore.Options{}))
	})
}

// TestOpenErrors: configuration mistakes are refused at Open, all at once,
// and no error shows the password.
func TestOpenErrors(t *testing.T) {
	const secret = "hunter2-s3cret"
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		url  string
		opts redisstore.Options
		want []string
	}{
		{"scheme", "http://:" + secret + "@host", redisstore.Options{}, []string{`scheme is "http"`}},
		{"unix", "unix:///run/redis.sock", redisstore.Options{}, []string{`scheme is "unix"`}},
		{"no-host", "redis://:" + secret + "@", redisstore.Options{}, []string{"no host"}},
		{"opaque", "redis:" + secret, redisstore.Options{}, []string{"no host"}},
		{"unparsable", "redis://:" + secret + "@host:port\x7f", redisstore.Options{}, []string{"does not parse"}},
		{"port-as-password", "redis://host:" + secret, redisstore.Options{}, []string{"does not parse"}},
		{"port-range", "redis://host:70000", redisstore.Options{}, []string{"not a TCP port"}},
		{"db", "redis://host/x", redisstore.Options{}, []string{"not a database number"}},
		{"db-negative", "redis://host/-1", redisstore.Options{}, []string{"not a database number"}},
		{"db-path", "redis://host/0/1", redisstore.Options{}, []string{"not a database number"}},
		{"query", "redis://host/?dial_timeout=1s", redisstore.Options{}, []string{"query"}},
		{"fragment", "redis://host/#x", redisstore.Options{}, []string{"fragment"}},
		{"username-only", "redis://" + secret + "@host", redisstore.Options{}, []string{"username and no password"}},
		{"url-and-file", "redis://:" + secret + "@host", redisstore.Options{PasswordFile: pwFile}, []string{"password in its URL and a password file"}},
		{"file-missing", "redis://host", redisstore.Options{PasswordFile: filepath.Join(dir, "none")}, []string{"password file"}},
		{"file-empty", "redis://host", redisstore.Options{PasswordFile: empty}, []string{"is empty"}},
		{"timeout", "redis://host", redisstore.Options{Timeout: -time.Second}, []string{"timeout -1s is negative"}},
		{"pool", "redis://host", redisstore.Options{PoolSize: -1}, []string{"pool size -1"}},
		{"tls-plain-url", "redis://host", redisstore.Options{TLSConfig: &tls.Config{}}, []string{"use rediss://"}},
		{"ca-plain-url", "redis://host", redisstore.Options{RootCAsFile: notPEM}, []string{"use rediss://"}},
		{"ca-not-pem", "rediss://host", redisstore.Options{RootCAsFile: notPEM}, []string{"no PEM certificate"}},
		{"ca-missing", "rediss://host", redisstore.Options{RootCAsFile: filepath.Join(dir, "none")}, []string{"CA file"}},
		{"all-at-once", "rediss://:" + secret + "@host:0/db?x=1", redisstore.Options{PasswordFile: pwFile, Timeout: -1, PoolSize: -1},
			[]string{"not a TCP port", "not a database number", "query", "password in its URL", "timeout", "pool size"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := redisstore.Open(c.url, c.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open accepted it")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestErrorsHidePassword: an error whose text would contain the password
// has it scrubbed, and still unwraps to its cause. The password here is the
// address of a closed port, which go-redis's dial error quotes.
func TestErrorsHidePassword(t *testing.T) {
	addr := processtest.FreeAddr(t) // closed again: dialing it is refused
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(addr), 0o600); err != nil {
		t.Fatal(err)
	}
	s := open(t, "redis://"+addr, redisstore.Options{PasswordFile: pw})
	_, errSeen := s.Seen(context.Background(), id("x"), time.Minute)
	errPing := s.Ping(context.Background())
	for _, err := range []error{errSeen, errPing} {
		if err == nil {
			t.Fatal("a call succeeded against a closed port")
		}
		if strings.Contains(err.Error(), addr) {
			t.Fatalf("the error shows the password: %v", err)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("%v does not unwrap to ECONNREFUSED", err)
		}
	}
}

// TestOutage: while Redis is down every call fails (it is not answered
// "new"), without hanging; once Redis is back on the same port the same
// Store works again, with no new Open.
func TestOutage(t *testing.T) {
	srv := redistest.New(t, redistest.Options{Password: "pw-outage"})
	ctx := context.Background()
	s := open(t, srv.URL(), redisstore.Options{Timeout: 200 * time.Millisecond})
	if replay, err := s.Seen(ctx, id("before"), time.Minute); err != nil || replay {
		t.Fatalf("Seen = %v, %v", replay, err)
	}

	srv.Stop()
	for i := range 30 { // past PoolSize failed dials too: go-redis's dial breaker
		hangGuard(t, "Seen during the outage", func() {
			replay, err := s.Seen(ctx, id(fmt.Sprint("down", i)), time.Minute)
			if err == nil {
				t.Fatalf("Seen answered %v while Redis is down", replay)
			}
		})
	}
	hangGuard(t, "Ping during the outage", func() {
		if err := s.Ping(ctx); err == nil {
			t.Fatal("Ping succeeded while Redis is down")
		}
	})

	srv.Start()
	i := 0
	waitFor(t, "Seen works again after the restart", func() bool {
		i++
		_, err := s.Seen(ctx, id(fmt.Sprint("probe", i)), time.Minute)
		return err == nil
	})
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	after := id("after")
	if replay, err := s.Seen(ctx, after, time.Minute); err != nil || replay {
		t.Fatalf("Seen after recovery = %v, %v; want new", replay, err)
	}
	if replay, err := s.Seen(ctx, after, time.Minute); err != nil || !replay {
		t.Fatalf("Seen again after recovery = %v, %v; want a replay", replay, err)
	}
}

// TestSilentServer: a Redis that accepts connections and never answers
// (our fake) makes every call fail with a timeout, cut by Options.Timeout
// although the caller's context has no deadline.
func TestSilentServer(t *testing.T) {
	addr := redistest.Silent(t)
	s := open(t, "redis://"+addr, redisstore.Options{Timeout: 100 * time.Millisecond, PoolSize: 2})
	isTimeout := func(err error) bool {
		var ne net.Error
		return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
	}
	for i := range 4 { // more than PoolSize: a stuck connection is not kept
		hangGuard(t, "Seen against a silent server", func() {
			replay, err := s.Seen(context.Background(), id(fmt.Sprint(i)), time.Minute)
			if err == nil {
				t.Fatalf("Seen answered %v from a server that says nothing", replay)
			}
			if !isTimeout(err) {
				t.Fatalf("Seen: %v; want a timeout", err)
			}
		})
	}
	hangGuard(t, "Ping against a silent server", func() {
		if err := s.Ping(context.Background()); !isTimeout(err) {
			t.Fatalf("Ping: %v; want a timeout", err)
		}
	})
}

func TestTLS(t *testing.T) {
	srv := redistest.New(t, redistest.Options{TLS: true, Password: "pw-tls"})
	ctx := context.Background()
	if !strings.HasPrefix(srv.URL(), "rediss://") {
		t.Fatalf("URL %s", srv.URL())
	}
	t.Run("ca-file", func(t *testing.T) {
		s := open(t, srv.URL(), redisstore.Options{RootCAsFile: srv.CAFile})
		x := id("tls")
		if replay, err := s.Seen(ctx, x, time.Minute); err != nil || replay {
			t.Fatalf("Seen = %v, %v", replay, err)
		}
		if replay, err := s.Seen(ctx, x, time.Minute); err != nil || !replay {
			t.Fatalf("Seen again = %v, %v; want a replay", replay, err)
		}
	})
	t.Run("tls-config", func(t *testing.T) {
		s := open(t, srv.URL(), redisstore.Options{TLSConfig: &tls.Config{RootCAs: srv.RootCAs}})
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown-ca", func(t *testing.T) {
		s := open(t, srv.URL(), redisstore.Options{})
		err := s.Ping(ctx)
		var unknown x509.UnknownAuthorityError
		if err == nil || !errors.As(err, &unknown) {
			t.Fatalf("Ping with the system roots: %v; want an unknown-authority error", err)
		}
		if _, err := s.Seen(ctx, id("x"), time.Minute); err == nil {
			t.Fatal("Seen succeeded over an unverified TLS connection")
		}
	})
	t.Run("wrong-name", func(t *testing.T) {
		s := open(t, srv.URL(), redisstore.Options{TLSConfig: &tls.Config{RootCAs: srv.RootCAs, ServerName: "redis.example"}})
		if err := s.Ping(ctx); err == nil {
			t.Fatal("Ping succeeded with a certificate for another name")
		}
	})
	t.Run("plaintext-to-tls", func(t *testing.T) {
		s := open(t, "redis://:pw-tls@"+srv.Addr, redisstore.Options{Timeout: 500 * time.Millisecond})
		if err := s.Ping(ctx); err == nil {
			t.Fatal("Ping succeeded in plaintext against a TLS port")
		}
	})
}

func TestClose(t *testing.T) {
	srv := redistest.New(t, redistest.Options{})
	s, err := redisstore.Open(srv.URL(), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Seen(context.Background(), id("x"), time.Minute); err == nil {
		t.Fatal("Seen succeeded on a closed store")
	}
}

// BenchmarkSeen: one Seen against a real redis-server on loopback, the
// added cost of a shared replay store per DPoP request.
func BenchmarkSeen(b *testing.B) {
	srv := redistest.New(b, redistest.Options{})
	s := open(b, srv.URL(), redisstore.Options{})
	ctx := context.Background()
	var n atomic.Uint64 // every id new: the path of an accepted proof
	next := func() (x [32]byte) {
		binary.LittleEndian.PutUint64(x[:], n.Add(1))
		return x
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Seen(ctx, next(), time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Seen(ctx, next(), time.Minute); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
