// Package redistest runs a real redis-server (Debian's package) for one
// test: on a free loopback port, without persistence, in the test's
// temporary directory, optionally with a password and TLS. A test can stop
// it and start it again on the same port, to see what a client of it does
// during an outage and after the recovery.
//
// Without redis-server the test is skipped with the install command, except
// when CI=true, where it fails: CI is where the tests against Redis must run.
package redistest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenward/tokenward/internal/certtest"
	"github.com/tokenward/tokenward/internal/processtest"
)

// Options choose how the server is run. The zero value is a plaintext
// server without a password.
type Options struct {
	// Password is set as requirepass: clients must AUTH with it. "" = none.
	Password string
	// TLS serves TLS only (no plaintext port), with a certificate for
	// 127.0.0.1 and localhost signed by a CA made for this server
	// ([Server.CAFile], [Server.RootCAs]). Clients are not asked for a
	// certificate.
	TLS bool
}

// Server is a redis-server run for one test.
type Server struct {
	// Addr is the loopback address it listens on, the same across Stop and
	// Start.
	Addr string
	// Password is [Options.Password].
	Password string
	// CAFile is a PEM file holding the CA certificate that signed the
	// server's certificate; "" without TLS.
	CAFile string
	// RootCAs holds the same CA; nil without TLS.
	RootCAs *x509.CertPool

	t    testing.TB
	bin  string
	args []string

	mu   sync.Mutex // guards proc
	proc *processtest.Process
}

// New starts a redis-server for t and returns once it answers PING. It is
// stopped when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is required in CI (apt-get install redis-server): %v", err)
		}
		t.Skip("redis-server not installed: apt-get install redis-server")
	}
	dir := t.TempDir()
	addr := processtest.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	s := &Server{Addr: addr, Password: opts.Password, t: t, bin: bin}
	s.args = []string{
		"--bind", "127.0.0.1",
		"--save", "", // no RDB snapshots: a restart forgets every key
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--logfile", "", // stdout, kept by processtest and shown on failure
	}
	if opts.Password != "" {
		s.args = append(s.args, "--requirepass", opts.Password)
	}
	if opts.TLS {
		s.CAFile, s.RootCAs = writeCerts(t, dir)
		s.args = append(s.args,
			"--port", "0", "--tls-port", port,
			"--tls-cert-file", filepath.Join(dir, "server.pem"),
			"--tls-key-file", filepath.Join(dir, "server-key.pem"),
			"--tls-ca-cert-file", s.CAFile,
			"--tls-auth-clients", "no",
		)
	} else {
		s.args = append(s.args, "--port", port)
	}
	s.Start()
	return s
}

// Start starts the server again after [Server.Stop], on the same port, and
// returns once it answers PING. It holds none of the keys it held before.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.t.Fatal("redistest: Start: the server is running")
	}
	s.proc = processtest.Start(s.t, "redis-server", exec.Command(s.bin, s.args...), s.Addr, nil)
	s.waitPing()
}

// Stop stops the server (SIGTERM: it closes its clients' connections) and
// returns once it has exited. Its port refuses connections until Start.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.Stop()
	s.proc = nil
}

// URL is the server's URL for a client: redis://, or rediss:// with TLS,
// with the password when there is one.
func (s *Server) URL() string {
	u := url.URL{Scheme: "redis", Host: s.Addr}
	if s.RootCAs != nil {
		u.Scheme = "rediss"
	}
	if s.Password != "" {
		u.User = url.UserPassword("", s.Password)
	}
	return u.String()
}

// Client returns a go-redis client of the server for the test to look at
// what it holds (EXISTS, PTTL, SLOWLOG), closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(s.clientOptions())
	s.t.Cleanup(func() { c.Close() })
	return c
}

func (s *Server) clientOptions() *redis.Options {
	// One attempt per command: a test that stopped the server sees the
	// failure at once instead of after go-redis's retries.
	o := &redis.Options{Addr: s.Addr, Password: s.Password, DisableIdentity: true, MaxRetries: -1, DialerRetries: 1}
	if s.RootCAs != nil {
		o.TLSConfig = &tls.Config{RootCAs: s.RootCAs, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	}
	return o
}

// waitPing polls PING until the server answers it: the port accepting
// connections is not yet Redis serving commands.
func (s *Server) waitPing() {
	s.t.Helper()
	c := redis.NewClient(s.clientOptions())
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	backoff := 5 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not answer PING within 10s: %v", s.Addr, err)
		}
		time.Sleep(backoff) // a poll's backoff, bounded by the deadline above
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// Silent returns the address of a fake Redis (ours, not redis-server): it
// accepts connections and never answers nor closes them, as a server that
// is hung or behind a black-holing network does. Everything is closed when
// the test ends.
func Silent(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // guards conns
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by the cleanup
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// writeCerts writes a fresh CA (ca.pem) and a server certificate it signed
// for 127.0.0.1 and localhost (server.pem, server-key.pem) into dir.
func writeCerts(t testing.TB, dir string) (caFile string, pool *x509.CertPool) {
	t.Helper()
	ca := certtest.NewCA(t, "redistest CA")
	leaf := ca.Issue(t, "redistest server", false)
	caFile = filepath.Join(dir, "ca.pem")
	for name, b := range map[string][]byte{caFile: ca.PEM, filepath.Join(dir, "server.pem"): leaf.CertPEM, filepath.Join(dir, "server-key.pem"): leaf.KeyPEM} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, ca.Pool
}
