// Package processtest runs a server program we did not write (NGINX, Caddy)
// for one test: on a free loopback port, stopped gracefully when the test
// ends, its output printed if the test failed.
package processtest

import (
	"net"
	"os/exec"
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
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // graceful stop
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
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
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s within 10s: %v\n%s", name, addr, err, dump())
		}
		select {
		case err := <-exited:
			t.Fatalf("%s exited: %v\n%s", name, err, dump())
		case <-tick.C:
		}
	}
}
