package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"userve.dev/userve/test/syncbuf"
)

// testAdminToken is as long as the tokens the operator generates.
const testAdminToken = "serve-test-admin-token-0123456789abcdef"

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// `userve serve` becomes bin/userve-serve when it sits beside it (as in the
// image and after make build): the serving process's executable is the
// lean one, with the same pid, flags and environment. Without it (an older
// image, `go build .`), userve serves by itself.
func TestServeRunsTheServeBinaryBesideIt(t *testing.T) {
	dir := t.TempDir()
	goBuild(t, filepath.Join(dir, "userve"), ".")
	goBuild(t, filepath.Join(dir, serveBinary), "./cmd/userve-serve")
	manifest := filepath.Join(dir, "acme.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: miniapp.userve.dev/v1alpha1\nkind: UserService\nmetadata:\n  name: acme\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := servingExecutable(t, filepath.Join(dir, "userve"), manifest); got != filepath.Join(dir, serveBinary) {
		t.Errorf("with %s beside it, userve serve runs as %s", serveBinary, got)
	}
	if err := os.Remove(filepath.Join(dir, serveBinary)); err != nil {
		t.Fatal(err)
	}
	if got := servingExecutable(t, filepath.Join(dir, "userve"), manifest); got != filepath.Join(dir, "userve") {
		t.Errorf("without %s, userve serve runs as %s", serveBinary, got)
	}
}

func goBuild(t *testing.T, out, pkg string) {
	t.Helper()
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// servingExecutable starts `userve serve` (its MongoDB unreachable: it
// serves /healthz all the same), waits for /healthz and returns the
// executable of the process answering; SIGTERM then stops it with exit 0.
func servingExecutable(t *testing.T, userve, manifest string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(userve, "serve", "--config", manifest, "--listen", addr, "--metrics-listen", "")
	cmd.Env = append(os.Environ(), "USERVE_MONGO_URI=mongodb://127.0.0.1:1/", "USERVE_ADMIN_TOKENS="+testAdminToken,
		"USERVE_JWT_KEY="+strings.Repeat("k", 32))
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("userve serve after SIGTERM: %v; stderr %s", err, stderr.String())
			}
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("userve serve did not stop on SIGTERM")
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("userve serve exited before serving: %v; stderr %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /healthz from userve serve (last: %v); stderr %s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	return exe
}
