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

// ---- helpers -------------------------------------------------------------------

// startFerretSQLite starts FerretDB with authentication over SQLite (the
// operator gives each tenant a database user of its own, which FerretDB
// without authentication refuses: usersInfo is no command there) and
// returns its administrator's URI.
func startFerretSQLite(ctx context.Context, bin, logDir string) (string, int, func(), error) {
	dir, err := os.MkdirTemp("", "userve-bench-ferret-")
	if err != nil {
		return "", 0, nil, err
	}
	port, err := freePort()
	if err != nil {
		return "", 0, nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return "", 0, nil, err
	}
	password := hex.EncodeToString(secret)
	cmd := exec.Command(bin, "--listen-addr="+addr, "--handler=sqlite", "--sqlite-url=file:"+dir+"/",
		"--state-dir="+dir, "--debug-addr=-", "--telemetry=disable", "--log-level=error",
		"--test-enable-new-auth", "--setup-database=admin", "--setup-username=admin")
	// The password goes by environment, not on a command line ps shows.
	cmd.Env = append(os.Environ(), "FERRETDB_SETUP_PASSWORD="+password)
	p, err := procmon.Start("ferretdb (sqlite)", cmd, filepath.Join(logDir, "ferretdb-operator.log"), syscall.SIGKILL)
	if err != nil {
		os.RemoveAll(dir)
		return "", 0, nil, err
	}
	stop := func() { p.Stop(syscall.SIGTERM, 5*time.Second); os.RemoveAll(dir) }
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return "mongodb://admin:" + password + "@" + addr + "/?authSource=admin", p.Pid(), stop, nil
		}
		if exited, _ := p.Exited(); exited || time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", 0, nil, fmt.Errorf("ferretdb (sqlite) did not start: %s", p.Tail(2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
