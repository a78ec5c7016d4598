package opbench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"userve.dev/userve/bench/internal/procmon"
	"userve.dev/userve/bench/internal/stats"
)

// The processes whose CPU the part splits the operator's work across: the
// bench's own children (envtest starts kube-apiserver and etcd from this
// process) and FerretDB.
type cpuMeter struct {
	pids map[string]int
}

// childPid finds this process's child named comm (as /proc/PID/comm has it).
func childPid(comm string) int {
	entries, _ := os.ReadDir("/proc")
	me := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		fields := strings.Fields(s[close+1:])
		if len(fields) < 2 || s[open+1:close] != comm {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == me {
			return pid
		}
	}
	return 0
}

func newCPUMeter(extra map[string]int) *cpuMeter {
	m := &cpuMeter{pids: map[string]int{}}
	for _, comm := range []string{"kube-apiserver", "etcd"} {
		if pid := childPid(comm); pid != 0 {
			m.pids[comm] = pid
		}
	}
	for k, v := range extra {
		m.pids[k] = v
	}
	return m
}

// read is each process's CPU seconds so far.
func (m *cpuMeter) read() map[string]float64 {
	out := map[string]float64{}
	for name, pid := range m.pids {
		if u, err := procmon.Read(pid); err == nil {
			out[name] = u.CPU.Seconds()
		}
	}
	return out
}

// since is the CPU seconds each process spent since before.
func (m *cpuMeter) since(before map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for name, v := range m.read() {
		out[name] = stats.Round(v-before[name], 1)
	}
	return out
}

// cpuProfiles takes a CPU profile of each URL at once for d and writes it
// to dir/<name>.pprof; it returns the files written.
func cpuProfiles(ctx context.Context, c map[string]*http.Client, urls map[string]string, d time.Duration, dir string) []string {
	var mu sync.Mutex
	var files []string
	var wg sync.WaitGroup
	for name, url := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := url + "/debug/pprof/profile?seconds=" + strconv.Itoa(int(d.Seconds()))
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return
			}
			resp, err := c[name].Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return
			}
			path := filepath.Join(dir, name+".pprof")
			f, err := os.Create(path)
			if err != nil {
				return
			}
			_, err = io.Copy(f, resp.Body)
			f.Close()
			if err == nil {
				mu.Lock()
				files = append(files, fmt.Sprintf("%s: %s", name, path))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return files
}

// heapProfile saves the operator's heap profile (what it holds once
// settled) to dir/operator-heap.pprof.
func heapProfile(ctx context.Context, url, dir string) []string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/debug/pprof/heap", nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	path := filepath.Join(dir, "operator-heap.pprof")
	f, err := os.Create(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		return nil
	}
	return []string{"operator heap: " + path}
}
