package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"userve.dev/userve/sandbox"
	"userve.dev/userve/sandbox/proc"
	"userve.dev/userve/test/testbin"
)

// devSandbox is one `userve-dev` process, run as a user runs it.
type devSandbox struct {
	t        *testing.T
	root     string
	stateDir string
	cmd      *exec.Cmd
	exited   chan struct{}

	mu  sync.Mutex
	out bytes.Buffer
}

// buildUserveDev builds bin/userve, bin/userve-serve and bin/userve-dev side
// by side as `make dev` does, and returns userve-dev's path (it finds userve
// next to itself and runs the tenants with it; `userve serve` becomes
// userve-serve, as in a pod).
func buildUserveDev(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	for _, b := range []struct{ out, pkg string }{{"userve", "."}, {"userve-serve", "./cmd/userve-serve"}, {"userve-dev", "./cmd/userve-dev"}} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return filepath.Join(dir, "userve-dev")
}

// startSandbox runs `userve-dev` with the repository's samples and waits
// until it says it is ready.
func startSandbox(t *testing.T, userveDev, root, stateDir string) *devSandbox {
	t.Helper()
	binDir, err := testbin.Dir()
	if err != nil {
		t.Fatal(err)
	}
	s := &devSandbox{t: t, root: root, stateDir: stateDir, exited: make(chan struct{})}
	s.cmd = exec.Command(userveDev, "--state-dir", stateDir, "--bin", binDir)
	s.cmd.Dir = root // config/samples and config/crd/bases, as with make dev
	s.cmd.Env = os.Environ()
	// If this test binary dies, the sandbox goes too (and it takes its own
	// children along); its own group keeps our Ctrl-C-like signal precise.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	pr, pw := io.Pipe()
	s.cmd.Stdout, s.cmd.Stderr = pw, pw
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.mu.Lock()
			s.out.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
	}()
	go func() { _ = s.cmd.Wait(); pw.Close(); close(s.exited) }()
	t.Cleanup(s.kill)
	s.waitOutput("[6/6] ready.", 3*time.Minute)
	return s
}

func (s *devSandbox) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// waitOutput waits for text in the sandbox's output.
func (s *devSandbox) waitOutput(text string, timeout time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out := s.output()
		if strings.Contains(out, text) {
			return out
		}
		select {
		case <-s.exited:
			s.t.Fatalf("userve-dev exited before printing %q:\n%s", text, s.output())
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.t.Fatalf("userve-dev did not print %q within %s:\n%s", text, timeout, s.output())
	return ""
}

// descendants are the sandbox process and every process below it.
func (s *devSandbox) descendants() map[int]string {
	children := map[int][]int{}
	names := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		st := string(data)
		end := strings.LastIndexByte(st, ')')
		f := strings.Fields(st[end+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
		names[pid] = st[strings.IndexByte(st, '(')+1 : end]
	}
	out := map[int]string{}
	var walk func(int)
	walk = func(pid int) {
		out[pid] = names[pid]
		for _, c := range children[pid] {
			walk(c)
		}
	}
	walk(s.cmd.Process.Pid)
	return out
}

// interrupt sends what Ctrl-C sends and waits for the sandbox to exit.
func (s *devSandbox) interrupt() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(90 * time.Second):
		s.t.Fatalf("userve-dev did not stop within 90s of SIGINT:\n%s", s.output())
	}
}

// kill is the cleanup for a failed test: SIGKILL, then what the ledger
// names (etcd and kube-apiserver have no parent-death signal).
func (s *devSandbox) kill() {
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	proc.Ledger{Path: filepath.Join(s.stateDir, "controlplane.pids")}.KillLeftovers()
}

// kubectl runs bin/kubectl against the sandbox and returns its stdout.
func (s *devSandbox) kubectl(stdin string, args ...string) string {
	s.t.Helper()
	out, err := s.tryKubectl(stdin, args...)
	if err != nil {
		s.t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (s *devSandbox) tryKubectl(stdin string, args ...string) (string, error) {
	kubectl, err := testbin.Path("kubectl")
	if err != nil {
		return "", err
	}
	cmd := exec.Command(kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(s.stateDir, "kubeconfig"))
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%v: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

// tenantURL is the local URL the runtime annotates the tenant's Deployment with.
func (s *devSandbox) tenantURL(ns, name string) string {
	s.t.Helper()
	var url string
	eventually(s.t, "the local URL of "+ns+"/"+name, time.Minute, func() (bool, string) {
		out, err := s.tryKubectl("", "-n", ns, "get", "deploy", name, "-o", `jsonpath={.metadata.annotations.userve\.dev/local-url}`)
		url = strings.TrimSpace(out)
		return err == nil && url != "", fmt.Sprint(err)
	})
	return url
}

// adminToken reads the first admin token from the tenant's credentials Secret.
func (s *devSandbox) adminToken(ns, name string) string {
	s.t.Helper()
	secret := strings.TrimSpace(s.kubectl("", "-n", ns, "get", "usvc", name, "-o", "jsonpath={.status.credentialsSecret}"))
	if secret == "" {
		s.t.Fatalf("usvc %s/%s has no status.credentialsSecret", ns, name)
	}
	enc := s.kubectl("", "-n", ns, "get", "secret", secret, "-o", "jsonpath={.data.admin-tokens}")
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil || len(raw) == 0 {
		s.t.Fatalf("admin tokens of %s/%s: %q %v", ns, secret, enc, err)
	}
	tok, _, _ := strings.Cut(string(raw), ",")
	return strings.TrimSpace(tok)
}

// tenant reads the runtime's view of a tenant from tenants.json.
func (s *devSandbox) tenant(ns, name string) (sandbox.TenantEntry, bool) {
	data, err := os.ReadFile(filepath.Join(s.stateDir, "tenants.json"))
	if err != nil {
		return sandbox.TenantEntry{}, false
	}
	var f sandbox.TenantFile
	if json.Unmarshal(data, &f) != nil {
		return sandbox.TenantEntry{}, false
	}
	for _, t := range f.Tenants {
		if t.Namespace == ns && t.UserService == name {
			return t, true
		}
	}
	return sandbox.TenantEntry{}, false
}

// readyPids are the pids of the tenant's ready local processes.
func (s *devSandbox) readyPids(ns, name string) []int {
	t, _ := s.tenant(ns, name)
	var pids []int
	for _, p := range t.Pods {
		if p.Ready && p.Pid != 0 {
			pids = append(pids, p.Pid)
		}
	}
	return pids
}

var codeLine = regexp.MustCompile(`"code":"(\d{4,6})"`)

// verificationCode finds the last code logged for target (log delivery)
// in the tenant's process logs, as a developer would read it.
func (s *devSandbox) verificationCode(ns, name, target string) string {
	s.t.Helper()
	var code string
	eventually(s.t, "a verification code for "+target, 30*time.Second, func() (bool, string) {
		logs, _ := filepath.Glob(filepath.Join(s.stateDir, "pods", ns, name+"-*", "log"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			for _, line := range strings.Split(string(data), "\n") {
				if strings.Contains(line, "verification code") && strings.Contains(line, target) {
					if m := codeLine.FindStringSubmatch(line); m != nil {
						code = m[1]
					}
				}
			}
		}
		return code != "", fmt.Sprintf("logs %v", logs)
	})
	return code
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
}

// call does one JSON request; body may be nil. It returns the status and
// the decoded JSON answer (nil when empty).
func call(t *testing.T, method, url, token string, body any) (int, any) {
	t.Helper()
	status, data, err := tryCall(method, url, token, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return status, data
}

func tryCall(method, url, token string, body any) (int, any, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: 15 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var data any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &data); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("status %d, not JSON: %s", resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, data, nil
}

// field digs into decoded JSON: field(v, "meta", "total_count").
func field(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func processAlive(pid int) bool {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}
