package poolbench

import (
	"fmt"
	"sort"
	"strings"
)

// Cells of the pool part, as -pool-cells names them.
const (
	CellMemory     = "memory"     // RSS: the empty pool, every tenant known, loaded, evicted
	CellCold       = "cold"       // cold activations after eviction, one at a time
	CellThroughput = "throughput" // detail through the pool vs a dedicated server
	CellNoisy      = "noisy"      // a quiet tenant beside a saturating neighbour
)

var cellNames = []string{CellMemory, CellCold, CellThroughput, CellNoisy}

// ParseCells reads -pool-cells: comma-separated cell names, empty for all.
func ParseCells(s string) (map[string]bool, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	known := map[string]bool{}
	for _, c := range cellNames {
		known[c] = true
	}
	m := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if !known[f] {
			names := append([]string(nil), cellNames...)
			sort.Strings(names)
			return nil, fmt.Errorf("unknown pool cell %q (cells: %s)", f, strings.Join(names, ", "))
		}
		m[f] = true
	}
	return m, nil
}

// runs reports whether the configuration runs cell (no selection: all).
func (c Config) runs(cell string) bool { return len(c.Cells) == 0 || c.Cells[cell] }
