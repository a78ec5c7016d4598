package proc

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(data)[strings.LastIndexByte(string(data), ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

func listen(port int) (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d still alive", pid)
}

func TestStopEndsTheWholeGroup(t *testing.T) {
	// The shell leaves a grandchild behind; Stop must take it too.
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	cmd := exec.Command("sh", "-c", "sleep 300 & echo $! > "+pidFile+"; wait")
	p, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	var child int
	deadline := time.Now().Add(5 * time.Second)
	for child == 0 && time.Now().Before(deadline) {
		data, _ := os.ReadFile(pidFile)
		child, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		time.Sleep(10 * time.Millisecond)
	}
	if child == 0 {
		t.Fatal("grandchild never started")
	}
	if pgid, _ := syscall.Getpgid(p.Pid()); pgid != p.Pid() {
		t.Fatalf("process group %d, want its own (%d)", pgid, p.Pid())
	}
	p.Stop(2 * time.Second)
	if !p.Exited() {
		t.Fatal("leader not reaped after Stop")
	}
	waitGone(t, child)
}

func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	trapped := filepath.Join(t.TempDir(), "trapped")
	p, err := Start(exec.Command("sh", "-c", "trap '' TERM; : > \"$1\"; while :; do sleep 0.1; done", "sh", trapped))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(trapped); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shell never installed its trap")
		}
	}
	start := time.Now()
	p.Stop(300 * time.Millisecond)
	if !p.Exited() {
		t.Fatal("not exited")
	}
	if !strings.Contains(p.Describe(), "killed") {
		t.Fatalf("ended %q, want killed", p.Describe())
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Fatal("did not wait for the grace period")
	}
}

func TestDescribeExitStatus(t *testing.T) {
	p, err := Start(exec.Command("sh", "-c", "exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if got := p.Describe(); got != "exit status 3" {
		t.Fatalf("Describe = %q", got)
	}
}

func TestChildDiesWithParent(t *testing.T) {
	if os.Getenv("PROC_TEST_PARENT") == "1" {
		// Re-executed as the parent: start a long child, print its pid, and
		// wait to be killed.
		p, err := Start(exec.Command("sleep", "300"))
		if err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString(strconv.Itoa(p.Pid()) + "\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildDiesWithParent$")
	cmd.Env = append(os.Environ(), "PROC_TEST_PARENT=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	child, _ := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if child == 0 || !alive(child) {
		t.Fatalf("no child pid from parent (%q)", buf[:n])
	}
	_ = cmd.Process.Kill() // SIGKILL: no chance to clean up
	_ = cmd.Wait()
	waitGone(t, child)
}

func TestLedgerKillsLeftovers(t *testing.T) {
	// A plain exec (no parent-death signal), like envtest's processes.
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-waited })

	found := false
	for _, pid := range Children() {
		found = found || pid == cmd.Process.Pid
	}
	if !found {
		t.Fatalf("Children() misses %d", cmd.Process.Pid)
	}

	l := Ledger{Path: filepath.Join(t.TempDir(), "pids")}
	// A stale line (pid 1 is never ours) and a dead pid must be skipped.
	if err := l.Record([]int{cmd.Process.Pid, 999999999}); err != nil {
		t.Fatal(err)
	}
	killed := l.KillLeftovers()
	if len(killed) != 1 || !strings.Contains(killed[0], "sleep") {
		t.Fatalf("killed %v, want the sleep", killed)
	}
	waitGone(t, cmd.Process.Pid)
	if _, err := os.Stat(l.Path); !os.IsNotExist(err) {
		t.Fatal("ledger not cleared")
	}
	if again := l.KillLeftovers(); len(again) != 0 {
		t.Fatalf("second run killed %v", again)
	}
}

func TestParseStat(t *testing.T) {
	st, err := parseStat("42 (we ird) name) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 100")
	if err != nil {
		t.Fatal(err)
	}
	if st.comm != "we ird) name" || st.ppid != 7 || st.starttime != "12345" {
		t.Fatalf("parsed %+v", st)
	}
	for _, bad := range []string{"", "42 no parens", "42 (x) S"} {
		if _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

func TestPortBookKeepsPorts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	b, err := OpenPortBook(path, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	a1, err := b.Port("a")
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := b.Port("b")
	if a1 == b1 {
		t.Fatal("two names share a port")
	}
	b2, _ := OpenPortBook(path, "127.0.0.1")
	if again, _ := b2.Port("a"); again != a1 {
		t.Fatalf("reopened book gave %d, want %d", again, a1)
	}
	// A taken port is replaced by a free one.
	l, err := listen(a1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if moved, _ := b2.Port("a"); moved == a1 {
		t.Fatal("book handed out a busy port")
	}
}
