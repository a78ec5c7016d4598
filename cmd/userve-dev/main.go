// Command userve-dev is the local sandbox (make dev): etcd and kube-apiserver,
// the operator, FerretDB, and every tenant as a local `userve serve` process.
//
// It is its own binary, not a `userve` command, because it starts the control
// plane with controller-runtime's envtest: test machinery that must not be in
// the image's binary (envtest's packages create directories under $HOME or
// /tmp at init, which a read-only pod does not have). Tenants run the
// production bin/userve, the very binary the image ships.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"userve.dev/userve/sandbox"
	"userve.dev/userve/sandbox/proc"
)

// Set with -ldflags "-X main.version=...".
var version = "dev"

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("userve-dev", flag.ContinueOnError)
	cfg := sandbox.Config{}
	fs.StringVar(&cfg.StateDir, "state-dir", ".userve/dev", "directory for everything the sandbox keeps (etcd data, FerretDB files, kubeconfig, logs)")
	fs.StringVar(&cfg.SamplesDir, "samples", "config/samples", "manifests to apply at start (every *.yaml there and in its subdirectories but kustomization.yaml); '' for none")
	fs.StringVar(&cfg.MongoURI, "mongo-uri", "", "use this MongoDB (with an administrator's credentials) instead of starting bin/ferretdb-auth")
	fs.StringVar(&cfg.CRDDir, "crds", "config/crd/bases", "directory of the CRD manifests to install")
	fs.StringVar(&cfg.BinDir, "bin", defaultBinDir(), "directory holding etcd, kube-apiserver and ferretdb-auth")
	fs.StringVar(&cfg.Executable, "userve", "", "the userve binary tenant processes run (default: userve next to this binary, as make build puts it)")
	fs.BoolVar(&cfg.Reset, "reset", false, "wipe the state directory first (tenants, data, logs)")
	fs.BoolVar(&cfg.Verbose, "v", false, "also print the operator's and runtime's logs")
	fs.StringVar(&cfg.WeChatFake, "wechat-fake", sandbox.DefaultWeChatFakeAddr, "serve a fake WeChat API here and point sample tenants with spec.wechat at it; '' for none")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: userve-dev [flags]

Runs userve locally: etcd and kube-apiserver, the operator, FerretDB, and
every tenant as local 'userve serve' processes. Ctrl-C stops everything.
make dev builds bin/userve and bin/userve-dev and runs this.

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Println(version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "userve-dev: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if cfg.Executable == "" {
		exe, err := defaultUserve()
		if err != nil {
			fmt.Fprintln(os.Stderr, "userve-dev:", err)
			return 1
		}
		cfg.Executable = exe
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		<-signals
		cancel()
		<-signals
		// A second Ctrl-C: no more waiting. Children started by the sandbox
		// die with this process (parent-death signal); etcd and
		// kube-apiserver are killed from the ledger.
		fmt.Fprintln(os.Stderr, "\nuserve-dev: killing everything now")
		proc.Ledger{Path: filepath.Join(cfg.StateDir, "controlplane.pids")}.KillLeftovers()
		os.Exit(130)
	}()

	if err := sandbox.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "userve-dev:", err)
		return 1
	}
	return 0
}

// defaultBinDir is the bin/ next to this binary when it holds the tools
// (make dev puts userve-dev there), else ./bin.
func defaultBinDir() string {
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err == nil {
			return dir
		}
	}
	return "bin"
}

// defaultUserve is the production userve binary next to this one.
func defaultUserve() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(exe), "userve")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s is missing: run `make build` (make dev does), or pass --userve", p)
	}
	return p, nil
}
