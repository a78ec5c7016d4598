package opbench

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"userve.dev/userve/test/kubefixture"
	"userve.dev/userve/test/testbin"
)

// serviceCIDR is the bench control plane's Service range. envtest's default
// (/24) has room for 253 Services, fewer than the tenants: the 254th
// tenant's Service could never get its ClusterIP.
const serviceCIDR = "10.96.0.0/16"

// controlPlane is etcd + kube-apiserver from bin/ with the CRDs installed,
// like test/kubefixture but sized for a thousand tenants.
type controlPlane struct {
	config     *rest.Config
	scheme     *runtime.Scheme
	kubeconfig string
	env        *envtest.Environment
	dir        string
}

func startControlPlane() (*controlPlane, error) {
	ctrllog.SetLogger(logr.Discard()) // envtest logs through it; the bench prints its own progress
	root, err := testbin.Root()
	if err != nil {
		return nil, err
	}
	bin, err := testbin.Dir()
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := testbin.Path(name); err != nil {
			return nil, err
		}
	}
	cp := &controlPlane{scheme: kubefixture.NewScheme()}
	cp.env = &envtest.Environment{
		BinaryAssetsDirectory: bin,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                cp.scheme,
	}
	cp.env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", serviceCIDR)
	if cp.config, err = cp.env.Start(); err != nil {
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	user, err := cp.env.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = cp.stop()
		return nil, err
	}
	data, err := user.KubeConfig()
	if err != nil {
		_ = cp.stop()
		return nil, err
	}
	if cp.dir, err = os.MkdirTemp("", "userve-bench-kube-"); err != nil {
		_ = cp.stop()
		return nil, err
	}
	cp.kubeconfig = filepath.Join(cp.dir, "kubeconfig")
	if err := os.WriteFile(cp.kubeconfig, data, 0o600); err != nil {
		_ = cp.stop()
		return nil, err
	}
	return cp, nil
}

func (cp *controlPlane) stop() error {
	if cp.dir != "" {
		os.RemoveAll(cp.dir)
	}
	return cp.env.Stop()
}
