package store

import "testing"

// The counter's value is used unless this process tried it before; then the
// next id above every tried one. Values arriving out of order (MongoDB
// under concurrency) are kept.
func TestTriedLedgerIDsPick(t *testing.T) {
	tr := &triedIDs{tried: map[int64]struct{}{}}
	for _, c := range []struct{ counter, want int64 }{
		{5, 5}, {7, 7}, {6, 6}, // new values, in any order
		{5, 8}, {5, 9}, {8, 10}, // FerretDB repeating or falling back
		{11, 11}, {12, 12},
	} {
		if got := tr.pick(c.counter); got != c.want {
			t.Fatalf("pick(%d) = %d, want %d", c.counter, got, c.want)
		}
	}
}

// Tries far below the highest are forgotten, so memory stays bounded.
func TestTriedLedgerIDsForget(t *testing.T) {
	tr := &triedIDs{tried: map[int64]struct{}{}}
	for id := int64(1); id <= 10*idMemory; id++ {
		tr.pick(id)
	}
	if n := len(tr.tried); n > 2*idMemory+1 {
		t.Fatalf("%d ids remembered, want at most %d", n, 2*idMemory+1)
	}
	if got := tr.pick(10 * idMemory); got != 10*idMemory+1 {
		t.Fatalf("a recent repeat gave %d", got)
	}
}
