package opbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"userve.dev/userve/bench/internal/procmon"
)

// Ferret is FerretDB with authentication over SQLite (the operator gives
// each tenant a database user of its own, which FerretDB without
// authentication refuses: usersInfo is no command there), with its debug
// listener (pprof, metrics) so that a part can say where the store's time
// goes. The operator and pool parts both start it.
type Ferret struct {
	URI   string // the administrator's
	Debug string // host:port of /debug/pprof and /debug/metrics
	P     *procmon.Process
	dir   string
}

// StartFerret starts FerretDB, logging to logName in logDir, and waits
// until it listens.
func StartFerret(ctx context.Context, bin, logDir, logName string) (*Ferret, error) {
	return startFerret(ctx, bin, logDir, logName, false)
}

// StartFerretInMemory starts FerretDB with every database in memory
// (SQLite's mode=memory). On files, SQLite holds three descriptors per
// database (the file, its WAL, its shared memory) open for good, so one
// FerretDB process serves at most ~6,600 databases under this machine's
// hard limit of 20,000 open files per process (`ulimit -Hn`), which the
// bench cannot raise. The operator part gives every tenant a database, so
// it needs this at 10,000 tenants; what it measures of the store (one
// createUser and one ownership record per tenant, pings) does not depend
// on the pages being on disk.
func StartFerretInMemory(ctx context.Context, bin, logDir, logName string) (*Ferret, error) {
	return startFerret(ctx, bin, logDir, logName, true)
}

func startFerret(ctx context.Context, bin, logDir, logName string, inMemory bool) (*Ferret, error) {
	dir, err := os.MkdirTemp("", "userve-bench-ferret-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	debugPort, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	f := &Ferret{dir: dir, Debug: "127.0.0.1:" + strconv.Itoa(debugPort)}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	password := hex.EncodeToString(secret)
	sqliteURL := "file:" + dir + "/"
	if inMemory {
		sqliteURL += "?mode=memory"
	}
	cmd := exec.Command(bin, "--listen-addr="+addr, "--handler=sqlite", "--sqlite-url="+sqliteURL,
		"--state-dir="+dir, "--debug-addr="+f.Debug, "--telemetry=disable", "--log-level=error",
		"--test-enable-new-auth", "--setup-database=admin", "--setup-username=admin")
	// The password goes by environment, not on a command line ps shows.
	cmd.Env = append(os.Environ(), "FERRETDB_SETUP_PASSWORD="+password)
	if f.P, err = procmon.Start("ferretdb (sqlite, auth)", cmd, filepath.Join(logDir, logName), syscall.SIGKILL); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			f.URI = "mongodb://admin:" + password + "@" + addr + "/?authSource=admin"
			return f, nil
		}
		if exited, _ := f.P.Exited(); exited || time.Now().After(deadline) || ctx.Err() != nil {
			f.Stop()
			return nil, fmt.Errorf("ferretdb (sqlite) did not start: %s", f.P.Tail(2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends FerretDB and removes its files.
func (f *Ferret) Stop() {
	f.P.Stop(syscall.SIGTERM, 5*time.Second)
	os.RemoveAll(f.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
