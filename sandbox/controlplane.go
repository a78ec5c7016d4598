package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"userve.dev/userve/controllers"
	"userve.dev/userve/sandbox/proc"
)

// controlPlane is etcd and kube-apiserver from bin/, run by envtest with
// etcd's data kept in the state directory, so tenants survive a restart.
type controlPlane struct {
	env    *envtest.Environment
	config *rest.Config
	logs   []*os.File
	ledger proc.Ledger
}

func startControlPlane(cfg *Config) (*controlPlane, error) {
	etcdLog, err := openLog(filepath.Join(cfg.StateDir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	apiLog, err := openLog(filepath.Join(cfg.StateDir, "kube-apiserver.log"))
	if err != nil {
		etcdLog.Close()
		return nil, err
	}
	// The API server's certificates are made anew each run (envtest writes
	// its CA only when it creates them); the kubeconfig is rewritten to match.
	certDir := filepath.Join(cfg.StateDir, "apiserver")
	if err := os.RemoveAll(certDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	dataDir := filepath.Join(cfg.StateDir, "etcd")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		// Never an existing cluster, whatever USE_EXISTING_CLUSTER says.
		UseExistingCluster:       ptr.To(false),
		Scheme:                   controllers.NewScheme(),
		CRDDirectoryPaths:        []string{cfg.CRDDir},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 90 * time.Second, // a cold, busy laptop
		ControlPlaneStopTimeout:  20 * time.Second,
	}
	env.ControlPlane.Etcd = &envtest.Etcd{
		Path:    filepath.Join(cfg.BinDir, "etcd"),
		DataDir: dataDir,
		Out:     etcdLog,
		Err:     etcdLog,
	}
	api := env.ControlPlane.GetAPIServer()
	api.Path = filepath.Join(cfg.BinDir, "kube-apiserver")
	api.CertDir = certDir
	api.Out, api.Err = apiLog, apiLog

	cp := &controlPlane{env: env, logs: []*os.File{etcdLog, apiLog}, ledger: proc.Ledger{Path: filepath.Join(cfg.StateDir, "controlplane.pids")}}
	restConfig, err := env.Start()
	// Whatever happened, etcd and kube-apiserver may be running: note them
	// so a later run can end them if this one is killed.
	_ = cp.ledger.Record(proc.Children())
	if err != nil {
		_ = cp.stop()
		return nil, fmt.Errorf("start etcd and kube-apiserver (logs: %s, %s): %w", etcdLog.Name(), apiLog.Name(), err)
	}
	cp.config = restConfig
	return cp, nil
}

func (cp *controlPlane) stop() error {
	err := cp.env.Stop()
	cp.ledger.Clear()
	for _, f := range cp.logs {
		f.Close()
	}
	return err
}

// writeKubeconfig writes a kubeconfig for the control plane's admin user,
// with a context named userve-dev.
func writeKubeconfig(path string, c *rest.Config) error {
	const name = "userve-dev"
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{
		Server:                   c.Host,
		CertificateAuthorityData: c.CAData,
	}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{
		ClientCertificateData: c.CertData,
		ClientKeyData:         c.KeyData,
		Token:                 c.BearerToken,
	}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: "default"}
	kc.CurrentContext = name
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}
