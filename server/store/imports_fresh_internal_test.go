package store

import "testing"

func TestFreshIDsRanges(t *testing.T) {
	var f freshIDs
	f.observe(0, 100_000) // a first import into an empty tenant
	for id, want := range map[int64]bool{1: false, freshMargin: false, freshMargin + 1: true, 100_000: true, 100_001: false} {
		if got := f.has(id); got != want {
			t.Errorf("after the first raise: has(%d) = %v, want %v", id, got, want)
		}
	}
	f.observe(100_000, 100_000) // a later batch naming nothing new
	f.observe(100_010, 300_000) // ten signups meanwhile, then higher ids
	if f.has(100_005) || f.has(100_010+freshMargin) || !f.has(100_011+freshMargin) || !f.has(50_000) {
		t.Errorf("ranges after signups: %+v", f.ranges)
	}
	f.observe(120_000, 300_000) // the counter went back: a lost update
	if f.has(50_000) || f.has(250_000) || len(f.ranges) != 0 {
		t.Errorf("a counter seen below its raised value must clear every range, have %+v", f.ranges)
	}
	f.observe(300_000, 400_000) // and ranges open again above it
	if !f.has(350_000) || f.has(250_000) {
		t.Errorf("ranges after the reset: %+v", f.ranges)
	}
}
