package poolbench

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
	"syscall"
	"time"

	"userve.dev/userve/bench/internal/opbench"
	"userve.dev/userve/bench/internal/procmon"
)

// ferret is FerretDB with authentication over SQLite, as the operator part
// starts it, plus its debug listener (pprof), so that the part can say
// where the store's time goes.
type ferret struct {
	uri   string // the administrator's
	debug string // host:port of /debug/pprof
	p     *procmon.Process
	dir   string
}

func startFerret(ctx context.Context, bin, logDir string) (*ferret, error) {
	dir, err := os.MkdirTemp("", "userve-bench-pool-ferret-")
	if err != nil {
		return nil, err
	}
	port, err := opbench.FreePort()
	if err != nil {
		return nil, err
	}
	debugPort, err := opbench.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	f := &ferret{dir: dir, debug: "127.0.0.1:" + strconv.Itoa(debugPort)}
	password := randomHex(16)
	cmd := exec.Command(bin, "--listen-addr="+addr, "--handler=sqlite", "--sqlite-url=file:"+dir+"/",
		"--state-dir="+dir, "--debug-addr="+f.debug, "--telemetry=disable", "--log-level=error",
		"--test-enable-new-auth", "--setup-database=admin", "--setup-username=admin")
	// The password goes by environment, not on a command line ps shows.
	cmd.Env = append(os.Environ(), "FERRETDB_SETUP_PASSWORD="+password)
	if f.p, err = procmon.Start("ferretdb (sqlite, auth)", cmd, filepath.Join(logDir, "ferretdb-pool.log"), syscall.SIGKILL); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			f.uri = "mongodb://admin:" + password + "@" + addr + "/?authSource=admin"
			return f, nil
		}
		if exited, _ := f.p.Exited(); exited || time.Now().After(deadline) || ctx.Err() != nil {
			f.stop()
			return nil, fmt.Errorf("ferretdb did not start: %s", f.p.Tail(2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *ferret) stop() {
	f.p.Stop(syscall.SIGTERM, 5*time.Second)
	os.RemoveAll(f.dir)
}

// cpuProfile fetches a CPU profile of d from FerretDB into path.
func (f *ferret) cpuProfile(ctx context.Context, d time.Duration, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", f.debug, int(d.Seconds())), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ferretdb pprof: %s", resp.Status)
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	_, err = io.Copy(out, resp.Body)
	return err
}
