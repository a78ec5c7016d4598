//go:build tools

// Package tools pins the kube-apiserver that envtest and the sandbox run, the
// kubectl of the same release that tests drive them with, and the rest of a
// node of that release for hack/node (make test-node): kubelet, scheduler,
// controller-manager and kube-proxy.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
