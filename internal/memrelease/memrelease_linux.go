// Package memrelease gives back the memory a tenant server no longer
// needs: what only its start-up needed, once it is ready, and what a burst
// of requests needed, once it has gone quiet.
package memrelease

import (
	"bufio"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// Release gives back the heap's garbage and the executable's mapped
// read-only pages, so that the resident set is what serving needs next.
// userve serve calls it once ready and again whenever it has gone quiet.
//
// Most of an idle server's RSS (34 of 41 MiB, measured by make bench) is
// clean pages of this executable, mapped while the ~340 package inits ran:
// the binary carries the operator's Kubernetes packages too, and the kernel
// maps 64 KiB around every page fault. Unmapping the read-only segments
// with MADV_DONTNEED is safe (they are never written; a later access maps
// the page again from the page cache, which all tenant processes of the
// image share), and serving maps back only the code it runs. The writable
// segment is left alone: dropping it would lose its contents.
//
// The garbage collection runs first: it reads the type data and stack maps
// of the read-only segments, which would otherwise be mapped back at once
// (docs/bench.md, "A dedicated tenant's weight").
func Release() error {
	debug.FreeOSMemory()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return err
	}
	ranges, err := readOnlyMappings("/proc/self/maps", exe)
	if err != nil {
		return err
	}
	for _, m := range ranges {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, syscall.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("madvise %#x-%#x: %w", m.start, m.end, errno)
		}
	}
	return nil
}

type mapping struct{ start, end uintptr }

// readOnlyMappings lists the mappings of file that are not writable, from
// a /proc/<pid>/maps file.
func readOnlyMappings(mapsPath, file string) ([]mapping, error) {
	f, err := os.Open(mapsPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m, perms, path, ok := parseMapsLine(sc.Text())
		if ok && path == file && perms[0] == 'r' && perms[1] != 'w' {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

// parseMapsLine reads "start-end perms offset dev inode path" (see proc(5)).
func parseMapsLine(line string) (m mapping, perms, path string, ok bool) {
	fields := strings.Fields(line)
	if len(fields) < 6 || len(fields[1]) < 4 {
		return mapping{}, "", "", false
	}
	lo, hi, found := strings.Cut(fields[0], "-")
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	if !found || err1 != nil || err2 != nil || end <= start {
		return mapping{}, "", "", false
	}
	// The path is the rest of the line: it may contain spaces.
	path = strings.Join(fields[5:], " ")
	return mapping{uintptr(start), uintptr(end)}, fields[1], path, true
}
