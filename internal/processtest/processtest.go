// Package processtest runs a server program we did not write (NGINX, Caddy,
// Redis) for one test: on a free loopback port, stopped gracefully when the
// test ends (or earlier, to simulate an outage), its output printed if the
// test failed.
package processtest

import (
	"net"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenward/tokenward/internal/syncbuf"
)

// FreeAddr returns a loopback address whose port was free a moment ago, for
// a program that cannot be handed a listener and binds it itself.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Serve starts cmd, stops it with SIGTERM (then SIGKILL after 10 s) when
// the test ends, and waits until it accepts connections on addr, failing
// the test if it exits first or does not listen within 10 s. Such programs
// give no readiness signal: their port is polled. logs, if set, adds what
// the program wrote elsewhere (NGINX's error.log) to the failure output.
func Serve(t testing.TB, name string, cmd *exec.Cmd, addr string, logs func() string) {
	t.Helper()
	Start(t, name, cmd, addr, logs)
}

// Process is a program started by [Start].
type Process struct {
	name   string
	cmd    *exec.Cmd
	exited chan error // receives cmd.Wait's result once
	once   sync.Once  // the stop runs once: from Stop or from the cleanup
}

// Start is [Serve] for a test that also stops the program before it ends
// (an outage): it returns the running program, whose Stop the test may
// call. A program can be started again on the same addr with a new cmd.
func Start(t testing.TB, name string, cmd *exec.Cmd, addr string, logs func() string) *Process {
	t.Helper()
	var output syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dump := func() string {
		s := output.String()
		if logs != nil {
			s += "\n" + logs()
		}
		return s
	}
	p := &Process{name: name, cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, dump())
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s within 10s: %v\n%s", name, addr, err, dump())
		}
		select {
		case err := <-p.exited:
			p.exited <- err // for Stop
			t.Fatalf("%s exited: %v\n%s", name, err, dump())
		case <-tick.C:
		}
	}
}

// Stop stops the program gracefully (SIGTERM, then SIGKILL after 10 s) and
// returns once it has exited. Calling it again does nothing.
func (p *Process) Stop() {
	p.once.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM) // graceful stop
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
}
