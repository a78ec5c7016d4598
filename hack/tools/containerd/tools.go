//go:build tools

// Package tools pins the container runtime that hack/node runs the test node
// on: containerd, its ctr client and the runc shim, all of one release, built
// static (CGO_ENABLED=0, tags no_btrfs no_devmapper no_zfs) so no C toolchain
// or distribution package is needed for them.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
