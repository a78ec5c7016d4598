//go:build !linux

// Package memrelease gives back, once a server is ready, the memory that
// only its start-up needed.
package memrelease

// ReleaseStartup is Linux-only; elsewhere there is nothing to do.
func ReleaseStartup() error { return nil }
