//go:build !linux

package main

// descriptorLimit is read on Linux only: elsewhere the connection bound does not follow it.
func descriptorLimit() uint64 { return 0 }
