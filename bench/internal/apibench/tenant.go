package apibench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"userve.dev/userve/bench/internal/procmon"
	"userve.dev/userve/bench/internal/report"
	"userve.dev/userve/bench/internal/seed"
	"userve.dev/userve/bench/internal/stats"
	"userve.dev/userve/server"
)

// Tenant identity and secrets of the benchmark's server.
const (
	tenantNamespace = "bench"
	tenantName      = "bench"
	adminToken      = "bench-admin-token-0123456789abcdef"
	jwtKey          = "bench-jwt-key-0123456789abcdef-0123456789abcdef"
)

// manifest is the UserService the tenant server reads: the custom fields the
// seed fills, everything else defaulted.
func manifest() string {
	m := "apiVersion: miniapp.userve.dev/v1alpha1\nkind: UserService\nmetadata:\n" +
		"  name: " + tenantName + "\n  namespace: " + tenantNamespace + "\nspec:\n  profile:\n    customFields:\n"
	for _, f := range seed.CustomFields {
		m += "    - name: " + f.Name + "\n      type: " + f.Type + "\n"
	}
	return m
}

// tenantProc is one `userve serve` process.
type tenantProc struct {
	proc    *procmon.Process
	base    string // http://127.0.0.1:PORT
	started time.Duration
}

// startServer runs bin/userve serve against the store and waits for /readyz.
// extraEnv adds variables (e.g. a debug switch).
func startServer(ctx context.Context, bin, configPath, mongoURI, database, logPath string, extraArgs ...string) (*tenantProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, append([]string{"serve", "--config", configPath, "--listen", addr}, extraArgs...)...)
	cmd.Env = append(os.Environ(),
		"USERVE_MONGO_URI="+mongoURI,
		"USERVE_MONGO_DATABASE="+database,
		"USERVE_ADMIN_TOKENS="+adminToken,
		"USERVE_JWT_KEY="+jwtKey,
	)
	t0 := time.Now()
	p, err := procmon.Start("userve serve", cmd, logPath, syscall.SIGKILL)
	if err != nil {
		return nil, err
	}
	s := &tenantProc{proc: p, base: "http://" + addr}
	if err := s.waitReady(ctx, 60*time.Second); err != nil {
		p.Stop(syscall.SIGTERM, 5*time.Second)
		return nil, err
	}
	s.started = time.Since(t0)
	return s, nil
}

func (s *tenantProc) waitReady(ctx context.Context, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if exited, err := s.proc.Exited(); exited {
			return fmt.Errorf("userve serve exited at start (%v): %s", err, s.proc.Tail(2000))
		}
		resp, err := client.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("userve serve not ready within %v (last: %s): %s", timeout, last, s.proc.Tail(2000))
}

func (s *tenantProc) stop() { s.proc.Stop(syscall.SIGTERM, 10*time.Second) }

// metricsListenArgs give a server a free loopback port for its metrics
// listener (on by default at :9090, which another process may hold).
func metricsListenArgs() ([]string, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return []string{"--metrics-listen", "127.0.0.1:" + strconv.Itoa(port)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeManifest(dir string) (string, error) {
	path := filepath.Join(dir, "userservice.yaml")
	return path, os.WriteFile(path, []byte(manifest()), 0o644)
}

// idleRSS starts a fresh tenant process, lets it sit idle after /readyz, and
// reads its resident memory: what one more tenant replica costs at rest,
// untouched, then right after the probes a pod gets (probed).
func idleRSS(ctx context.Context, bin, configPath, mongoURI, database, logPath string, idle time.Duration) (untouched, probed procmon.Usage, err error) {
	// Its metrics on a free port: the default :9090 may be another's.
	metricsArgs, err := metricsListenArgs()
	if err != nil {
		return untouched, probed, err
	}
	s, err := startServer(ctx, bin, configPath, mongoURI, database, logPath, metricsArgs...)
	if err != nil {
		return untouched, probed, err
	}
	defer s.stop()
	select {
	case <-ctx.Done():
		return untouched, probed, ctx.Err()
	case <-time.After(idle):
	}
	if untouched, err = procmon.Read(s.proc.Pid()); err != nil {
		return untouched, probed, err
	}
	if untouched.RSSKiB == 0 {
		return untouched, probed, errors.New("idle RSS read as 0")
	}
	probePod(ctx, s.base, true)
	probed, err = procmon.Read(s.proc.Pid())
	return untouched, probed, err
}

// Probe periods of a tenant pod (controllers/render: readiness /readyz
// every 5 s, liveness /healthz every 10 s).
const (
	readinessPeriod = 5 * time.Second
	livenessPeriod  = 10 * time.Second
)

// probePod sends what kubelet sends a tenant pod at a readiness period:
// /readyz, and /healthz when liveness is due too.
func probePod(ctx context.Context, base string, liveness bool) {
	client := &http.Client{Timeout: 5 * time.Second}
	paths := []string{"/readyz"}
	if liveness {
		paths = append(paths, "/healthz")
	}
	for _, p := range paths {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+p, nil)
		if err != nil {
			return
		}
		if res, err := client.Do(req); err == nil {
			res.Body.Close()
		}
	}
	client.CloseIdleConnections()
}

// quietRSS lets the servers sit for wait with only the pod's probes, then
// reads their resident memory: what a tenant that served a burst keeps
// while nobody uses it.
func quietRSS(ctx context.Context, wait time.Duration, servers ...*tenantProc) ([]procmon.Usage, error) {
	t := time.NewTicker(readinessPeriod)
	defer t.Stop()
	for elapsed := time.Duration(0); elapsed < wait; elapsed += readinessPeriod {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		for _, s := range servers {
			probePod(ctx, s.base, (elapsed+readinessPeriod)%livenessPeriod == 0)
		}
	}
	out := make([]procmon.Usage, len(servers))
	for i, s := range servers {
		u, err := procmon.Read(s.proc.Pid())
		if err != nil {
			return nil, err
		}
		out[i] = u
	}
	return out, nil
}

// measureQuiet reads what the loaded servers keep once nobody uses them:
// after the cells, QuietWait with only the pod's probes.
func measureQuiet(ctx context.Context, cfg Config, res *report.API, srv, base *tenantProc) {
	wait := cfg.QuietWait
	if wait <= 0 {
		wait = server.DefaultQuietAfter*3/2 + readinessPeriod
	}
	servers := []*tenantProc{srv}
	if base != nil {
		servers = append(servers, base)
	}
	cfg.Logf("quiet RSS: the loaded servers after %v with only the pod's probes", wait)
	us, err := quietRSS(ctx, wait, servers...)
	if err != nil {
		cfg.Logf("quiet RSS: %v", err)
		return
	}
	res.QuietAfterSecs = wait.Seconds()
	res.QuietRSSMiB = stats.Round(procmon.MiB(us[0].RSSKiB), 1)
	res.QuietAnonMiB = stats.Round(procmon.MiB(us[0].AnonKiB), 1)
	cfg.Logf("quiet RSS %.1f MiB (%.1f anonymous, %.1f mapped executable)", res.QuietRSSMiB, res.QuietAnonMiB, procmon.MiB(us[0].FileKiB))
	if len(us) > 1 {
		res.BaselineQuietRSSMiB = stats.Round(procmon.MiB(us[1].RSSKiB), 1)
		cfg.Logf("baseline quiet RSS %.1f MiB", res.BaselineQuietRSSMiB)
	}
}
