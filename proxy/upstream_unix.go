//go:build unix

package proxy

import (
	"net"
	"syscall"
)

// stillOpen reports whether the upstream has neither closed c nor sent
// anything on it while it was idle, by peeking at the socket without
// waiting.
func stillOpen(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Only "nothing to read yet" is an open, idle connection: a byte is
		// an answer nobody asked for, and 0 bytes the upstream's close.
		open = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && open
}
