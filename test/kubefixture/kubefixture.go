// Package kubefixture runs a real kube-apiserver and etcd (envtest, binaries
// from bin/) with the CRDs of config/crd/bases installed.
//
// A package starts one control plane for all its tests from TestMain:
//
//	var env *kubefixture.Env
//	func TestMain(m *testing.M) { os.Exit(kubefixture.Run(m, &env)) }
package kubefixture

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"userve.dev/userve/api/v1alpha1"
	"userve.dev/userve/test/testbin"
)

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *runtime.Scheme
	// Kubeconfig is a file with cluster-admin credentials, for kubectl and helm.
	Kubeconfig string

	env *envtest.Environment
	dir string
}

// Scheme with the built-in kinds and UserService.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Option changes what Start brings up.
type Option func(*envtest.Environment)

// WithoutCRDs starts a control plane without userve's CRDs, as a fresh
// cluster is before an install. (Deleting installed CRDs instead makes the
// API server delete every instance and can take minutes on loaded cores.)
func WithoutCRDs() Option {
	return func(e *envtest.Environment) { e.CRDDirectoryPaths, e.ErrorIfCRDPathMissing = nil, false }
}

// Start brings up etcd and kube-apiserver and installs the CRDs.
func Start(opts ...Option) (*Env, error) {
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
	scheme := NewScheme()
	e := &Env{Scheme: scheme, env: &envtest.Environment{
		BinaryAssetsDirectory: bin,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}}
	for _, opt := range opts {
		opt(e.env)
	}
	cfg, err := e.env.Start()
	if err != nil {
		// A failed start (say, a CRD the API server rejects) can leave etcd
		// and kube-apiserver running; stop them rather than orphan them.
		_ = e.env.Stop()
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	e.Config = cfg
	if e.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		_ = e.env.Stop()
		return nil, err
	}
	if err := e.writeKubeconfig(); err != nil {
		_ = e.env.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) writeKubeconfig() error {
	user, err := e.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if e.dir, err = os.MkdirTemp("", "userve-kube-"); err != nil {
		return err
	}
	e.Kubeconfig = filepath.Join(e.dir, "kubeconfig")
	return os.WriteFile(e.Kubeconfig, data, 0o600)
}

// Stop ends the control plane.
func (e *Env) Stop() error {
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
	return e.env.Stop()
}

// Run starts a control plane into *env, runs the tests and stops it.
func Run(m *testing.M, env **Env) int {
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubefixture:", err)
		return 1
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "kubefixture: stop:", err)
	}
	return code
}
