//go:build tools

// Package tools pins the rest of a node of the same Kubernetes release as
// hack/tools/kubernetes, for hack/node (make test-node): kubelet, scheduler,
// controller-manager and kube-proxy. A module of its own, so that adding them
// does not change the cache key of kube-apiserver and kubectl; the packages
// both share compile once (the build cache does not care about the module).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
