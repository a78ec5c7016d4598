package poolbench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"userve.dev/userve/bench/internal/opbench"
)

// ferret is the operator part's FerretDB (authentication over SQLite, a
// debug listener), with what the pool part reads of it.
type ferret struct{ *opbench.Ferret }

func startFerret(ctx context.Context, bin, logDir string) (*ferret, error) {
	f, err := opbench.StartFerret(ctx, bin, logDir, "ferretdb-pool.log")
	if err != nil {
		return nil, err
	}
	return &ferret{f}, nil
}

// cpuProfile fetches a CPU profile of d from FerretDB into path.
func (f *ferret) cpuProfile(ctx context.Context, d time.Duration, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", f.Debug, int(d.Seconds())), nil)
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
