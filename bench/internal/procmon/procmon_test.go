package procmon

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	stat := []byte("4242 (user ve) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 9 0 100 0 0")
	got, err := ParseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3800 * time.Millisecond; got != want { // (250+130) ticks at 100 Hz
		t.Errorf("cpu = %v, want %v", got, want)
	}
	if _, err := ParseStatCPU([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("short stat must fail")
	}
	if _, err := ParseStatCPU([]byte("garbage")); err == nil {
		t.Error("stat without a name must fail")
	}
}

func TestParseStatusMemory(t *testing.T) {
	status := []byte("Name:\tuserve\nVmPeak:\t  900000 kB\nVmHWM:\t   22000 kB\nVmRSS:\t   20480 kB\nThreads:\t7\n")
	rss, hwm, err := ParseStatusMemory(status)
	if err != nil {
		t.Fatal(err)
	}
	if rss != 20480 || hwm != 22000 {
		t.Errorf("rss=%d hwm=%d", rss, hwm)
	}
	if MiB(rss) != 20 {
		t.Errorf("MiB = %v", MiB(rss))
	}
	status = append(status, []byte("RssAnon:\t    7000 kB\nRssFile:\t   13000 kB\nRssShmem:\t     480 kB\n")...)
	if anon, file := ParseStatusBreakdown(status); anon != 7000 || file != 13480 {
		t.Errorf("anon=%d file=%d", anon, file)
	}
	// A zombie's status has no memory lines.
	if _, _, err := ParseStatusMemory([]byte("Name:\tx\nState:\tZ (zombie)\n")); err == nil {
		t.Error("status without memory must fail")
	}
}

func TestReadOwnProcess(t *testing.T) {
	u, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.RSSKiB == 0 || u.HWMKiB < u.RSSKiB {
		t.Errorf("implausible memory: %+v", u)
	}
}

func TestStartStopKillsTheGroup(t *testing.T) {
	dir := t.TempDir()
	// The shell starts a grandchild; stopping must take both.
	p, err := Start("sleeper", exec.Command("sh", "-c", "sleep 60 & echo $! > "+dir+"/child; wait"), dir+"/log", 0)
	if err != nil {
		t.Fatal(err)
	}
	var child []byte
	for i := 0; i < 100 && len(child) == 0; i++ {
		time.Sleep(20 * time.Millisecond)
		child, _ = os.ReadFile(dir + "/child")
	}
	if len(child) == 0 {
		t.Fatal("grandchild never started")
	}
	p.Stop(syscall.SIGTERM, 2*time.Second)
	if exited, _ := p.Exited(); !exited {
		t.Fatal("process still running after Stop")
	}
	pid := strings.TrimSpace(string(child))
	// Allow the kernel a moment to reap; a zombie counts as gone.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := os.ReadFile("/proc/" + pid + "/stat"); err != nil || containsState(st, 'Z') {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("grandchild %s survived Stop", pid)
}

func containsState(stat []byte, state byte) bool {
	for i := len(stat) - 1; i > 0; i-- {
		if stat[i] == ')' {
			return i+2 < len(stat) && stat[i+2] == state
		}
	}
	return false
}

func TestParseStatTree(t *testing.T) {
	stat := []byte("4242 (post gres)) S 77 4242 4242 0 -1 4194560 1000 0 0 0 250 130 40 10 20 0 9 0 100 0 0")
	ppid, self, reaped, err := ParseStatTree(stat)
	if err != nil {
		t.Fatal(err)
	}
	if ppid != 77 || self != 3800*time.Millisecond || reaped != 500*time.Millisecond {
		t.Errorf("ppid %d, self %v, reaped %v; want 77, 3.8s, 500ms", ppid, self, reaped)
	}
	if _, _, _, err := ParseStatTree([]byte("4242 (x) S 1 2 3 4 5 6 7 8 9 10 11 12")); err == nil {
		t.Error("short stat must fail")
	}
}

// A child that burns CPU and exits is counted in its parent's tree.
func TestTreeCPUCountsExitedChildren(t *testing.T) {
	sh := exec.Command("sh", "-c", `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done & wait; sleep 30`)
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sh.Process.Kill(); _ = sh.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		tree, err := TreeCPU(sh.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		own, err := Read(sh.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if tree >= 100*time.Millisecond && tree > own.CPU {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the exited child's CPU never showed in the tree")
}
