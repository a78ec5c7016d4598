package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"userve.dev/userve/sandbox/proc"
)

// ferretDB is bin/ferretdb-auth over SQLite in the state directory, with
// authentication on (as a production MongoDB), restarted if it dies, so
// tenants keep a MongoDB while the sandbox runs. Its administrator's
// password is made once and kept in <state>/mongo-admin-password (0600):
// FerretDB sets the administrator up on first start only.
type ferretDB struct {
	uri    string
	addr   string
	cmd    func() *exec.Cmd
	log    *os.File
	logf   func(string, ...any)
	cancel context.CancelFunc
	done   chan struct{}
}

func startFerretDB(cfg *Config, ports *proc.PortBook, logf func(string, ...any)) (*ferretDB, error) {
	port, err := ports.Port("ferretdb")
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	data := filepath.Join(cfg.StateDir, "ferretdb")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	password, err := adminPassword(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	log, err := openLog(filepath.Join(cfg.StateDir, "ferretdb.log"))
	if err != nil {
		return nil, err
	}
	f := &ferretDB{
		uri:  "mongodb://" + mongoAdminUser + ":" + password + "@" + addr + "/?authSource=admin",
		addr: addr,
		log:  log,
		logf: logf,
		done: make(chan struct{}),
		cmd: func() *exec.Cmd {
			// As test/mongofixture starts it: no debug listener, no
			// telemetry, the password by environment (not in ps).
			cmd := exec.Command(filepath.Join(cfg.BinDir, "ferretdb-auth"),
				"--listen-addr="+addr, "--handler=sqlite", "--sqlite-url=file:"+data+"/",
				"--state-dir="+cfg.StateDir, "--debug-addr=-", "--telemetry=disable", "--log-level=warn",
				"--test-enable-new-auth", "--setup-database=admin", "--setup-username="+mongoAdminUser)
			cmd.Env = append(os.Environ(), "FERRETDB_SETUP_PASSWORD="+password)
			cmd.Stdout, cmd.Stderr = log, log
			return cmd
		},
	}
	p, err := f.startOnce()
	if err != nil {
		log.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go f.supervise(ctx, p)
	return f, nil
}

// mongoAdminUser is the sandbox FerretDB's administrator.
const mongoAdminUser = "admin"

// adminPasswordFile holds the administrator's password in the state dir.
const adminPasswordFile = "mongo-admin-password"

// adminPassword reads the sandbox administrator's password, making one on
// first use. A FerretDB data directory without the file was set up by an
// older sandbox (no authentication, or another password): it is refused
// with the way out.
func adminPassword(stateDir string) (string, error) {
	path := filepath.Join(stateDir, adminPasswordFile)
	b, err := os.ReadFile(path)
	if err == nil && len(b) > 0 {
		return string(b), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if entries, _ := os.ReadDir(filepath.Join(stateDir, "ferretdb")); len(entries) > 0 {
		return "", fmt.Errorf("%s holds FerretDB data from a sandbox without authentication, and %s is missing: run `userve dev --reset` (or `make clean`) to start afresh",
			filepath.Join(stateDir, "ferretdb"), path)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	password := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(password), 0o600); err != nil {
		return "", err
	}
	return password, nil
}

// startOnce starts the process and waits until it accepts connections.
func (f *ferretDB) startOnce() (*proc.Process, error) {
	p, err := proc.Start(f.cmd())
	if err != nil {
		return nil, fmt.Errorf("start ferretdb: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if p.Exited() {
			return nil, fmt.Errorf("ferretdb exited at start (%s); see %s", p.Describe(), f.log.Name())
		}
		if c, err := net.DialTimeout("tcp", f.addr, 200*time.Millisecond); err == nil {
			c.Close()
			return p, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Stop(5 * time.Second)
	return nil, fmt.Errorf("ferretdb did not listen on %s within 60s; see %s", f.addr, f.log.Name())
}

func (f *ferretDB) supervise(ctx context.Context, p *proc.Process) {
	defer close(f.done)
	for {
		select {
		case <-ctx.Done():
			p.Stop(10 * time.Second)
			return
		case <-p.Done():
		}
		f.logf("FerretDB exited (%s); restarting (log: %s)", p.Describe(), f.log.Name())
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			next, err := f.startOnce()
			if err == nil {
				p = next
				break
			}
			f.logf("FerretDB: %v", err)
		}
	}
}

func (f *ferretDB) stop() {
	f.cancel()
	<-f.done
	f.log.Close()
}
