package hserve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The real client, as apps pin it: minapp-sdk from npm; xhr2 to load its
// web build in Node, and regenerator-runtime, which WeChat's build tools
// inject into mini-programs and the SDK's mini-program build expects.
const (
	sdkVersion         = "3.23.6"
	xhr2Version        = "0.2.1"
	regeneratorVersion = "0.14.1"
)

// installOnce installs the SDK for the whole test binary; installErr is
// its outcome for every later caller too.
var (
	installOnce sync.Once
	installErr  error
)

// sdkModules installs the pinned SDK once into the user's cache (outside
// the clone, shared by later runs) and returns its node_modules. npm is
// reached like the Go module proxy; Node.js 18+ is required.
func sdkModules(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: the MinApp SDK tests run the real minapp-sdk %s in Node.js 18 or later (install Node.js with npm)", tool, sdkVersion)
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "userve", "npm", "minapp-sdk-"+sdkVersion)
	modules := filepath.Join(dir, "node_modules")
	installOnce.Do(func() { installErr = install(dir, modules) })
	if installErr != nil {
		t.Fatal(installErr)
	}
	return modules
}

func install(dir, modules string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Test binaries of several packages may install at once: one at a time.
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	if installed(modules) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append([]string{"install", "--prefix", dir, "--no-audit", "--no-fund", "--loglevel=error"}, packages()...)
	cmd := exec.CommandContext(ctx, "npm", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm install %s: %v\n%s", strings.Join(packages(), " "), err, out)
	}
	if !installed(modules) {
		return fmt.Errorf("npm install left no minapp-sdk %s in %s", sdkVersion, modules)
	}
	return nil
}

// pinned are the npm packages the scripts load, by version.
var pinned = map[string]string{"minapp-sdk": sdkVersion, "xhr2": xhr2Version, "regenerator-runtime": regeneratorVersion}

func packages() []string {
	var out []string
	for name, v := range pinned {
		out = append(out, name+"@"+v)
	}
	sort.Strings(out)
	return out
}

func installed(modules string) bool {
	for name, want := range pinned {
		data, err := os.ReadFile(filepath.Join(modules, name, "package.json"))
		if err != nil {
			return false
		}
		var pkg struct{ Version string }
		if json.Unmarshal(data, &pkg) != nil || pkg.Version != want {
			return false
		}
	}
	return true
}

// runNode runs a script of testdata/sdk with env and returns its last line
// of output, decoded.
func runNode(t *testing.T, script string, env map[string]string, out any) {
	t.Helper()
	modules := sdkModules(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	abs, err := filepath.Abs(filepath.Join("testdata", "sdk", script))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "node", abs)
	cmd.Env = append(os.Environ(), "SDK_MODULES="+modules)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v\n%s%s", script, err, shortLines(stdout.String()), shortLines(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), out); err != nil {
		t.Fatalf("node %s printed no JSON summary: %v\n%s%s", script, err, stdout.String(), stderr.String())
	}
}

// nodeEval runs code with the pinned packages on NODE_PATH and returns
// what it printed.
func nodeEval(t *testing.T, code string) string {
	t.Helper()
	modules := sdkModules(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "-e", code)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node -e: %v\n%s", err, shortLines(string(out)))
	}
	return string(out)
}

// shortLines cuts long lines (a stack through the minified SDK prints it
// whole) so a failure stays readable.
func shortLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if len(l) > 300 {
			lines[i] = l[:300] + "..."
		}
	}
	return strings.Join(lines, "\n")
}

// codeSink answers GET ?to=<phone> with the next code the tenant's webhook
// delivers there, for scripts to read SMS codes.
func (tn *tenant) codeSink() string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := tn.nextCode(r.URL.Query().Get("to"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(code))
	}))
	tn.t.Cleanup(srv.Close)
	return srv.URL
}
