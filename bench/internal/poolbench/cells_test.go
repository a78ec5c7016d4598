package poolbench

import (
	"strings"
	"testing"
)

func TestParseCells(t *testing.T) {
	if m, err := ParseCells(" "); err != nil || m != nil {
		t.Errorf("empty: %v %v, want all cells (nil)", m, err)
	}
	m, err := ParseCells("cold, throughput")
	if err != nil || len(m) != 2 || !m[CellCold] || !m[CellThroughput] {
		t.Errorf("cold, throughput: %v %v", m, err)
	}
	if !(Config{Cells: m}).runs(CellCold) || (Config{Cells: m}).runs(CellMemory) {
		t.Error("runs does not follow the selection")
	}
	if _, err := ParseCells("cold,evicted"); err == nil || !strings.Contains(err.Error(), `"evicted"`) || !strings.Contains(err.Error(), "memory") {
		t.Errorf("an unknown cell: %v, want an error naming it and the cells", err)
	}
}
