//go:build !unix

package proxy_test

import "time"

func processCPU() (time.Duration, bool) { return 0, false }
