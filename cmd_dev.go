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

func runDev(args []string) int {
	fs := flag.NewFlagSet("userve dev", flag.ContinueOnError)
	cfg := sandbox.Config{}
	fs.StringVar(&cfg.StateDir, "state-dir", ".userve/dev", "directory for everything the sandbox keeps (etcd data, FerretDB files, kubeconfig, logs)")
	fs.StringVar(&cfg.SamplesDir, "samples", "config/samples", "manifests to apply at start (every *.yaml but kustomization.yaml); '' for none")
	fs.StringVar(&cfg.MongoURI, "mongo-uri", "", "use this MongoDB (with an administrator's credentials) instead of starting bin/ferretdb-auth")
	fs.StringVar(&cfg.CRDDir, "crds", "config/crd/bases", "directory of the CRD manifests to install")
	fs.StringVar(&cfg.BinDir, "bin", defaultBinDir(), "directory holding etcd, kube-apiserver and ferretdb-auth")
	fs.BoolVar(&cfg.Reset, "reset", false, "wipe the state directory first (tenants, data, logs)")
	fs.BoolVar(&cfg.Verbose, "v", false, "also print the operator's and runtime's logs")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: userve dev [flags]

Runs userve locally: etcd and kube-apiserver, the operator, FerretDB, and
every tenant as local 'userve serve' processes. Ctrl-C stops everything.

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
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "userve dev: unexpected argument %q\n", fs.Arg(0))
		return 2
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
		fmt.Fprintln(os.Stderr, "\nuserve dev: killing everything now")
		proc.Ledger{Path: filepath.Join(cfg.StateDir, "controlplane.pids")}.KillLeftovers()
		os.Exit(130)
	}()

	if err := sandbox.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "userve dev:", err)
		return 1
	}
	return 0
}

// defaultBinDir is the bin/ next to this binary when it holds the tools
// (make build puts userve there), else ./bin.
func defaultBinDir() string {
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err == nil {
			return dir
		}
	}
	return "bin"
}
