//go:build tools

// Package tools pins the kube-apiserver that envtest and the sandbox run, and
// the kubectl of the same release that tests drive them with.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
