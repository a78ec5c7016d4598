// Package procmon starts the processes a benchmark drives and measures them
// from /proc: CPU time (utime+stime, including exited threads) and resident
// memory (VmRSS now, VmHWM the peak).
//
// Every process runs in its own process group with a parent-death signal, so
// Stop (or the harness dying, even by SIGKILL) leaves nothing behind.
package procmon

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is Linux's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat. It is 100 on every architecture Go supports on Linux;
// reading it properly needs sysconf (cgo).
const clockTicks = 100

// Usage is one reading of a process.
type Usage struct {
	CPU    time.Duration // user + system time since start
	RSSKiB uint64        // resident now
	HWMKiB uint64        // peak resident (since start or the last ResetPeak)
	// AnonKiB is the process's own memory (heap, stacks); FileKiB the pages
	// of files it maps (mostly its executable), RssFile + RssShmem.
	AnonKiB, FileKiB uint64
}

// Read samples /proc/<pid>/stat and /proc/<pid>/status.
func Read(pid int) (Usage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Usage{}, err
	}
	cpu, err := ParseStatCPU(stat)
	if err != nil {
		return Usage{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Usage{}, err
	}
	rss, hwm, err := ParseStatusMemory(status)
	if err != nil {
		return Usage{}, err
	}
	anon, file := ParseStatusBreakdown(status)
	return Usage{CPU: cpu, RSSKiB: rss, HWMKiB: hwm, AnonKiB: anon, FileKiB: file}, nil
}

// ParseStatCPU returns utime+stime from the contents of /proc/<pid>/stat.
// The command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func ParseStatCPU(stat []byte) (time.Duration, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("procmon: malformed stat: no ')'")
	}
	// After ')': field 3 (state) is index 0, so utime (14) is 11, stime (15) is 12.
	fields := strings.Fields(string(stat[end+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("procmon: malformed stat: %d fields after the name", len(fields))
	}
	utime, err := strconv.ParseUint(fields[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("procmon: utime: %w", err)
	}
	stime, err := strconv.ParseUint(fields[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("procmon: stime: %w", err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// ParseStatusMemory returns VmRSS and VmHWM in KiB from /proc/<pid>/status.
func ParseStatusMemory(status []byte) (rssKiB, hwmKiB uint64, err error) {
	var seenRSS, seenHWM bool
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *uint64
		switch key {
		case "VmRSS":
			dst, seenRSS = &rssKiB, true
		case "VmHWM":
			dst, seenHWM = &hwmKiB, true
		default:
			continue
		}
		f := strings.Fields(value)
		if len(f) < 1 {
			return 0, 0, fmt.Errorf("procmon: empty %s", key)
		}
		if *dst, err = strconv.ParseUint(f[0], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("procmon: %s: %w", key, err)
		}
	}
	if !seenRSS || !seenHWM {
		return 0, 0, errors.New("procmon: status has no VmRSS/VmHWM (process gone?)")
	}
	return rssKiB, hwmKiB, nil
}

// ParseStatusBreakdown returns RssAnon and RssFile+RssShmem in KiB (zero
// when the kernel does not report them).
func ParseStatusBreakdown(status []byte) (anonKiB, fileKiB uint64) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(value)
		if len(f) < 1 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch key {
		case "RssAnon":
			anonKiB = n
		case "RssFile", "RssShmem":
			fileKiB += n
		}
	}
	return anonKiB, fileKiB
}

// ResetPeak resets VmHWM to the current RSS (Linux >= 4.0, needs permission
// over the process), so a peak can be measured per phase.
func ResetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// MiB converts KiB to MiB.
func MiB(kib uint64) float64 { return float64(kib) / 1024 }

// ---- processes -------------------------------------------------------------

// Process is a started child.
type Process struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string

	done    chan struct{}
	waitErr error
	log     *os.File
}

var (
	mu      sync.Mutex
	running []*Process
)

// Start runs cmd with its output in logPath, in a process group of its own,
// killed with the harness. deathSignal is sent if the harness dies first
// (SIGKILL when 0).
func Start(name string, cmd *exec.Cmd, logPath string, deathSignal syscall.Signal) (*Process, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if deathSignal == 0 {
		deathSignal = syscall.SIGKILL
	}
	cmd.Stdout, cmd.Stderr = log, log
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = deathSignal
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{}), log: log}
	go func() {
		p.waitErr = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	mu.Lock()
	running = append(running, p)
	mu.Unlock()
	return p, nil
}

// Pid of the process.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process is gone, and how it ended.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Tail is the end of the process's log, for error messages.
func (p *Process) Tail(n int) string {
	data, _ := os.ReadFile(p.LogPath)
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return strings.TrimSpace(string(data))
}

// Stop sends sig to the process group, waits up to grace, then kills the
// group. It is safe to call more than once.
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) {
	if exited, _ := p.Exited(); !exited {
		_ = syscall.Kill(-p.Pid(), sig)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
			<-p.done
		}
	}
	// Children that outlived the leader (the group may remain) go too.
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	mu.Lock()
	for i, r := range running {
		if r == p {
			running = append(running[:i], running[i+1:]...)
			break
		}
	}
	mu.Unlock()
}

// AwaitReady polls url until it answers 200, the process exits, ctx ends or
// timeout passes; on failure the process is killed and the error carries
// the tail of its log.
func (p *Process) AwaitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if r, err := http.Get(url); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			p.Stop(syscall.SIGKILL, 0)
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("%s exited before %s answered: %s", p.Name, url, p.Tail(1500))
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.Stop(syscall.SIGKILL, 0)
	return fmt.Errorf("%s not ready at %s: %s", p.Name, url, p.Tail(1500))
}

// StopAll stops every process still running, newest first (a server before
// the store it uses), for the harness's exit and interrupt paths.
func StopAll(grace time.Duration) {
	for {
		mu.Lock()
		if len(running) == 0 {
			mu.Unlock()
			return
		}
		p := running[len(running)-1]
		mu.Unlock()
		p.Stop(syscall.SIGTERM, grace)
	}
}

// ParseStatTree returns, from /proc/<pid>/stat, the parent pid and the CPU
// the process used itself (utime+stime) and through its exited, reaped
// children (cutime+cstime).
func ParseStatTree(stat []byte) (ppid int, self, reaped time.Duration, err error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, 0, 0, errors.New("procmon: malformed stat: no ')'")
	}
	// After ')': ppid (field 4) is index 1, utime..cstime (14..17) are 11..14.
	fields := strings.Fields(string(stat[end+1:]))
	if len(fields) < 15 {
		return 0, 0, 0, fmt.Errorf("procmon: malformed stat: %d fields after the name", len(fields))
	}
	var v [5]uint64
	for i, idx := range []int{1, 11, 12, 13, 14} {
		if v[i], err = strconv.ParseUint(fields[idx], 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("procmon: stat field %d: %w", idx+3, err)
		}
	}
	tick := func(n uint64) time.Duration { return time.Duration(n) * time.Second / clockTicks }
	return int(v[0]), tick(v[1] + v[2]), tick(v[3] + v[4]), nil
}

// TreeCPU is the CPU used by pid and all its descendants, living or exited
// (PostgreSQL runs a process per connection).
func TreeCPU(pid int) (time.Duration, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	type node struct {
		ppid         int
		self, reaped time.Duration
	}
	nodes := map[int]node{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue // gone meanwhile
		}
		ppid, self, reaped, err := ParseStatTree(stat)
		if err != nil {
			return 0, err
		}
		nodes[p] = node{ppid, self, reaped}
	}
	if _, ok := nodes[pid]; !ok {
		return 0, fmt.Errorf("procmon: no process %d", pid)
	}
	inTree := func(p int) bool {
		for ; p > 1; p = nodes[p].ppid {
			if p == pid {
				return true
			}
		}
		return false
	}
	var total time.Duration
	for p, n := range nodes {
		if inTree(p) {
			total += n.self + n.reaped
		}
	}
	return total, nil
}
