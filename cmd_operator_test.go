package main

import (
	"testing"
)

// Bad flags stop `userve operator` before it touches a cluster, with exit
// code 2.
func TestOperatorRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--default-mongo-uri-secret", "mongo/uri"},
		{"--watch-namespaces", "Not_A_Namespace"},
		{"--server-image", ""},
		{"--log-level", "loud"},
		{"--metrics-secure=false", "--metrics-cert-dir", "/certs"},
		{"--no-such-flag"},
		{"extra-argument"},
	} {
		if code := runOperator(args); code != 2 {
			t.Errorf("userve operator %q exited %d, want 2", args, code)
		}
	}
}

func TestOperatorHelpExitsZero(t *testing.T) {
	if code := runOperator([]string{"--help"}); code != 0 {
		t.Errorf("--help exited %d", code)
	}
}
