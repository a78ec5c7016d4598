// Package pgferret starts the benchmark store: a throwaway PostgreSQL 15
// cluster in a temporary directory and bin/ferretdb over it (the PostgreSQL
// handler), both on loopback, and stops and removes them afterwards.
package pgferret

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"userve.dev/userve/bench/internal/procmon"
)

// PostgresBinDir is where Debian installs PostgreSQL 15.
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// Store is a running PostgreSQL + FerretDB pair.
type Store struct {
	URI         string // mongodb://127.0.0.1:PORT/
	PostgresURL string
	Dir         string

	pg, ferret *procmon.Process
}

// Start creates the cluster under a new temporary directory and starts both
// servers. ferretdbBin is bin/ferretdb; logs go to logDir.
func Start(ctx context.Context, ferretdbBin, logDir string) (s *Store, err error) {
	dir, err := os.MkdirTemp("", "userve-bench-pg-")
	if err != nil {
		return nil, err
	}
	s = &Store{Dir: dir}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	cred, err := postgresCredential(dir)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(PostgresBinDir, "initdb"),
		"-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--locale=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}

	pgPort, err := freePort()
	if err != nil {
		return nil, err
	}
	// Durability is off: this cluster lives for one run, and fsync on a
	// shared disk would only add noise to both sides of every ratio.
	pg := exec.Command(filepath.Join(PostgresBinDir, "postgres"), "-D", data,
		"-p", strconv.Itoa(pgPort), "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "shared_buffers=256MB", "-c", "max_connections=200",
		"-c", "logging_collector=off")
	pg.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	pg.Dir = dir
	// SIGQUIT is PostgreSQL's immediate shutdown: the backends go with it.
	if s.pg, err = procmon.Start("postgres", pg, filepath.Join(logDir, "postgres.log"), syscall.SIGQUIT); err != nil {
		return nil, err
	}
	if err := waitTCP(ctx, s.pg, "127.0.0.1:"+strconv.Itoa(pgPort), 60*time.Second); err != nil {
		return nil, err
	}
	s.PostgresURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres", pgPort)

	ferretPort, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ferretPort)
	fd := exec.Command(ferretdbBin, "--listen-addr", addr, "--handler", "postgresql",
		"--postgresql-url", s.PostgresURL, "--log-level", "error")
	if s.ferret, err = procmon.Start("ferretdb", fd, filepath.Join(logDir, "ferretdb.log"), syscall.SIGKILL); err != nil {
		return nil, err
	}
	if err := waitTCP(ctx, s.ferret, addr, 30*time.Second); err != nil {
		return nil, err
	}
	s.URI = "mongodb://" + addr + "/"
	if err := ping(ctx, s.URI); err != nil {
		return nil, fmt.Errorf("ferretdb: %w (log: %s)", err, s.ferret.Tail(2000))
	}
	return s, nil
}

// Pids of the store's processes, for reporting their CPU.
func (s *Store) FerretPid() int { return s.ferret.Pid() }

// PostgresPid is the postmaster's: its children are the backends.
func (s *Store) PostgresPid() int { return s.pg.Pid() }

// Stop ends FerretDB, then PostgreSQL (fast shutdown), and removes the cluster.
func (s *Store) Stop() {
	if s.ferret != nil {
		s.ferret.Stop(syscall.SIGTERM, 5*time.Second)
	}
	if s.pg != nil {
		s.pg.Stop(syscall.SIGINT, 15*time.Second)
	}
	if s.Dir != "" {
		_ = os.RemoveAll(s.Dir)
	}
}

// postgresCredential is who runs initdb and postgres: PostgreSQL refuses to
// run as root, so as root the cluster belongs to the "postgres" user (dir is
// handed over to it); otherwise the current user runs it (nil).
func postgresCredential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a 'postgres' user to own the cluster: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	// The temp dir's parents must be searchable by that user (they are for /tmp).
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(ctx context.Context, p *procmon.Process, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%s exited at start (%v): %s", p.Name, err, p.Tail(2000))
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not listen on %s within %v: %s", p.Name, addr, timeout, p.Tail(2000))
}

func ping(ctx context.Context, uri string) error {
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return err
	}
	defer c.Disconnect(context.Background())
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var lastErr error
	for ctx.Err() == nil {
		if lastErr = c.Database("admin").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); lastErr == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.Join(lastErr, ctx.Err())
}

// IndexEqualityLookups adds a GIN index (jsonb_path_ops) on _id of every
// collection of a FerretDB database, and on the listed fields, in
// PostgreSQL directly.
//
// FerretDB 1.24 pushes an equality filter down as `_jsonb->'f' @> value`,
// which the btree expression indexes it creates itself cannot serve, so every
// lookup by _id, username or key is a sequential scan of the whole table
// (~1 s at 100,000 profiles). These indexes let PostgreSQL answer those
// lookups from an index, as MongoDB does with its own, for the server and the
// driver ceiling alike; FerretDB does not know they exist and does not need
// to. Returns the indexes created.
func (s *Store) IndexEqualityLookups(ctx context.Context, database string, fields map[string][]string) ([]string, error) {
	tables, err := s.psql(ctx, fmt.Sprintf(`SELECT _jsonb->>'_id', _jsonb->>'table' FROM %s."_ferretdb_database_metadata"`, quoteIdent(database)))
	if err != nil {
		return nil, err
	}
	byCollection := map[string]string{}
	for _, line := range strings.Split(tables, "\n") {
		if col, table, ok := strings.Cut(line, "|"); ok {
			byCollection[col] = table
		}
	}
	var created []string
	for col, table := range byCollection {
		// Every collection is looked up by _id.
		fs := append([]string{"_id"}, fields[col]...)
		for _, f := range fs {
			name := "bench_eq_" + table + "_" + strings.Trim(strings.ReplaceAll(f, ".", "_"), "_")
			// fastupdate=off: with a pending list, every lookup would also
			// scan the entries written since the last vacuum.
			q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s.%s USING gin ((_jsonb->%s) jsonb_path_ops) WITH (fastupdate = off)`,
				quoteIdent(name), quoteIdent(database), quoteIdent(table), quoteLiteral(f))
			if _, err := s.psql(ctx, q); err != nil {
				return created, err
			}
			created = append(created, col+"."+f)
		}
	}
	// Vacuum now rather than have autovacuum start on the freshly seeded
	// tables in the middle of a measurement.
	if _, err := s.psql(ctx, "VACUUM ANALYZE"); err != nil {
		return created, err
	}
	return created, nil
}

func (s *Store) psql(ctx context.Context, query string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(PostgresBinDir, "psql"), s.PostgresURL,
		"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql %q: %v: %s", query, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
