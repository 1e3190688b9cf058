// Package testparallel lets a test binary whose tests mostly wait (on child
// processes, the network, the clock) run more of them at once than
// -parallel's default of GOMAXPROCS, which is meant for tests that use the
// CPU.
package testparallel

import (
	"flag"
	"runtime"
	"strconv"
)

// AtLeast sets -test.parallel to at least n unless the command line set it.
// Call it from TestMain, before m.Run.
func AtLeast(n int) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", strconv.Itoa(max(n, runtime.GOMAXPROCS(0))))
	}
}
