package runtime

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"userve.dev/userve/sandbox/proc"
)

// Restart backoff, like the kubelet's CrashLoopBackOff but shorter: a local
// server that crashes should come back while the developer watches.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
	// A process that ran this long had a fresh start: its backoff resets.
	stableRun = time.Minute
)

// replica is one local process standing for a pod: it is (re)started until
// stopped, and probed for readiness.
type replica struct {
	name   string // <deployment>-<index>
	index  int
	hash   string // pod template hash it runs
	dir    string
	host   string
	launch *Launch
	logf   func(format string, args ...any)
	notify func() // readiness or liveness changed

	mu          sync.Mutex
	port        int
	metricsPort int // 0 when the process serves no metrics
	pid         int
	ready       bool
	restarts    int32
	lastExit    string

	prepared bool // the pod directory was made afresh once

	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}
}

// PodStatus describes one local replica (a process standing for a pod).
type PodStatus struct {
	Name string // <namespace>/<deployment>-<index>
	Pid  int
	Port int
	// MetricsPort is where the replica serves /metrics (0: none).
	MetricsPort int
	Ready       bool
	Restarts    int32
	LastExit    string
	Hash        string
}

func (r *replica) info() PodStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return PodStatus{Name: r.name, Pid: r.pid, Port: r.port, MetricsPort: r.metricsPort, Ready: r.ready, Restarts: r.restarts, LastExit: r.lastExit, Hash: r.hash}
}

func (r *replica) isReady() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready
}

func (r *replica) backend() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return net.JoinHostPort(r.host, strconv.Itoa(r.port)), r.ready
}

func (r *replica) setReady(ready bool) {
	r.mu.Lock()
	changed := r.ready != ready
	r.ready = ready
	r.mu.Unlock()
	if changed {
		r.notify()
	}
}

// stop ends the process (SIGTERM, then SIGKILL after the grace period) and
// waits for the supervisor to finish.
func (r *replica) stop() {
	r.stopOnce.Do(func() { close(r.stopCh) })
	<-r.done
}

func (r *replica) stopping() bool {
	select {
	case <-r.stopCh:
		return true
	default:
		return false
	}
}

// supervise runs the process until stop, restarting it with backoff.
func (r *replica) supervise() {
	defer close(r.done)
	defer r.cleanup()
	backoff := minBackoff
	for {
		started := time.Now()
		p, err := r.start()
		if err != nil {
			r.logf("%s: cannot start: %v; retrying in %s", r.name, err, backoff)
		} else {
			probeCtx, cancelProbe := context.WithCancel(context.Background())
			go r.probe(probeCtx, p)
			select {
			case <-r.stopCh:
				cancelProbe()
				r.setReady(false)
				p.Stop(r.launch.Grace)
				return
			case <-p.Done():
			}
			cancelProbe()
			r.mu.Lock()
			r.pid, r.lastExit = 0, p.Describe()
			r.restarts++
			r.mu.Unlock()
			r.setReady(false)
			r.notify()
			if time.Since(started) > stableRun {
				backoff = minBackoff
			}
			last := ""
			if line := lastLine(r.logPath()); line != "" {
				last = "; last log line: " + line
			}
			r.logf("%s: exited (%s); restarting in %s (log: %s)%s", r.name, p.Describe(), backoff, r.logPath(), last)
		}
		select {
		case <-r.stopCh:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (r *replica) logPath() string { return filepath.Join(r.dir, "log") }

// start writes the volumes and starts the process once.
func (r *replica) start() (*proc.Process, error) {
	if err := r.prepareDir(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	if !proc.PortFree(r.host, r.port) {
		// Someone took our port while we were down: move.
		port, err := proc.FreePort(r.host)
		if err != nil {
			r.mu.Unlock()
			return nil, err
		}
		r.port = port
	}
	if r.metricsPort > 0 && !proc.PortFree(r.host, r.metricsPort) {
		metricsPort, err := proc.FreePort(r.host)
		if err != nil {
			r.mu.Unlock()
			return nil, err
		}
		r.metricsPort = metricsPort
	}
	port, metricsPort := r.port, r.metricsPort
	r.mu.Unlock()

	argv := overrideListen(r.launch.Argv, net.JoinHostPort(r.host, strconv.Itoa(port)))
	if r.launch.ServesMetrics {
		argv = overrideMetricsListen(argv, r.host, metricsPort)
	}
	logFile, err := os.OpenFile(r.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy
	fmt.Fprintf(logFile, "---- %s userve-dev: starting %s\n", time.Now().Format(time.RFC3339), quoteArgs(argv))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = r.launch.Env
	cmd.Dir = r.launch.WorkDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p, err := proc.Start(cmd)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.pid = p.Pid()
	r.mu.Unlock()
	_ = os.WriteFile(filepath.Join(r.dir, "pid"), []byte(strconv.Itoa(p.Pid())+"\n"), 0o644)
	switch restarts := r.info().Restarts; {
	case restarts == 0:
		r.logf("%s: started pid %d on %s", r.name, p.Pid(), net.JoinHostPort(r.host, strconv.Itoa(port)))
	case restarts <= 3: // a crash loop says enough with its exit lines
		r.logf("%s: restarted as pid %d (restart %d)", r.name, p.Pid(), restarts)
	}
	r.notify()
	return p, nil
}

func quoteArgs(argv []string) string {
	s := ""
	for i, a := range argv {
		if i > 0 {
			s += " "
		}
		s += strconv.Quote(a)
	}
	return s
}

// prepareDir writes the volume files. A new replica starts from empty
// volumes (an earlier replica of the same name may have left some); a
// restarted process keeps its emptyDirs, as a restarted container does.
func (r *replica) prepareDir() error {
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return err
	}
	if !r.prepared {
		for _, d := range []string{"volumes", "tmp"} {
			if err := os.RemoveAll(filepath.Join(r.dir, d)); err != nil {
				return err
			}
		}
		r.prepared = true
	}
	for _, d := range r.launch.Dirs {
		if err := os.MkdirAll(filepath.Join(r.dir, d), 0o700); err != nil {
			return err
		}
	}
	for rel, f := range r.launch.Files {
		p := filepath.Join(r.dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
			return err
		}
	}
	return nil
}

// cleanup removes what held secrets; the log stays for reading.
func (r *replica) cleanup() {
	for _, p := range []string{"volumes", "tmp", "pid"} {
		_ = os.RemoveAll(filepath.Join(r.dir, p))
	}
	r.mu.Lock()
	r.pid = 0
	r.mu.Unlock()
}

// probe decides readiness until ctx ends: quick polls until the first
// success, then at the probe period; three failures in a row make the
// replica unready, as with the kubelet's default failureThreshold.
func (r *replica) probe(ctx context.Context, p *proc.Process) {
	pr := r.launch.Readiness
	if pr.Path == "" && !pr.TCP {
		r.setReady(true)
		return
	}
	client := &http.Client{Timeout: time.Second}
	check := func() bool {
		r.mu.Lock()
		addr := net.JoinHostPort(r.host, strconv.Itoa(r.port))
		r.mu.Unlock()
		if pr.TCP {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return false
			}
			c.Close()
			return true
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+pr.Path, nil)
		if err != nil {
			return false
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode >= 200 && resp.StatusCode < 400
	}
	period := pr.Period
	if period <= 0 {
		period = time.Second
	}
	failures := 0
	everReady := false
	for {
		if check() {
			failures = 0
			everReady = true
			r.setReady(true)
		} else if failures++; failures >= 3 || !everReady {
			r.setReady(false)
		}
		wait := period
		if !everReady {
			wait = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-p.Done():
			return
		case <-time.After(wait):
		}
	}
}

// lastLine is the log's last non-empty line, shortened: why a process died
// is usually there.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const tail = 4096
	if st, err := f.Stat(); err == nil && st.Size() > tail {
		_, _ = f.Seek(st.Size()-tail, 0)
	}
	buf := make([]byte, tail)
	n, _ := io.ReadFull(f, buf)
	lines := strings.Split(strings.TrimRight(string(buf[:n]), "\n"), "\n")
	line := strings.TrimSpace(lines[len(lines)-1])
	if strings.HasPrefix(line, "---- ") { // our own start marker: the process said nothing
		return ""
	}
	if len(line) > 300 {
		line = line[:300] + "..."
	}
	return line
}
