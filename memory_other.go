//go:build !linux

package main

// releaseStartupMemory is Linux-only; elsewhere there is nothing to do.
func releaseStartupMemory() error { return nil }
