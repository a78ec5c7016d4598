// Package stats summarizes the latencies of one load cell: throughput and
// nearest-rank percentiles, in milliseconds for the report.
package stats

import (
	"math"
	"slices"
	"time"
)

// Summary is one cell's figures.
type Summary struct {
	Requests int     `json:"requests"` // successful requests
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"` // wall time of the cell
	RPS      float64 `json:"rps"`     // successful requests per second
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	MeanMs   float64 `json:"mean_ms"`
}

// Summarize sorts latencies in place and computes the summary over elapsed.
func Summarize(latencies []time.Duration, errors int64, elapsed time.Duration) Summary {
	s := Summary{Requests: len(latencies), Errors: errors, Seconds: elapsed.Seconds()}
	if elapsed > 0 {
		s.RPS = float64(len(latencies)) / elapsed.Seconds()
	}
	if len(latencies) == 0 {
		return s
	}
	slices.Sort(latencies)
	var total time.Duration
	for _, l := range latencies {
		total += l
	}
	s.P50ms = ms(Percentile(latencies, 50))
	s.P90ms = ms(Percentile(latencies, 90))
	s.P99ms = ms(Percentile(latencies, 99))
	s.MaxMs = ms(latencies[len(latencies)-1])
	s.MeanMs = ms(total / time.Duration(len(latencies)))
	return s
}

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted
// values: the smallest value with at least p% of the values at or below it.
// Nearest rank never invents a latency nobody saw, which interpolation would.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return Round(float64(d)/float64(time.Millisecond), 3) }

// Round to the given number of decimals, for stable JSON.
func Round(v float64, decimals int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	f := math.Pow(10, float64(decimals))
	return math.Round(v*f) / f
}

// Ratio is a/b rounded to three decimals, 0 when b is 0.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return Round(a/b, 3)
}
