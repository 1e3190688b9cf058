//go:build !unix

package proxy

import "net"

// stillOpen cannot peek without waiting on this platform: a connection the
// upstream closed fails at its next use (and a request that is safe to send
// again is retried on a new one); bytes sent on an idle connection are
// caught only when they arrive with the response before them.
func stillOpen(net.Conn) bool { return true }
