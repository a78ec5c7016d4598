package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Ledger is a file listing processes of a running sandbox that were not
// started through Start (etcd and kube-apiserver come from envtest, without a
// parent-death signal). If the sandbox is killed outright, the next run reads
// the ledger and ends them, so they cannot hold the data directory.
type Ledger struct{ Path string }

// procStat is the part of /proc/PID/stat we use.
type procStat struct {
	comm      string
	ppid      int
	starttime string // clock ticks since boot; with the pid, names one process
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(data))
}

// parseStat reads "pid (comm) state ppid ... starttime ..."; comm may hold
// spaces and parentheses, so fields are counted after the last ')'.
func parseStat(s string) (procStat, error) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("malformed stat %q", s)
	}
	fields := strings.Fields(s[end+1:])
	// fields[0] is field 3 (state); ppid is field 4, starttime field 22.
	if len(fields) < 20 {
		return procStat{}, fmt.Errorf("short stat %q", s)
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return procStat{}, fmt.Errorf("stat ppid: %w", err)
	}
	return procStat{comm: s[open+1 : end], ppid: ppid, starttime: fields[19]}, nil
}

// Children lists the pids whose parent is this process.
func Children() []int {
	entries, _ := os.ReadDir("/proc")
	me := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil && st.ppid == me {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Record writes pids (with their start times) into the ledger, replacing it.
func (l Ledger) Record(pids []int) error {
	var b strings.Builder
	for _, pid := range pids {
		st, err := readStat(pid)
		if err != nil {
			continue // already gone
		}
		fmt.Fprintf(&b, "%d %s %s\n", pid, st.starttime, st.comm)
	}
	if err := os.MkdirAll(filepath.Dir(l.Path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(l.Path, []byte(b.String()), 0o644)
}

// KillLeftovers kills every process in the ledger that still runs (same pid
// and start time) together with its process group, and empties the ledger.
// It returns what it killed, as "comm (pid N)".
func (l Ledger) KillLeftovers() []string {
	data, err := os.ReadFile(l.Path)
	if err != nil {
		return nil
	}
	var killed []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil || pid <= 1 {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.starttime != f[1] {
			continue // gone, or the pid was reused by someone else
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		killed = append(killed, fmt.Sprintf("%s (pid %d)", st.comm, pid))
	}
	l.Clear()
	return killed
}

// Clear removes the ledger.
func (l Ledger) Clear() { _ = os.Remove(l.Path) }
