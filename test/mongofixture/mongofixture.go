// Package mongofixture gives tests a real MongoDB-wire server: the MongoDB at
// USERVE_TEST_MONGO_URI when set (with an administrator's credentials in the
// URI), otherwise bin/ferretdb-auth over SQLite with authentication on,
// started once per test binary. URI carries the administrator's
// credentials; anonymous commands other than ping and hello are refused, as
// on a production MongoDB. Each test gets its own database, dropped
// afterwards.
//
// A package using it calls Run from TestMain so the server stops with the
// binary:
//
//	func TestMain(m *testing.M) { os.Exit(mongofixture.Run(m)) }
package mongofixture

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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/sandbox/proc"
	"userve.dev/userve/test/testbin"
)

// EnvURI names a real MongoDB to test against instead of FerretDB.
const EnvURI = "USERVE_TEST_MONGO_URI"

var (
	mu      sync.Mutex
	shared  *Server
	client  *mongo.Client
	started []*Server
	dbSeq   atomic.Int64
)

// Run runs the tests and then stops every server this package started.
func Run(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if client != nil {
		_ = client.Disconnect(context.Background())
	}
	for _, s := range started {
		s.Stop()
	}
	return code
}

// URI is the shared server's URI, starting it on first use.
func URI(t testing.TB) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if uri := os.Getenv(EnvURI); uri != "" {
		return uri
	}
	if shared == nil {
		s, err := start("")
		if err != nil {
			t.Fatalf("mongofixture: %v", err)
		}
		shared = s
	}
	return shared.URI
}

// Client is a client of the shared server.
func Client(t testing.TB) *mongo.Client {
	t.Helper()
	uri := URI(t)
	mu.Lock()
	defer mu.Unlock()
	if client == nil {
		c, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(30 * time.Second))
		if err != nil {
			t.Fatalf("mongofixture: connect %s: %v", uri, err)
		}
		client = c
	}
	return client
}

// NewDatabase is a database of its own for this test, dropped at cleanup.
func NewDatabase(t testing.TB) *mongo.Database {
	t.Helper()
	name := fmt.Sprintf("t%d_%d_%s", os.Getpid(), dbSeq.Add(1), sanitize(t.Name()))
	if len(name) > 60 {
		name = name[:60]
	}
	db := Client(t).Database(name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = db.Drop(ctx)
	})
	return db
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

// AdminUser is the administrator FerretDB is set up with.
const AdminUser = "admin"

// Server is one bin/ferretdb-auth process over its own SQLite directory,
// with authentication on. Tests that take the store away and bring it back
// (outages) start their own.
type Server struct {
	// URI has the administrator's credentials (authSource admin).
	URI string
	// Addr is host:port, for tests that build URIs of other users.
	Addr          string
	AdminPassword string
	addr          string
	dir           string
	proc          *proc.Process
}

// NewServer starts a private FerretDB for this test, stopped at cleanup.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s, err := start(t.TempDir())
	if err != nil {
		t.Fatalf("mongofixture: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func start(dir string) (*Server, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "userve-ferretdb-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	password := hex.EncodeToString(b)
	s := &Server{
		URI:  "mongodb://" + AdminUser + ":" + password + "@" + addr + "/?authSource=admin",
		Addr: addr, AdminPassword: password, addr: addr, dir: dir,
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	started = append(started, s)
	return s, nil
}

// Start (re)starts the process on the same address and data.
func (s *Server) Start() error {
	bin, err := testbin.Path("ferretdb-auth")
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args(s.addr, filepath.Join(s.dir, "data"), s.dir)...)
	// The password goes by environment, not on a command line ps shows.
	cmd.Env = append(os.Environ(), "FERRETDB_SETUP_PASSWORD="+s.AdminPassword)
	if err := os.MkdirAll(filepath.Join(s.dir, "data"), 0o755); err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(s.dir, "ferretdb.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = log, log
	// proc.Start: the server dies with the test binary even when the binary
	// is killed (parent-death signal), and it is forked from a thread that
	// lives as long as the binary: the signal fires when the forking
	// *thread* ends, which would take a restarted server down with the
	// goroutine that started it, were that goroutine's thread to end.
	p, err := proc.Start(cmd)
	if err != nil {
		log.Close()
		return err
	}
	done := p.Done()
	go func() { <-done; log.Close() }()
	s.proc = p
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			out, _ := os.ReadFile(filepath.Join(s.dir, "ferretdb.log"))
			return fmt.Errorf("ferretdb exited at start: %s", out)
		default:
		}
		if c, err := net.DialTimeout("tcp", s.addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return errors.New("ferretdb did not listen within 30s")
}

// Diagnose says whether the process runs and what it logged, for a failing
// test's message: it tells "the server is down" from "the client did not
// notice it is back".
func (s *Server) Diagnose() string {
	state := "stopped"
	if p := s.proc; p != nil {
		state = fmt.Sprintf("pid %d running", p.Pid())
		if p.Exited() {
			state = fmt.Sprintf("pid %d exited: %s", p.Pid(), p.Describe())
		}
	}
	out, _ := os.ReadFile(filepath.Join(s.dir, "ferretdb.log"))
	return fmt.Sprintf("%s on %s; log:\n%s", state, s.addr, out)
}

// Stop ends the process; the data stays for a later Start.
func (s *Server) Stop() {
	if s.proc == nil {
		return
	}
	s.proc.Stop(10 * time.Second)
	s.proc = nil
}

// args are bin/ferretdb-auth's arguments for a server on addr over SQLite
// in dataDir, with authentication on and AdminUser set up (on first start
// only: FerretDB skips the setup once the admin database exists). No debug
// listener (many servers run at once) and no telemetry. sandbox/mongo.go
// starts it the same way.
func args(addr, dataDir, stateDir string) []string {
	return []string{
		"--listen-addr=" + addr, "--handler=sqlite", "--sqlite-url=file:" + dataDir + "/",
		"--state-dir=" + stateDir, "--debug-addr=-", "--telemetry=disable", "--log-level=warn",
		"--test-enable-new-auth", "--setup-database=admin", "--setup-username=" + AdminUser,
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
