//go:build !linux

// Package memrelease gives back the memory a tenant server no longer
// needs: what only its start-up needed, once it is ready, and what a burst
// of requests needed, once it has gone quiet.
package memrelease

// Release is Linux-only; elsewhere there is nothing to do.
func Release() error { return nil }
