package stats

import (
	"testing"
	"time"
)

func durations(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	// 1..100 ms: the p-th percentile is p ms by nearest rank.
	var sorted []time.Duration
	for i := 1; i <= 100; i++ {
		sorted = append(sorted, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{
		{50, 50 * time.Millisecond},
		{99, 99 * time.Millisecond},
		{99.9, 100 * time.Millisecond},
		{100, 100 * time.Millisecond},
		{1, 1 * time.Millisecond},
		{0, 1 * time.Millisecond},
	} {
		if got := Percentile(sorted, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestPercentileSmallSamples(t *testing.T) {
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("empty: %v", got)
	}
	one := durations(7)
	if Percentile(one, 50) != 7*time.Millisecond || Percentile(one, 99) != 7*time.Millisecond {
		t.Errorf("single sample must be every percentile")
	}
	// Four samples: p50 is the 2nd, p99 the 4th (ceil(0.99*4)=4).
	four := durations(1, 2, 3, 4)
	if got := Percentile(four, 50); got != 2*time.Millisecond {
		t.Errorf("p50 of 4 = %v", got)
	}
	if got := Percentile(four, 99); got != 4*time.Millisecond {
		t.Errorf("p99 of 4 = %v", got)
	}
}

func TestSummarizeSortsAndRates(t *testing.T) {
	lat := durations(30, 10, 20, 40)
	s := Summarize(lat, 2, 2*time.Second)
	if s.Requests != 4 || s.Errors != 2 {
		t.Fatalf("counts: %+v", s)
	}
	if s.RPS != 2 {
		t.Errorf("rps = %v, want 2", s.RPS)
	}
	if s.P50ms != 20 || s.P99ms != 40 || s.MaxMs != 40 || s.MeanMs != 25 {
		t.Errorf("percentiles: %+v", s)
	}
}

func TestSummarizeEmpty(t *testing.T) {
	s := Summarize(nil, 3, 0)
	if s.RPS != 0 || s.P99ms != 0 || s.Errors != 3 {
		t.Errorf("empty summary: %+v", s)
	}
}

func TestRatioAndRound(t *testing.T) {
	if Ratio(1, 0) != 0 {
		t.Error("ratio over zero must be 0")
	}
	if got := Ratio(85, 100); got != 0.85 {
		t.Errorf("ratio = %v", got)
	}
	if got := Round(2.34567, 2); got != 2.35 {
		t.Errorf("round = %v", got)
	}
}
