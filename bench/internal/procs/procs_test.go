package procs_test

import (
	"os"
	"testing"
	"time"

	"github.com/tokenward/tokenward/bench/internal/procs"
)

// TestProc reads this test process's own figures from /proc.
func TestProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := procs.CPUTicks(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := procs.BusyTicks(); err != nil {
		t.Fatal(err)
	}
	st := procs.Status(os.Getpid())
	if st["VmRSS"] <= 0 || st["VmHWM"] < st["VmRSS"] || st["RssAnon"] <= 0 {
		t.Errorf("status: VmRSS %d, VmHWM %d, RssAnon %d KiB", st["VmRSS"], st["VmHWM"], st["RssAnon"])
	}
	if procs.OpenFDs(os.Getpid()) < 3 {
		t.Errorf("open descriptors %d", procs.OpenFDs(os.Getpid()))
	}
}

// TestStartStop: a started process is alive until Stop, which reports its
// exit after SIGTERM.
func TestStartStop(t *testing.T) {
	p, err := procs.Start("sleep", "", nil, t.TempDir()+"/sleep.log", "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Alive() || p.PID() <= 0 {
		t.Fatal("not alive after Start")
	}
	if err := p.Stop(5 * time.Second); err == nil {
		t.Error("sleep killed by SIGTERM reported a clean exit")
	}
	if p.Alive() {
		t.Error("alive after Stop")
	}
}
