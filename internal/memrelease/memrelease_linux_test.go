package memrelease

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	// Linked for their package inits, as in bin/userve, which carries the
	// operator next to the server: they map the many MiB of read-only
	// pages that Release exists to give back.
	_ "userve.dev/userve/controllers"
	_ "userve.dev/userve/server"
)

func TestParseMapsLine(t *testing.T) {
	tests := []struct {
		line        string
		ok          bool
		start, end  uintptr
		perms, path string
	}{
		{"00400000-01a6d000 r-xp 00000000 fe:00 9979766    /work/bin/userve", true, 0x400000, 0x1a6d000, "r-xp", "/work/bin/userve"},
		{"031d2000-03277000 rw-p 02dd2000 fe:00 9979766 /a b/userve (deleted)", true, 0x31d2000, 0x3277000, "rw-p", "/a b/userve (deleted)"},
		{"03277000-052c9000 rw-p 00000000 00:00 0 ", false, 0, 0, "", ""},   // anonymous: no path
		{"zz-01 r--p 00000000 fe:00 1 /x", false, 0, 0, "", ""},             // not hex
		{"02000000-01000000 r--p 00000000 fe:00 1 /x", false, 0, 0, "", ""}, // end before start
		{"", false, 0, 0, "", ""},
	}
	for _, tt := range tests {
		m, perms, path, ok := parseMapsLine(tt.line)
		if ok != tt.ok || m.start != tt.start || m.end != tt.end || perms != tt.perms || path != tt.path {
			t.Errorf("parseMapsLine(%q) = %#x-%#x %q %q %v; want %#x-%#x %q %q %v",
				tt.line, m.start, m.end, perms, path, ok, tt.start, tt.end, tt.perms, tt.path, tt.ok)
		}
	}
}

// exeResidentKiB sums the resident size of this executable's read-only
// mappings, from /proc/self/smaps.
func exeResidentKiB(t *testing.T) int {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total, inExe := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if _, perms, path, ok := parseMapsLine(line); ok {
			inExe = path == exe && perms[1] != 'w'
			continue
		}
		if rest, found := strings.CutPrefix(line, "Rss:"); found && inExe {
			kib, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				t.Fatalf("smaps line %q: %v", line, err)
			}
			total += kib
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

func TestReleaseUnmapsReadOnlySegments(t *testing.T) {
	before := exeResidentKiB(t)
	if err := Release(); err != nil {
		t.Fatal(err)
	}
	after := exeResidentKiB(t)
	t.Logf("resident read-only pages of the test binary: %d KiB before, %d KiB after", before, after)
	// This test binary links the operator and the server, so its inits map
	// many MiB;
	// afterwards only what ran since (this test, the runtime) is mapped.
	if after >= before/2 {
		t.Errorf("resident read-only pages went from %d to %d KiB; want less than half", before, after)
	}
	// The process keeps working: code and data are mapped back on use.
	if got := strconv.Itoa(len(strings.Repeat("x", 3))); got != "3" {
		t.Errorf("after release, computation gives %q", got)
	}
}

// Any line of /proc/self/maps, however mangled, parses or is skipped; a
// parsed one is a non-empty range with its permissions.
func FuzzParseMapsLine(f *testing.F) {
	f.Add("00400000-01a6d000 r-xp 00000000 fe:00 9979766    /work/bin/userve")
	f.Add("03277000-052c9000 rw-p 00000000 00:00 0 ")
	f.Add("ffffffffffffffff-0 r--p 0 0 0 /x")
	f.Fuzz(func(t *testing.T, line string) {
		m, perms, _, ok := parseMapsLine(line)
		if ok && (m.end <= m.start || len(perms) < 4) {
			t.Fatalf("parseMapsLine(%q) = %#x-%#x %q", line, m.start, m.end, perms)
		}
	})
}
