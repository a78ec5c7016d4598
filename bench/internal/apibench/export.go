package apibench

import "context"

// RawClient is the load's lean HTTP/1.1 client (rawhttp.go), for the other
// parts of the bench.
type RawClient = rawClient

// NewRawClient connects to addr (host:port) and sends host as every
// request's Host header (a pool routes by it).
func NewRawClient(addr, host string, maxIdle int) *RawClient {
	c := newRawClient(addr, maxIdle)
	c.host = host
	return c
}

// PprofTop is `go tool pprof -top` of a CPU profile, by cumulative and by
// flat time (the heaviest entries).
func PprofTop(ctx context.Context, path string) ([]string, error) { return pprofTop(ctx, path) }
