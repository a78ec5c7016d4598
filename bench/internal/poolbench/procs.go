package poolbench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"userve.dev/userve/bench/internal/apibench"
	"userve.dev/userve/bench/internal/opbench"
	"userve.dev/userve/bench/internal/procmon"
)

// proc is a `userve pool` or `userve serve` the part started.
type proc struct {
	p          *procmon.Process
	addr       string // host:port of the API
	metricsURL string
}

func (p *proc) stop() { p.p.Stop(syscall.SIGTERM, 15*time.Second) }

func (p *proc) usage() (procmon.Usage, error) { return procmon.Read(p.p.Pid()) }

// metrics is the process's Prometheus text.
func (p *proc) metrics(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.metricsURL, nil)
	if err != nil {
		return "", err
	}
	return fetchText(req)
}

// fetchText is req's 200 answer.
func fetchText(req *http.Request) (string, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", req.URL, resp.Status)
	}
	return string(body), nil
}

// metric is the sum of a family's samples (0 when absent).
func metric(text, family string) float64 {
	return opbench.ParseCounter(text, family, "")[""]
}

// client is a lean keep-alive client sending host as every request's Host.
func (p *proc) client(host string, maxIdle int) *apibench.RawClient {
	return apibench.NewRawClient(p.addr, host, maxIdle)
}

func listenPair() (api, metrics string, err error) {
	a, err := opbench.FreePort()
	if err != nil {
		return "", "", err
	}
	m, err := opbench.FreePort()
	if err != nil {
		return "", "", err
	}
	return "127.0.0.1:" + strconv.Itoa(a), "127.0.0.1:" + strconv.Itoa(m), nil
}

// startPool runs bin's `userve pool` for the pool named name (a name no Secret
// carries gives an empty pool) with the idle timeout idle, and waits until
// it has synced its Secrets.
func startPool(ctx context.Context, cfg Config, bin, kubeconfig, name string, idle time.Duration, logName string) (*proc, error) {
	api, met, err := listenPair()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "pool", "--pool", name, "--namespace", poolNS, "--kubeconfig", kubeconfig,
		"--listen", api, "--metrics-listen", met, "--idle-timeout", idle.String(),
		// The default log level, as the dedicated server's: both write an
		// access log line per request.
		"--tenant-max-inflight", strconv.Itoa(cfg.TenantMaxInFlight))
	cmd.Args = append(cmd.Args, cfg.PoolFlags...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(cfg.GOMAXPROCS))
	p, err := procmon.Start("userve pool", cmd, filepath.Join(cfg.LogDir, logName), syscall.SIGKILL)
	if err != nil {
		return nil, err
	}
	// The Host of an IP names no tenant: /readyz is the pool's own, 200
	// once the tenants' Secrets are synced.
	if err := p.AwaitReady(ctx, "http://"+api+"/readyz", 60*time.Second); err != nil {
		return nil, err
	}
	return &proc{p: p, addr: api, metricsURL: "http://" + met + "/metrics"}, nil
}

// startDedicated runs `userve serve` of tenant t, as its own Deployment
// would, with the pool's GOMAXPROCS.
func startDedicated(ctx context.Context, cfg Config, t *tenant, logName string) (*proc, error) {
	api, met, err := listenPair()
	if err != nil {
		return nil, err
	}
	manifest := filepath.Join(cfg.LogDir, "pool-dedicated-"+t.namespace+".json")
	if err := os.WriteFile(manifest, t.manifest(), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.UserveBin, "serve", "--config", manifest, "--listen", api, "--metrics-listen", met)
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(cfg.GOMAXPROCS))
	for k, v := range t.env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p, err := procmon.Start("userve serve", cmd, filepath.Join(cfg.LogDir, logName), syscall.SIGKILL)
	if err != nil {
		return nil, err
	}
	if err := p.AwaitReady(ctx, "http://"+api+"/readyz", 60*time.Second); err != nil {
		return nil, err
	}
	return &proc{p: p, addr: api, metricsURL: "http://" + met + "/metrics"}, nil
}
