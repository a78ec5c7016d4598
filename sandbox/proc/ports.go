package proc

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// FreePort asks the kernel for a free TCP port on host.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PortFree reports whether host:port can be listened on right now.
func PortFree(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// PortBook remembers the port given to each name in a JSON file, so that
// URLs printed by one sandbox run (a tenant's, FerretDB's) stay valid in the
// next as long as the port is still free.
type PortBook struct {
	path string
	host string

	mu    sync.Mutex
	ports map[string]int
}

// OpenPortBook reads path (missing is empty).
func OpenPortBook(path, host string) (*PortBook, error) {
	b := &PortBook{path: path, host: host, ports: map[string]int{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &b.ports); err != nil {
		// A damaged book only costs new ports; start over.
		b.ports = map[string]int{}
	}
	return b, nil
}

// Port is name's remembered port when it is free, else a new free port,
// remembered from now on.
func (b *PortBook) Port(name string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.ports[name]; ok && PortFree(b.host, p) {
		return p, nil
	}
	for range 20 {
		p, err := FreePort(b.host)
		if err != nil {
			return 0, err
		}
		if !b.takenLocked(name, p) {
			b.ports[name] = p
			return p, b.saveLocked()
		}
	}
	return 0, fmt.Errorf("no free port for %s", name)
}

// takenLocked: the port is promised to another name (which may be stopped
// right now and come back).
func (b *PortBook) takenLocked(name string, port int) bool {
	for n, p := range b.ports {
		if p == port && n != name {
			return true
		}
	}
	return false
}

// Forget drops name's port.
func (b *PortBook) Forget(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.ports[name]; !ok {
		return nil
	}
	delete(b.ports, name)
	return b.saveLocked()
}

func (b *PortBook) saveLocked() error {
	if b.path == "" {
		return nil
	}
	data, err := json.MarshalIndent(b.ports, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(b.path), 0o755); err != nil {
		return err
	}
	tmp := b.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, b.path)
}
