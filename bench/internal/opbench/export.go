package opbench

import "k8s.io/client-go/rest"

// The pool part (bench/internal/poolbench) runs on the same control plane
// as this part.

// ControlPlane is etcd + kube-apiserver from bin/ with the CRDs installed.
type ControlPlane struct{ cp *controlPlane }

// StartControlPlane starts one (see startControlPlane).
func StartControlPlane() (*ControlPlane, error) {
	cp, err := startControlPlane()
	if err != nil {
		return nil, err
	}
	return &ControlPlane{cp: cp}, nil
}

// Config is an administrator's client configuration.
func (c *ControlPlane) Config() *rest.Config { return c.cp.config }

// Kubeconfig is the path of an administrator's kubeconfig file.
func (c *ControlPlane) Kubeconfig() string { return c.cp.kubeconfig }

// Stop stops the control plane and removes its files.
func (c *ControlPlane) Stop() error { return c.cp.stop() }

// FreePort is a free loopback TCP port.
func FreePort() (int, error) { return freePort() }
