package main

import (
	"os"
	"os/exec"
	"strings"

	"github.com/tokenward/tokenward/bench/internal/procs"
)

// machine describes where the numbers come from.
type machine struct {
	nproc     int
	cpuModel  string
	goVersion string
	kernel    string
	loadStart string // /proc/loadavg when the run began
	loadAfter string
}

func describeMachine(cfg *config) machine {
	m := machine{nproc: cfg.nproc, loadStart: procs.LoadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				m.cpuModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.goVersion = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	return m
}
