//go:build linux

package main

import "syscall"

// descriptorLimit is the soft limit on open descriptors (RLIMIT_NOFILE),
// which the Go runtime has raised to the hard one at start; 0 if unknown
// or unlimited.
func descriptorLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur == ^uint64(0) {
		return 0
	}
	return l.Cur
}
