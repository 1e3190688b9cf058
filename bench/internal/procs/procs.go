// Package procs starts the processes of the benchmark runs (cmd/benchrun,
// cmd/soak), pinned to cores, and reads what they use from /proc: CPU time,
// memory, descriptors, and what else ran on the machine meanwhile. Linux
// only, as the runs are.
package procs

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a process started by a run. It dies with the run: the kernel
// kills it if the run dies (Pdeathsig), and the run stops it when done.
type Proc struct {
	Name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the process has exited
	err     error         // why it exited; read after exited is closed
}

// Start starts argv, pinned to cpus when cpus is not "" (through taskset,
// which execs: the PID is argv's), with env added to the environment and
// its output in logPath.
func Start(name, cpus string, env []string, logPath string, argv ...string) (*Proc, error) {
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

// PID is the process's id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Alive reports whether the process has not exited.
func (p *Proc) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends SIGTERM and waits up to grace, then kills. It reports how the
// process ended: nil for exit status 0 after SIGTERM.
func (p *Proc) Stop(grace time.Duration) error {
	if !p.Alive() {
		return fmt.Errorf("had exited already: %v", p.err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("still running %s after SIGTERM: killed", grace)
	}
}

// LogTail is the last n bytes of the process's output, for error messages.
func (p *Proc) LogTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	if len(b) == 0 {
		return "(no output)"
	}
	return string(b)
}

// Died describes an exited process, with the end of its output.
func (p *Proc) Died() error {
	return fmt.Errorf("%s exited (%v); its output:\n%s", p.Name, p.err, p.LogTail(2000))
}

// TicksPerSecond is USER_HZ, the unit of CPUTicks and BusyTicks.
const TicksPerSecond = 100

// CPUTicks is the user+system CPU time of pid, all threads, in clock ticks.
func CPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc/PID/stat")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc/PID/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return utime + stime, nil
}

// BusyTicks is the CPU time all cores spent running processes (user, nice,
// system) since boot, from /proc/stat: with the ticks of a run's own
// processes it tells how much else ran on the machine during a measurement.
func BusyTicks() (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, errors.New("unexpected /proc/stat")
	}
	var busy int64
	for i, v := range f[1:4] { // user, nice, system; not idle, iowait, irq, softirq, steal, guest
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat field %d: %w", i+1, err)
		}
		busy += n
	}
	return busy, nil
}

// Status reads the kB figures of /proc/PID/status (VmRSS, VmHWM, RssAnon,
// RssFile, ...) in KiB; empty if the process is gone.
func Status(pid int) map[string]int64 {
	m := map[string]int64{}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return m
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if v, isKB := strings.CutSuffix(strings.TrimSpace(v), " kB"); ok && isKB {
			n, _ := strconv.ParseInt(v, 10, 64)
			m[name] = n
		}
	}
	return m
}

// OpenFDs counts the entries of /proc/PID/fd.
func OpenFDs(pid int) int64 {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0
	}
	return int64(len(ents))
}

// LoadAvg is the first three fields of /proc/loadavg.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// FreePorts returns n distinct free loopback ports. They are free when
// chosen; the servers are started right after.
func FreePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
