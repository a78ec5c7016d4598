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
	"userve.dev/userve/bench/internal/seed"
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

// metricsListenArgs give this build's server a free loopback port for its
// metrics listener (on by default at :9090, which another process may hold).
// The baseline build predates the flag and gets none.
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
// reads its resident memory: what one more tenant replica costs at rest.
func idleRSS(ctx context.Context, bin, configPath, mongoURI, database, logPath string, idle time.Duration) (procmon.Usage, error) {
	s, err := startServer(ctx, bin, configPath, mongoURI, database, logPath)
	if err != nil {
		return procmon.Usage{}, err
	}
	defer s.stop()
	select {
	case <-ctx.Done():
		return procmon.Usage{}, ctx.Err()
	case <-time.After(idle):
	}
	u, err := procmon.Read(s.proc.Pid())
	if err != nil {
		return u, err
	}
	if u.RSSKiB == 0 {
		return u, errors.New("idle RSS read as 0")
	}
	return u, nil
}
